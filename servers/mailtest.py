"""A test mail sent with mail settings as an operator typed them, and the SMTP server's answer in
words: what the server said to the message, or why it could not be sent."""

import smtplib
import socket
import ssl
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import EmailMessage
from django.core.mail.backends.smtp import EmailBackend as SMTPBackend
from django.core.mail.message import sanitize_address
from django.utils import timezone


@dataclass(frozen=True)
class TestMailResult:
    sent: bool
    answer: str


def send_test_mail(mail_settings, sent_by: str = "") -> TestMailResult:
    """Send a test message to every recipient of ``mail_settings`` (stored or not) and say what happened."""
    system = mail_settings.system
    message = EmailMessage(
        f"Test mail from the redundancy of {system}",
        f"This is a test of the mail settings of multiserver system {system}, sent "
        f"{timezone.localtime():%Y-%m-%d %H:%M:%S %Z}{f' by {sent_by}' if sent_by else ''}.\n"
        "Redundancy notifications (failovers, servers down) will come to this address the same way.\n",
        mail_settings.from_email or settings.DEFAULT_FROM_EMAIL,
        mail_settings.recipient_list,
        connection=mail_settings.connection(),
    )
    backend = message.get_connection()
    if not mail_settings.smtp_host or not isinstance(backend, SMTPBackend):
        # The site's own mail: its server is the site's administrator's, not named to a system's.
        try:
            sent = message.send()
        except Exception as exc:  # any backend's failure is worded, not raised at the operator
            return TestMailResult(False, f"The site's mail could not send it: {_worded(exc)}")
        return TestMailResult(bool(sent), "Handed to the site's mail." if sent else "The site's mail sent nothing.")
    where = f"{backend.host}:{backend.port}"
    try:
        backend.open()
    except Exception as exc:
        return TestMailResult(False, f"The SMTP server at {where} was not reached or refused the session: "
                                     f"{_worded(exc)}")  # fmt: skip
    try:
        return _transaction(backend.connection, message, where)
    finally:
        backend.close()


def _transaction(smtp: smtplib.SMTP, message: EmailMessage, where: str) -> TestMailResult:
    """MAIL, RCPT and DATA one by one, so that the server's own answer to each can be shown."""
    try:
        smtp.ehlo_or_helo_if_needed()
        encoding = message.encoding or settings.DEFAULT_CHARSET
        code, reply = smtp.mail(sanitize_address(message.from_email, encoding))
        if code != 250:
            return TestMailResult(False, f"The SMTP server at {where} refused the sender: {code} {_text(reply)}")
        refused = []
        for recipient in message.recipients():
            code, reply = smtp.rcpt(sanitize_address(recipient, encoding))
            if code not in (250, 251):
                refused.append(f"{recipient} ({code} {_text(reply)})")
        if len(refused) == len(message.recipients()):
            return TestMailResult(False, f"The SMTP server at {where} refused every recipient: {', '.join(refused)}")
        code, reply = smtp.data(message.message().as_bytes(linesep="\r\n"))
    except (smtplib.SMTPException, OSError) as exc:
        return TestMailResult(False, f"The SMTP server at {where} broke off: {_worded(exc)}")
    if code != 250:
        return TestMailResult(False, f"The SMTP server at {where} refused the message: {code} {_text(reply)}")
    answer = f"The SMTP server at {where} accepted it: {code} {_text(reply)}"
    if refused:
        answer += f"; it refused {', '.join(refused)}"
    return TestMailResult(True, answer)


def _text(reply: bytes) -> str:
    return reply.decode(errors="replace").replace("\n", " ").strip()


def _worded(exc: Exception) -> str:
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return f"the user name or password was not accepted ({exc.smtp_code} {_text(exc.smtp_error)})"
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return "it does not offer STARTTLS; turn 'use STARTTLS' off only if the network to it is trusted"
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{exc.smtp_code} {_text(exc.smtp_error)}"
    if isinstance(exc, ssl.SSLError):
        return f"the TLS handshake failed ({exc.reason or exc})"
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"no answer within {settings.EMAIL_TIMEOUT} s"
    if isinstance(exc, ConnectionRefusedError):
        return "nothing accepts connections on that port"
    if isinstance(exc, socket.gaierror):
        return "that host name is not known"
    return str(exc) or type(exc).__name__

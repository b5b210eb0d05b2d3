"""Asking a camera for a keyframe at once: ONVIF Media's SetSynchronizationPoint.

A recorder that connects to a camera can record only from a keyframe, so it waits up to a whole
GOP. A camera with an ONVIF media service (the camera's ``onvif_url``) can be told to make its
next frame a keyframe: ``KeyframeRequest`` finds the media profile that streams the camera's
URL (GetProfiles, GetStreamUri, once per worker), then sends SetSynchronizationPoint for it.

The RTSP ingest asks right after its stream opened, on a thread of its own and bounded by a
short timeout: a camera that does not answer, refuses or has no such profile costs a log line
and nothing else, and the wait for the camera's own next keyframe goes on as without it.

Hand-written SOAP 1.2 envelopes, standard library only; with the camera's user name and password
each request carries a WS-Security UsernameToken digest. Nothing logged names the address or the
credentials.
"""

import base64
import hashlib
import http.client
import logging
import os
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit
from xml.sax.saxutils import escape

log = logging.getLogger(__name__)

SOAP_NS = "http://www.w3.org/2003/05/soap-envelope"
MEDIA_NS = "http://www.onvif.org/ver10/media/wsdl"
SCHEMA_NS = "http://www.onvif.org/ver10/schema"
WSSE_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
DIGEST = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest"
TIMEOUT = 0.5  # seconds for each request: a keyframe that comes later than that is no faster than waiting
MAX_ANSWER = 1 << 20  # bytes: a camera's profile list, not a stream


class OnvifError(Exception):
    """The camera did not do what was asked; the message names neither the address nor credentials."""


class OnvifFault(OnvifError):
    """The camera answered with a SOAP fault: ``codes`` from the outer code in, e.g. (Sender, InvalidArgVal,
    NoProfile)."""

    def __init__(self, codes: tuple[str, ...], reason: str):
        self.codes = codes
        super().__init__(f"SOAP fault {'/'.join(codes)}" + (f": {reason}" if reason else ""))


def password_digest(nonce: bytes, created: str, password: str) -> str:
    """WS-Security's PasswordDigest: Base64(SHA-1(nonce + created + password))."""
    return base64.b64encode(hashlib.sha1(nonce + created.encode() + password.encode()).digest()).decode()


def security_header(username: str, password: str, now: float | None = None, nonce: bytes | None = None) -> str:
    """A WS-Security UsernameToken with the password's digest, a fresh nonce and the time."""
    nonce = nonce if nonce is not None else os.urandom(16)
    created = datetime.fromtimestamp(time.time() if now is None else now, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    digest = password_digest(nonce, created, password)
    return (f'<wsse:Security xmlns:wsse="{WSSE_NS}" xmlns:wsu="{WSU_NS}" env:mustUnderstand="true">'
            f"<wsse:UsernameToken><wsse:Username>{escape(username)}</wsse:Username>"
            f'<wsse:Password Type="{DIGEST}">{digest}</wsse:Password>'
            f"<wsse:Nonce>{base64.b64encode(nonce).decode()}</wsse:Nonce><wsu:Created>{created}</wsu:Created>"
            "</wsse:UsernameToken></wsse:Security>")  # fmt: skip


def envelope(operation: str, username: str = "", password: str = "") -> bytes:
    header = f"<env:Header>{security_header(username, password)}</env:Header>" if username else ""
    return (f'<?xml version="1.0" encoding="UTF-8"?><env:Envelope xmlns:env="{SOAP_NS}" xmlns:trt="{MEDIA_NS}" '
            f'xmlns:tt="{SCHEMA_NS}">{header}<env:Body>{operation}</env:Body></env:Envelope>').encode()  # fmt: skip


class MediaService:
    """An ONVIF media service (ver10) at ``url``: the three operations a recorder needs."""

    def __init__(self, url: str, username: str = "", password: str = "", timeout: float = TIMEOUT):
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise OnvifError("the ONVIF address is not an http(s) URL")
        self.parts, self.username, self.password, self.timeout = parts, username, password, timeout

    def call(self, operation: str) -> ET.Element:
        """Send one operation; the answer's first body element, or OnvifError / OnvifFault."""
        parts = self.parts
        kind = http.client.HTTPSConnection if parts.scheme.lower() == "https" else http.client.HTTPConnection
        connection = kind(parts.hostname, parts.port, timeout=self.timeout)
        try:
            connection.request("POST", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""),
                               body=envelope(operation, self.username, self.password),
                               headers={"Content-Type": "application/soap+xml; charset=utf-8"})  # fmt: skip
            response = connection.getresponse()
            data = response.read(MAX_ANSWER)
        except TimeoutError as exc:
            raise OnvifError("no answer in time") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise OnvifError(getattr(exc, "strerror", None) or type(exc).__name__) from exc
        finally:
            connection.close()
        if b"<!DOCTYPE" in data[:1024].upper():
            raise OnvifError("the answer has a DOCTYPE")  # entities are no part of SOAP
        try:
            root = ET.fromstring(data)
        except ET.ParseError as exc:
            raise OnvifError(f"HTTP {response.status}, not a SOAP answer") from exc
        body = root.find(f"{{{SOAP_NS}}}Body")
        if body is None or not len(body):
            raise OnvifError(f"HTTP {response.status}, no SOAP 1.2 body")
        fault = body.find(f"{{{SOAP_NS}}}Fault")
        if fault is not None:
            codes, code = [], fault.find(f"{{{SOAP_NS}}}Code")
            while code is not None:
                codes.append((code.findtext(f"{{{SOAP_NS}}}Value") or "").strip().rpartition(":")[2])
                code = code.find(f"{{{SOAP_NS}}}Subcode")
            reason = " ".join((fault.findtext(f"{{{SOAP_NS}}}Reason/{{{SOAP_NS}}}Text") or "").split())
            raise OnvifFault(tuple(codes), reason[:200])
        if response.status != 200:
            raise OnvifError(f"HTTP {response.status}")
        return body[0]

    def profile_tokens(self) -> list[str]:
        answer = self.call("<trt:GetProfiles/>")
        return [p.get("token") for p in answer.findall(f"{{{MEDIA_NS}}}Profiles") if p.get("token")]

    def stream_uri(self, token: str) -> str:
        answer = self.call(
            "<trt:GetStreamUri><trt:StreamSetup><tt:Stream>RTP-Unicast</tt:Stream><tt:Transport>"
            f"<tt:Protocol>RTSP</tt:Protocol></tt:Transport></trt:StreamSetup><trt:ProfileToken>{escape(token)}"
            "</trt:ProfileToken></trt:GetStreamUri>"
        )
        return (answer.findtext(f"{{{MEDIA_NS}}}MediaUri/{{{SCHEMA_NS}}}Uri") or "").strip()

    def set_synchronization_point(self, token: str) -> None:
        self.call(f"<trt:SetSynchronizationPoint><trt:ProfileToken>{escape(token)}</trt:ProfileToken>"
                  "</trt:SetSynchronizationPoint>")  # fmt: skip


def _normalized(url: str) -> tuple[str, str, int | None, str]:
    parts = urlsplit(url)
    port = parts.port or (554 if parts.scheme.lower() in ("rtsp", "rtsps") else None)
    path = unquote(parts.path or "/").rstrip("/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme.lower(), (parts.hostname or "").lower(), port, path


def matching_profile(service: MediaService, stream_url: str) -> str | None:
    """The token of the profile whose stream URI is ``stream_url``: the same address, else the same path (a
    camera behind NAT names its own address), else the only profile there is; None when none fits."""
    tokens = service.profile_tokens()
    wanted = _normalized(stream_url)
    uris = {token: _normalized(service.stream_uri(token)) for token in tokens}
    for same in (lambda u: u == wanted, lambda u: u[3] == wanted[3]):
        for token, uri in uris.items():
            if same(uri):
                return token
    return tokens[0] if len(tokens) == 1 else None


class KeyframeRequest:
    """One camera's keyframe requests, for its ingest worker: the profile found once, then one
    SetSynchronizationPoint per connection, each on a short-lived thread of its own."""

    def __init__(self, camera_id: int, onvif_url: str, stream_url: str, username: str = "", password: str = "",
                 timeout: float = TIMEOUT):  # fmt: skip
        self.camera_id, self.onvif_url, self.stream_url = camera_id, onvif_url, stream_url
        self.username, self.password, self.timeout = username, password, timeout
        self._token: str | None = None
        self._lock = threading.Lock()
        self._last_problem = ""

    def send(self) -> str:
        """Ask now (blocking, at most a few timeouts): "accepted", or "refused" / "failed" (logged)."""
        try:
            service = MediaService(self.onvif_url, self.username, self.password, self.timeout)
            with self._lock:
                if self._token is None:
                    self._token = matching_profile(service, self.stream_url)
                token = self._token
            if token is None:
                raise OnvifError("no media profile streams the camera's URL")
            try:
                service.set_synchronization_point(token)
            except OnvifFault as fault:
                if "NoProfile" in fault.codes:  # the camera's profiles changed: look again next time
                    with self._lock:
                        self._token = None
                raise
        except OnvifError as exc:
            self._problem(str(exc))
            return "refused" if isinstance(exc, OnvifFault) else "failed"
        except Exception as exc:  # a camera's odd answer must never reach the ingest
            # The kind of error only: a traceback's messages could quote the camera's answer or address.
            log.warning("camera=%s event=keyframe_request_error error=%s", self.camera_id, type(exc).__name__)
            return "failed"
        self._last_problem = ""
        return "accepted"

    def send_in_background(self, done: Callable[[str, float], None]) -> threading.Thread:
        """Ask on a thread of its own; ``done(outcome, seconds)`` when the camera answered or gave up."""

        def run():
            began = time.monotonic()
            outcome = self.send()
            done(outcome, time.monotonic() - began)

        thread = threading.Thread(target=run, name=f"keyframe-{self.camera_id}", daemon=True)
        thread.start()
        return thread

    def _problem(self, problem: str) -> None:
        # One warning per kind of problem, not one per reconnection of a camera that never answers.
        level = logging.DEBUG if problem == self._last_problem else logging.WARNING
        log.log(level, "camera=%s event=keyframe_request_failed reason=%s", self.camera_id, problem)
        self._last_problem = problem

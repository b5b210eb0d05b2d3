"""Where an administrator may point the product: the target policy.

With ``DENY_LOCAL_TARGETS`` (on by default in production) stream URLs and SMTP hosts may not
name this machine or link-local addresses (cloud metadata services among them), and SMTP goes
only to the mail ports. With ``RECORDINGS_ROOT`` set (by default in production) every server's
recordings directory lies under it. Cameras on the site's private networks are what the product
is for: those addresses are allowed. Host names are not resolved here; a name is judged as
written (``localhost`` and its like are refused).
"""

import ipaddress
from pathlib import Path

from django.conf import settings

MAIL_PORTS = (25, 465, 587, 2525)
LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


def local_target_problem(host: str, what: str) -> str:
    """Why ``host`` may not be a target under the policy, or ''."""
    if not settings.DENY_LOCAL_TARGETS or not host:
        return ""
    name = host.strip("[]").rstrip(".").lower()
    if name in LOCAL_NAMES or name.endswith(".localhost"):
        return f"{what} may not be this machine ({host})."
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return ""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address.is_loopback or address.is_unspecified:
        return f"{what} may not be this machine ({host})."
    if address.is_link_local or address.is_multicast or address.is_reserved:
        return (
            f"{what} may not be a link-local, multicast or reserved address ({host}), such as a cloud metadata service."
        )
    return ""


def mail_port_problem(port) -> str:
    if settings.DENY_LOCAL_TARGETS and port not in MAIL_PORTS:
        return f"SMTP goes to a mail port: {', '.join(map(str, MAIL_PORTS))}."
    return ""


def recordings_path_problem(path: str) -> str:
    """Why ``path`` may not hold a server's recordings, or ''."""
    root = settings.RECORDINGS_ROOT
    if not root or not path:
        return ""
    try:
        inside = Path(path).resolve().is_relative_to(Path(root).resolve())
    except (OSError, ValueError):
        inside = False
    return "" if inside else f"Recordings must be kept under {root}."

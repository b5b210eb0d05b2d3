"""Short-lived signatures on a video server's recording URLs.

Recordings stay on the video server that wrote them and its agent serves them over HTTP. Nothing is
served without a token issued for that server and that camera, valid for a minute: the web application
issues one per request it makes to an agent (and an agent issues its own to copy a backup's recordings
back). The key is the site's secret key, which the web application and the agents share through their
settings, salted per video server, so that a token for one server opens nothing on another.
"""

import time

from django.core import signing

LIFETIME = 60.0


class Refused(Exception):
    """The token is missing, forged, expired, or made for another server or camera."""


def _salt(server_name: str) -> str:
    return f"recordings:{server_name}"


def token(server_name: str, camera_id: int, lifetime: float = LIFETIME, clock=time.time) -> str:
    return signing.dumps({"c": camera_id, "e": round(clock() + lifetime, 3)}, salt=_salt(server_name))


def check(value: str | None, server_name: str, camera_id: int, clock=time.time) -> None:
    """Raises Refused unless ``value`` is a live token for this server and camera."""
    if not value:
        raise Refused("no token")
    try:
        claims = signing.loads(value, salt=_salt(server_name))
    except signing.BadSignature:
        raise Refused("bad signature") from None
    if not isinstance(claims, dict) or claims.get("c") != camera_id:
        raise Refused("made for another camera")
    if not isinstance(claims.get("e"), int | float) or claims["e"] < clock():
        raise Refused("expired")

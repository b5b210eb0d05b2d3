"""Websockets are accepted from the site's own pages only: the Origin must be the site's own
scheme, host and port (or one of CSRF_TRUSTED_ORIGINS, for a site behind a proxy).

Browsers send the session cookie (SameSite=Lax) to every port of a host, so checking the host
alone would let another web application on the same host open the live socket as the user.
"""

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin1")
    return None


def own_origins(scope) -> set[str]:
    """The origins of the site's own pages for this connection; empty for a host it does not serve."""
    host = _header(scope, b"host")
    if not host:
        return set()
    domain, _port = split_domain_port(host)
    allowed = settings.ALLOWED_HOSTS or ([".localhost", "127.0.0.1", "[::1]"] if settings.DEBUG else [])  # as Django
    if not domain or not validate_host(domain, allowed):
        return set()
    scheme = "https" if scope.get("scheme") in ("wss", "https") else "http"
    return {f"{scheme}://{host.lower()}", *settings.CSRF_TRUSTED_ORIGINS}


class SameOriginValidator:
    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        origin = _header(scope, b"origin")
        if origin is not None and origin.lower() in {o.lower() for o in own_origins(scope)}:
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)

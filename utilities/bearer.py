"""An optional shared token for the metrics pages (``METRICS_TOKEN``): Prometheus sends it as
``Authorization: Bearer <token>`` (its scrape config's ``authorization: {credentials: ...}``).

Health checks stay open (load balancers ask them without credentials); the metrics name every system's servers
and cameras, which a site may want to keep to its monitoring. Compared in constant time; an empty token asks for
nothing.
"""

import hmac

CHALLENGE = 'Bearer realm="metrics"'


def allows(authorization: str | None, token: str) -> bool:
    """Whether a request with this ``Authorization`` header may read a page guarded by ``token``."""
    if not token:
        return True
    scheme, _, given = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())

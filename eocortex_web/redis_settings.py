"""The settings of every use of Redis but the live protocol's own clients (protocol/connections.py): Celery's
broker, the Channels layer and the cache, derived from one plain Redis URL or from a Sentinel deployment.

Pure functions of their arguments: settings.py calls them once at start-up, and a test that starts Sentinels of
its own calls them again for its settings. ``sentinels`` is a list of (host, port), empty for a plain Redis.
"""

from urllib.parse import quote

from django.core.exceptions import ImproperlyConfigured

from protocol.connections import sentinel_kwargs, url_credentials

PLAIN_CACHE = "django.core.cache.backends.redis.RedisCache"
SENTINEL_CACHE = "eocortex_web.cache.SentinelRedisCache"
# channels-redis waits for a socket's messages in blocking reads of 5 s (brpop_timeout): its client's read timeout
# (redis-py's default is 5 s too) must be longer, or every idle wait races it and the live page's socket closes
# with 1011.
CHANNELS_SOCKET_TIMEOUT = 15


def parse_sentinels(entries: list[str]) -> list[tuple[str, int]]:
    """``REDIS_SENTINELS``' entries, each ``host:port`` (``[v6address]:port``); ImproperlyConfigured names a bad one."""
    sentinels = []
    for entry in entries:
        host, colon, port = entry.strip().rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ImproperlyConfigured(
                f"REDIS_SENTINELS: {entry.strip()!r} is not host:port (for example 10.0.0.11:26379,10.0.0.12:26379)"
            )
        sentinels.append((host, int(port)))
    return sentinels


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def broker_url(url: str, sentinels: list[tuple[str, int]]) -> str:
    """Celery's broker: ``url`` itself, or kombu's ``sentinel://`` transport, one URL per Sentinel joined by ``;``,
    each with ``url``'s password and database (kombu logs in to the master with them)."""
    if not sentinels:
        return url
    credentials = url_credentials(url)
    auth = ""
    if "password" in credentials:
        auth = f"{quote(credentials.get('username', ''), safe='')}:{quote(credentials['password'], safe='')}@"
    return ";".join(f"sentinel://{auth}{_netloc(host, port)}/{credentials['db']}" for host, port in sentinels)


def broker_transport_options(broker: str, master_name: str, sentinel_password: str) -> dict:
    """kombu's transport options for a ``sentinel://`` broker (its SentinelChannel reads ``master_name`` and
    ``sentinel_kwargs``); none for any other."""
    if not broker.startswith("sentinel://"):
        return {}
    return {"master_name": master_name, "sentinel_kwargs": sentinel_kwargs(sentinel_password)}


def channel_layer_host(url: str, sentinels: list[tuple[str, int]], master_name: str, sentinel_password: str) -> dict:
    """One host of channels-redis's ``hosts``: the URL, or its Sentinel form (channels_redis.utils.create_pool)."""
    if not sentinels:
        return {"address": url, "socket_timeout": CHANNELS_SOCKET_TIMEOUT}
    return {
        "sentinels": list(sentinels),
        "master_name": master_name,
        "sentinel_kwargs": sentinel_kwargs(sentinel_password, asynchronous=True),
        **url_credentials(url),
        "socket_timeout": CHANNELS_SOCKET_TIMEOUT,
    }


def cache(url: str, sentinels: list[tuple[str, int]], master_name: str, sentinel_password: str) -> dict:
    """The default cache (the API's rate counts): Django's RedisCache, or ours that finds the master by Sentinel."""
    if not sentinels:
        return {"BACKEND": PLAIN_CACHE, "LOCATION": url}
    return {
        "BACKEND": SENTINEL_CACHE,
        "LOCATION": url,  # its database and password
        "OPTIONS": {"sentinels": list(sentinels), "master_name": master_name, "sentinel_password": sentinel_password},
    }

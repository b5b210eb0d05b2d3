"""Connections to Redis for this tree's own clients (the live protocol, the engine's wake-ups, the cache): one
plain server at ``settings.REDIS_URL``, or the master of a Sentinel deployment when ``settings.REDIS_SENTINELS``
names its Sentinels.

With Sentinels, ``REDIS_URL`` gives only the database number and the password (its host and port are ignored),
``REDIS_SENTINEL_MASTER`` the name they monitor the master by, ``REDIS_SENTINEL_PASSWORD`` theirs, if any. A
client then asks the Sentinels where the master is each time it opens a connection (redis-py's
``SentinelConnectionPool``), so one client object, kept for the life of a process, follows a failover:

- while the master is dead and not yet replaced, a call fails with ``redis.ConnectionError`` (its connection is
  refused, or the Sentinels say the master is down: ``MasterNotFoundError``), as a call to a missing plain Redis
  does; callers catch ``redis.RedisError`` as they always have;
- once the Sentinels name the promoted replica (``down-after-milliseconds`` plus an election: about 3 s with
  2000 ms), the next connection reaches it; the pool also closes its idle connections to the old address;
- an old master that comes back (it was frozen, or cut off) is made a replica by the Sentinels, which close its
  clients' connections: a call on one fails with ``ConnectionError``, and its retry (or the next call)
  reconnects through the Sentinels; a connection they missed gets READONLY for a write, which redis-py
  (``SentinelManagedConnection.read_response``) turns into the same (it closes the connection and raises
  ``ConnectionError``). Until it is made a replica, a resumed old master still takes the writes of the clients
  connected to it, and those are lost;
- pub/sub: a subscription on the dead master ends with ``ConnectionError``; subscribing again from the same
  client reaches the new master. Messages published meanwhile are lost (pub/sub keeps none).

Writes acknowledged by the old master but not yet replicated are lost in a failover (Redis replicates
asynchronously); the live state is rewritten within seconds by its writers anyway.

The Sentinels are asked with short timeouts and no retry (``SENTINEL_TIMEOUT``), so Sentinels that are down
cost a caller at most a second or so; one ``Sentinel`` per process and configuration is shared by every client.
"""

from functools import cache

import redis
import redis.asyncio
from django.conf import settings
from redis.backoff import NoBackoff
from redis.connection import parse_url
from redis.retry import Retry
from redis.sentinel import Sentinel

SENTINEL_TIMEOUT = 0.3  # each Sentinel asked, connecting and answering; three down cost a caller about a second


def sentinel_kwargs(password: str = "", asynchronous: bool = False) -> dict:
    """Connection arguments for talking to the Sentinels themselves (not the master): short, never retried (the
    next Sentinel is asked instead). ``asynchronous`` for a ``redis.asyncio`` Sentinel (channels-redis)."""
    retry_class = redis.asyncio.retry.Retry if asynchronous else Retry
    options = {"socket_timeout": SENTINEL_TIMEOUT, "socket_connect_timeout": SENTINEL_TIMEOUT,
               "retry": retry_class(NoBackoff(), 0)}  # fmt: skip
    if password:
        options["password"] = password
    return options


def url_credentials(url: str) -> dict:
    """The database number, user name and password a Redis URL gives (what a Sentinel deployment keeps of it)."""
    parts = parse_url(url)
    return {"db": parts.get("db", 0), **{k: parts[k] for k in ("username", "password") if parts.get(k)}}


def redis_configuration() -> tuple:
    """The settings a client depends on, hashable: a cache of clients keyed on it follows a change of settings."""
    return (settings.REDIS_URL, tuple(settings.REDIS_SENTINELS), settings.REDIS_SENTINEL_MASTER,
            settings.REDIS_SENTINEL_PASSWORD)  # fmt: skip


@cache
def _sentinel(sentinels: tuple[tuple[str, int], ...], password: str) -> Sentinel:
    return Sentinel(list(sentinels), sentinel_kwargs=sentinel_kwargs(password))


def master_client(url: str, sentinels, master_name: str, sentinel_password: str = "", **kwargs) -> redis.Redis:
    """A client of the master the Sentinels name ``master_name``, with ``url``'s database and password."""
    sentinel = _sentinel(tuple(map(tuple, sentinels)), sentinel_password)
    return sentinel.master_for(master_name, **{**url_credentials(url), **kwargs})


def redis_client(**kwargs) -> redis.Redis:
    """A new client of the configured Redis: ``redis.Redis.from_url(settings.REDIS_URL, **kwargs)``, or, with
    ``settings.REDIS_SENTINELS``, of the Sentinels' master. ``kwargs`` are redis-py's connection arguments
    (socket timeouts, retry, health_check_interval...), applied to the master's connections alike."""
    if not settings.REDIS_SENTINELS:
        return redis.Redis.from_url(settings.REDIS_URL, **kwargs)
    return master_client(settings.REDIS_URL, settings.REDIS_SENTINELS, settings.REDIS_SENTINEL_MASTER,
                         settings.REDIS_SENTINEL_PASSWORD, **kwargs)  # fmt: skip

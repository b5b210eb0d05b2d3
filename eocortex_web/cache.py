"""Django's Redis cache on the master of a Sentinel deployment (Django's own RedisCache takes server URLs only).

Configured by eocortex_web/redis_settings.py: ``LOCATION`` the Redis URL (its database and password; its host is
ignored), ``OPTIONS`` the Sentinels, the master's name and their password. Every operation goes to the master:
the cache holds the API's rate counts, which a replica's stale read would undercount.
"""

from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from redis.backoff import NoBackoff
from redis.retry import Retry

from protocol.connections import master_client


class SentinelRedisCacheClient(RedisCacheClient):
    def __init__(self, servers, sentinels, master_name, sentinel_password="", **options):
        # One retry: a connection left to a master that was failed over fails once, the next asks the Sentinels.
        super().__init__(servers, **{"retry": Retry(NoBackoff(), 1), **options})
        self._sentinels = sentinels
        self._master_name = master_name
        self._sentinel_password = sentinel_password

    def _get_connection_pool(self, write):
        if 0 not in self._pools:
            master = master_client(self._servers[0], self._sentinels, self._master_name, self._sentinel_password,
                                   **self._pool_options)  # fmt: skip
            self._pools[0] = master.connection_pool
        return self._pools[0]


class SentinelRedisCache(RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = SentinelRedisCacheClient

"""kombu's Redis channel built a ``redis.Redis`` for every publish and acknowledgement
(``conn_or_acquire`` -> ``_create_client``); Hydra's channels (``hydra.broker.transport``) keep
one per connection pool, and a new pool (a reconnect) gets a new one."""

from __future__ import annotations

import fakeredis
import redis
from kombu.transport import redis as kombu_redis

from hydra.broker import transport


class _Kombu:
    """The part of kombu's channel the mixin stands on: a pool, and a client factory."""

    def __init__(self):
        self.server = fakeredis.FakeServer()
        self._pool = None
        self.built = 0

    @property
    def pool(self):
        if self._pool is None:
            self._pool = redis.ConnectionPool(connection_class=fakeredis.FakeRedisConnection, server=self.server)
        return self._pool

    def _create_client(self, asynchronous=False):
        self.built += 1
        return redis.Redis(connection_pool=self.pool)


class _Channel(transport._ReusesClient, _Kombu):
    pass


def test_publishes_and_acks_share_one_client_per_pool():
    channel = _Channel()
    with _acquire(channel) as first:
        first.lpush("q", "a")
    for _ in range(5):
        with _acquire(channel) as client:
            assert client is first
            client.lpush("q", "b")
    assert channel.built == 1
    assert first.llen("q") == 6


def test_a_new_pool_gets_a_new_client():
    channel = _Channel()
    with _acquire(channel) as before:
        before.set("k", "1")
    channel._pool = None  # kombu drops its pools on a disconnect
    with _acquire(channel) as after:
        assert after is not before and after.connection_pool is channel.pool
        assert after.get("k") == b"1"
    assert channel.built == 2


def test_the_asynchronous_client_is_left_to_kombu():
    channel = _Channel()
    assert channel._create_client(asynchronous=True) is not channel._create_client(asynchronous=True)


def test_hydras_channels_reuse_clients():
    assert issubclass(transport.Channel, transport._ReusesClient)
    assert issubclass(transport.SentinelChannel, transport._ReusesClient)
    assert transport.Channel.conn_or_acquire is kombu_redis.Channel.conn_or_acquire  # what calls _create_client


def _acquire(channel):
    return kombu_redis.Channel.conn_or_acquire(channel)

"""kombu's Redis transports (plain and Sentinel), with one fix Hydra needs at failover.

When a worker's broker connection breaks while it holds unacknowledged messages (acks late:
every running attempt), Celery collects the connection - which detaches the transport from
its kombu ``Connection`` - and then closes it; closing the channel restores the unacked
messages, which needs a new connection pool, which kombu builds from the detached
``Connection``: ``AttributeError: 'NoneType' object has no attribute 'hostname'``, and Celery
stops the worker as "unrecoverable" (seen killing a Sentinel master under load,
tests/integration/test_sentinel.py). Here a channel remembers the connection parameters it
was built with and uses them when its transport has been detached: the restore then goes to
the current master (Sentinel asks again), or fails with a connection error that kombu
ignores while closing, and the worker reconnects as it should.

:func:`register` makes ``redis://``, ``rediss://`` and ``sentinel://`` URLs use these
classes; ``hydra.celery.config`` calls it, so every Celery process of Hydra does.
"""

from __future__ import annotations

from types import SimpleNamespace

from kombu import transport as kombu_transport
from kombu.transport import redis as kombu_redis


class _Detached(SimpleNamespace):
    """Stands in for a detached transport's ``Connection`` while a Sentinel pool is rebuilt:
    kombu reads only the sentinels' URLs (``alt``) from it."""


def _detached(transport) -> bool:
    client = getattr(transport, "client", None)
    return client is None or isinstance(client, _Detached)


class _RemembersParams:
    _remembered: dict[bool, dict] | None = None

    def _connparams(self, asynchronous=False):
        detached = _detached(self.connection)  # type: ignore[attr-defined]
        if detached and self._remembered and asynchronous in self._remembered:
            return dict(self._remembered[asynchronous])
        params = super()._connparams(asynchronous)  # type: ignore[misc]
        if self._remembered is None:
            self._remembered = {}
        self._remembered[asynchronous] = dict(params)
        return params


class Channel(_RemembersParams, kombu_redis.Channel):
    pass


class SentinelChannel(_RemembersParams, kombu_redis.SentinelChannel):
    _alt: list[str] | None = None

    def _sentinel_managed_pool(self, asynchronous=False):
        # kombu lists the sentinels from the transport's Connection, which a broken connection
        # detached: "'NoneType' object has no attribute 'alt'" stopped the worker (seen in
        # test_sentinel). Remember them, and lend them back while the pool is rebuilt.
        transport = self.connection
        if transport.client is not None:
            self._alt = list(transport.client.alt)
            return super()._sentinel_managed_pool(asynchronous)
        transport.client = _Detached(alt=self._alt or [])
        try:
            return super()._sentinel_managed_pool(asynchronous)
        finally:
            transport.client = None


class Transport(kombu_redis.Transport):
    Channel = Channel


class SentinelTransport(kombu_redis.SentinelTransport):
    Channel = SentinelChannel


def register() -> None:
    """Resolve Redis broker URLs to the classes above (before any connection is made)."""
    for alias, cls in (("redis", "Transport"), ("rediss", "Transport"), ("sentinel", "SentinelTransport")):
        kombu_transport.TRANSPORT_ALIASES[alias] = f"{__name__}:{cls}"
        kombu_transport._transport_cache.pop(alias, None)

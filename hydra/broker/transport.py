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
classes; ``celeryconfig`` calls it, so every Celery process of Hydra does.

The same channels reuse one ``redis.Redis`` client per connection pool (:class:`_ReusesClient`):
kombu built a new one for every publish, acknowledgement and event, and building one (its own
event dispatcher, a copy of every response callback) cost a worker's main process about a
fifth of its CPU and the API about 5 %.

The same channels read every popped item through ``hydra.broker.envelope``: an item kombu
could not turn into a Message used to raise out of the consumer's loop (the worker stopped
as "unrecoverable", the item was lost); it is now delivered as a stand-in that its consumer
refuses and records.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace

from kombu import transport as kombu_transport
from kombu.transport import redis as kombu_redis
from kombu.utils.encoding import bytes_to_str

from hydra.broker import envelope

log = logging.getLogger(__name__)


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


class _ReusesClient:
    """One synchronous ``redis.Redis`` per channel and connection pool, where kombu 5.7's
    ``Channel._create_client`` (behind ``conn_or_acquire``: every ``LPUSH`` of a message,
    ``PUBLISH`` of an event, the acknowledgement's transaction) builds a new one each time.
    A client over a pool is safe to share between threads (each command takes a connection
    from the pool and gives it back), holds no connection of its own, and closing one leaves
    its pool alone; when the channel replaces its pool (a reconnect), the next call builds a
    client over the new one. The asynchronous client (``BRPOP``, kombu's ``client``) is kombu's
    own, already made once per channel."""

    _shared_client = None

    def _create_client(self, asynchronous=False):
        if asynchronous:
            return super()._create_client(asynchronous=True)  # type: ignore[misc]
        pool = self.pool  # type: ignore[attr-defined]
        client = self._shared_client
        if client is None or client.connection_pool is not pool:
            client = self._shared_client = super()._create_client(asynchronous=False)  # type: ignore[misc]
        return client


class QoS(kombu_redis.QoS):
    """kombu's acknowledgement emulation, except that an entry of its ``unacked`` hash that is
    no ``[message, exchange, routing key]`` is dropped with a log line when it is due to be
    restored: kombu raised, and a worker restores due entries as it starts consuming, so one
    such entry (anyone with the broker password can write it) stopped every worker that
    started. An entry that reads correctly is restored by kombu as before."""

    def restore_by_tag(self, tag, client=None, leftmost=False):
        with self.channel.conn_or_acquire(client) as conn:
            reason = envelope.unrestorable(conn.hget(self.unacked_key, tag))
            if reason is None:
                return super().restore_by_tag(tag, client=conn, leftmost=leftmost)
            log.warning(
                "malformed unacknowledged entry dropped: %s",
                reason,
                extra={"event": "broker.malformed_dropped", "reason": reason, "tag": bytes_to_str(tag)},
            )
            self._remove_from_indices(tag, conn.pipeline()).execute()
            return None


class _ReadsEnvelopes(kombu_redis.Channel):
    """Where kombu 5.7's Redis channel parses a popped item or a published message
    (``loads(bytes_to_str(item))`` in ``_brpop_read``, ``_get`` and ``_receive_one``), the
    envelope is read by :func:`envelope.read` instead; the rest of each method is kombu's
    own (tests/unit/test_envelope.py notices when kombu's change). Fan-out messages (events,
    broadcast commands) that kombu cannot read are dropped with a log line, as kombu itself
    drops those that are not JSON: they are no run's message."""

    Message = envelope.Message
    QoS = QoS

    def _brpop_read(self, **options):
        try:
            try:
                dest__item = self.client.parse_response(self.client.connection, "BRPOP", **options)
            except self.connection_errors:
                # if there's a ConnectionError, disconnect so the next
                # iteration will reconnect automatically.
                self.client.connection.disconnect()
                raise
            if dest__item:
                dest, item = dest__item
                dest = bytes_to_str(dest).rsplit(self.sep, 1)[0]
                self._queue_cycle.rotate(dest)
                self.connection._deliver(envelope.read(self, item, dest), dest)
                return True
            else:
                raise kombu_redis.Empty()
        finally:
            self._in_poll = None  # type: ignore[assignment]  # kombu's own
            self._flush_brpop_reauth()

    def _get(self, queue, timeout=None):  # timeout: the virtual channel's signature; Redis ignores it
        with self.conn_or_acquire() as client:
            for pri in self.priority_steps:
                item = client.rpop(self._q_for_pri(queue, pri))
                if item:
                    self._maybe_update_queues_expire(client, queue)
                    return envelope.read(self, item, queue)
            self._maybe_update_queues_expire(client, queue)
            raise kombu_redis.Empty()

    def _receive_one(self, c):
        response = None
        try:
            response = c.parse_response()
        except self.connection_errors:
            self._in_listen = None  # type: ignore[assignment]  # kombu's own
            raise
        if isinstance(response, (list, tuple)):
            payload = self._handle_message(c, response)
            if bytes_to_str(payload["type"]).endswith("message"):
                channel = bytes_to_str(payload["channel"])
                if payload["data"]:
                    if channel[0] == "/":
                        _, _, channel = channel.partition(".")
                    message = envelope.read(self, payload["data"], channel)
                    exchange = channel.split("/", 1)[0]
                    return self._deliver_fanout_message(message, exchange)
        return None

    def _deliver_fanout_message(self, message, exchange):
        reason = envelope.reason_of(message)
        if reason is not None:
            log.warning(
                "malformed broadcast dropped: %s",
                reason,
                extra={"event": "broker.malformed_dropped", "exchange": exchange, "reason": reason},
            )
            return False
        return super()._deliver_fanout_message(message, exchange)


class Channel(_ReusesClient, _RemembersParams, _ReadsEnvelopes):
    pass


class SentinelChannel(_ReusesClient, _RemembersParams, _ReadsEnvelopes, kombu_redis.SentinelChannel):
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

"""Sent, not yet claimed: which runs' messages should be in a queue (``hydra:sent``).

The pipeline adds a run when it sends its message, the worker removes it when it claims the
attempt. So the runs left in it for long are those still waiting in a queue - or whose
message vanished (dropped by a broken worker, deleted, lost with a Redis that restarted
without its data). The controller looks at those (``hydra.control.sweeps.Sweeps.revive_vanished``):
:meth:`SentIndex.holds` tells whether the message is still in its queue, or delivered to a
worker and not acknowledged. MongoDB stays the record of truth; a flushed index only means
the controller's reconciliation after a Redis reset does this work instead.
"""

from __future__ import annotations

import json

from hydra import names
from hydra.broker.redis import RedisBacked
from hydra.model.priority import level_keys

_CHUNK = 500


class SentIndex(RedisBacked):
    def add(self, run_id: str, at: float) -> None:
        self.redis.zadd(names.SENT_KEY, {run_id: at})

    def remove(self, run_id: str) -> None:
        self.redis.zrem(names.SENT_KEY, run_id)

    def older_than(self, cutoff: float, limit: int = 200) -> list[str]:
        """Run ids sent before ``cutoff`` (epoch seconds) and not claimed, oldest first."""
        return list(self.redis.zrangebyscore(names.SENT_KEY, "-inf", cutoff, start=0, num=limit))

    def size(self) -> int:
        return int(self.redis.zcard(names.SENT_KEY))

    def holds(self, queue: str, run_id: str, scan_limit: int = 50_000) -> bool:
        """Is a message for ``run_id`` waiting in ``queue`` (any priority level) or delivered
        and unacknowledged? Looks at up to ``scan_limit`` messages of the queue; True (do
        nothing) when the queue is longer than that."""
        seen = 0
        for key in level_keys(queue):
            start = 0
            while True:
                batch = self.redis.lrange(key, start, start + _CHUNK - 1)
                if any(run_id in raw for raw in batch):
                    return True
                seen += len(batch)
                if seen >= scan_limit:
                    return True
                if len(batch) < _CHUNK:
                    break
                start += _CHUNK
        cursor = 0
        while True:
            cursor, entries = self.redis.hscan(names.KOMBU_UNACKED_KEY, cursor, count=_CHUNK)
            if any(run_id in raw for raw in entries.values()):
                return True
            if not cursor:
                return False


def unacked_for(client, queue: str, run_ids: set[str]) -> list[str]:
    """The delivery tags of the messages kombu holds as delivered and unacknowledged
    (``unacked``: tag -> [message, exchange, routing key]) that were taken from ``queue`` and
    carry one of ``run_ids`` (the task id)."""
    tags = []
    cursor = 0
    while True:
        cursor, entries = client.hscan(names.KOMBU_UNACKED_KEY, cursor, count=_CHUNK)
        for tag, raw in entries.items():
            try:
                message, _exchange, routing_key = json.loads(raw)
                task_id = (message.get("headers") or {}).get("id")
            except (ValueError, TypeError, AttributeError):
                continue
            if routing_key == queue and task_id in run_ids:
                tags.append(tag.decode() if isinstance(tag, bytes) else tag)
        if not cursor:
            return tags

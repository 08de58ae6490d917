"""The due index: delayed runs by the time they may start (``hydra:due``, a sorted set).

A delayed run (a retry after its backoff, a one-off at ``scheduled_at``) is recorded in
MongoDB as pending with ``not_before``; this index lets the controller find the due ones
without a scan. MongoDB keeps the truth: after a flush the controller's sweep of pending
runs finds them again (``hydra.control.ticker``).
"""

from __future__ import annotations

from datetime import datetime

from hydra import names
from hydra.broker.redis import RedisBacked


class DueIndex(RedisBacked):
    def add(self, run_id: str, at: datetime) -> None:
        self.redis.zadd(names.DUE_KEY, {run_id: at.timestamp()})

    def due(self, now: datetime, limit: int = 500) -> list[str]:
        """Run ids whose time has come, earliest first."""
        return list(self.redis.zrangebyscore(names.DUE_KEY, "-inf", now.timestamp(), start=0, num=limit))

    def remove(self, run_id: str) -> None:
        self.redis.zrem(names.DUE_KEY, run_id)

    def size(self) -> int:
        return int(self.redis.zcard(names.DUE_KEY))


class NoticeDue(RedisBacked):
    """Notifications by when their next delivery attempt is due (``hydra:notify:due``): filed
    before the notification is written, so the leading controller always finds it."""

    def add(self, run_id: str, at: float) -> None:
        self.redis.zadd(names.NOTIFY_DUE_KEY, {run_id: at})

    def due(self, now: float, limit: int = 50) -> list[str]:
        return list(self.redis.zrangebyscore(names.NOTIFY_DUE_KEY, "-inf", now, start=0, num=limit))

    def score(self, run_id: str) -> float | None:
        """When its next attempt is due (None: not filed)."""
        return self.redis.zscore(names.NOTIFY_DUE_KEY, run_id)

    def remove(self, run_id: str) -> None:
        self.redis.zrem(names.NOTIFY_DUE_KEY, run_id)

    def size(self) -> int:
        return int(self.redis.zcard(names.NOTIFY_DUE_KEY))

"""The one clock: every time Hydra stores, compares or reports comes from here.

Stored times are timezone-aware UTC datetimes (MongoDB keeps milliseconds). Durations are
measured with ``time.monotonic`` where they are taken, never with this clock.
"""

from __future__ import annotations

import calendar
import time
from datetime import UTC, datetime


def utcnow() -> datetime:
    """Now, as an aware UTC datetime."""
    return datetime.now(UTC)


def epoch() -> float:
    """Now, as seconds since the epoch (what Redis scores and heartbeats use)."""
    return time.time()


def from_epoch(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def millis(value: datetime) -> int:
    """Milliseconds since the epoch, truncated the way MongoDB stores a datetime (so an index
    score made from a record's time equals the time read back from MongoDB)."""
    offset = value.utcoffset()
    if offset is not None:
        value = value - offset
    return calendar.timegm(value.timetuple()) * 1000 + value.microsecond // 1000


def from_millis(ms: float) -> datetime:
    """The aware UTC datetime of an epoch-milliseconds value (an index score)."""
    whole = int(ms)
    return datetime.fromtimestamp(whole // 1000, UTC).replace(microsecond=(whole % 1000) * 1000)


def aware(value: datetime | None) -> datetime | None:
    """A datetime read back from a store, as aware UTC (a naive one is taken as UTC)."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def parse_iso(text: str) -> datetime:
    """The one ISO 8601 parser (``Z`` for UTC too): raises ValueError for anything else. The
    client and the CLI use it too (this module needs nothing but the standard library)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def parse(value: datetime | str | None) -> datetime | str | None:
    """An ISO 8601 string (how JSON carries times) as a datetime; anything else as is."""
    if isinstance(value, str):
        try:
            return parse_iso(value)
        except ValueError:
            return value
    return value

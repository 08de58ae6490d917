"""Cron arithmetic (pure): the ticks of a 5-field expression in a time zone, as UTC instants.

Built on croniter with zoneinfo. Daylight-saving changes follow what cron users expect:

* a local time that does not exist (spring forward, e.g. 02:30 in New York on the second
  Sunday of March) fires at the first valid moment after the gap (03:00);
* a local time that happens twice (fall back, 01:30 on the first Sunday of November) fires
  **once** when the expression names fixed hours (``30 1 * * *``): the repeated wall-clock
  hour is skipped. An expression firing every hour (hour field ``*``) fires in both hours,
  because they are distinct real hours (``0 * * * *`` runs every 60 minutes, also then).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from croniter import croniter

#: Namespace of the run ids of cron ticks (uuid5 of job id and tick instant).
TICK_NAMESPACE = uuid.UUID("5d3f3c1e-8a4f-4f5e-9b3a-6c1d2e7f9a10")
#: A safety bound: no sane expression needs this many skipped candidates in a row.
_MAX_SKIPS = 4


@lru_cache(maxsize=1024)
def _fixed_hours(expr: str) -> bool:
    return croniter(expr).expanded[1] != ["*"]


def _repeated(local: datetime) -> bool:
    """True for the second occurrence of an ambiguous wall-clock time (after fall back)."""
    first, second = local.replace(fold=0), local.replace(fold=1)
    return first.utcoffset() != second.utcoffset() and local.utcoffset() == second.utcoffset()


def _iterate(expr: str, tz: str, start: datetime, forward: bool) -> datetime:
    zone = ZoneInfo(tz)
    it = croniter(expr, start.astimezone(zone))
    skip_repeats = _fixed_hours(expr)
    for _ in range(_MAX_SKIPS + 1):
        local = it.get_next(datetime) if forward else it.get_prev(datetime)
        if not (skip_repeats and _repeated(local)):
            return local.astimezone(UTC)
    raise ValueError(f"no usable tick for {expr!r} in {tz} near {start.isoformat()}")


def next_fire(expr: str, tz: str, after: datetime) -> datetime:
    """The first tick strictly after ``after`` (an aware datetime), in UTC."""
    return _iterate(expr, tz, after, forward=True)


def last_fire(expr: str, tz: str, at: datetime) -> datetime:
    """The latest tick at or before ``at`` (an aware datetime), in UTC."""
    # croniter's get_prev is strictly before its start; a microsecond later includes `at`.
    return _iterate(expr, tz, at + timedelta(microseconds=1), forward=False)


def tick_run_id(job_id: str, tick: datetime) -> str:
    """The run id of a job's cron tick: the same for every scheduler that fires it, so the
    second insert of its run record fails on the unique ``_id``."""
    stamp = tick.astimezone(UTC).isoformat(timespec="seconds")
    return str(uuid.uuid5(TICK_NAMESPACE, f"{job_id}@{stamp}"))

"""Minute-by-minute counts of ended runs, for the console's charts (bounded by design).

Where ``hydra.broker.metrics`` keeps totals since the start, this keeps one small Redis hash
per namespace and minute, ``hydra:series:<namespace>:<minute>``: ``s:<status>`` -> attempts that
ended with that status, ``d:<bound>`` -> those of them that ran, by duration bucket (the
bounds of ``metrics.DURATION_BUCKETS``). Each hash expires after :data:`KEEP`; the namespace
``*`` sums every namespace (for callers who may read them all). A window is read with one
pipelined HGETALL per minute and namespace, so the cost of a chart depends on its window,
never on the history: at most :data:`MAX_WINDOW` minutes, summed into at most
:data:`MAX_POINTS` buckets.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

from hydra import names
from hydra.broker.redis import get_redis, translated

log = logging.getLogger(__name__)

PREFIX = names.REDIS_PREFIX + "series:"
ALL = "*"
#: How long a minute's counts are kept (seconds): a day, and an hour of slack.
KEEP = 25 * 3600
#: The longest window a chart may ask for (minutes).
MAX_WINDOW = 24 * 60
#: The most points a chart gets (minutes are summed into buckets of equal width).
MAX_POINTS = 120


def minute_of(epoch: float) -> int:
    return int(epoch // 60)


def key(namespace: str, minute: int) -> str:
    return f"{PREFIX}{namespace}:{minute}"


def bound_label(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(float(bound))


def count(
    namespace: str, status: str, duration: float | None, bound: float | None, at: float, redis=None, pipe=None
) -> None:
    """Count one ended attempt in its minute (and duration bucket ``bound`` when it ran). Never
    raises. With ``pipe`` (a pipeline without a transaction), the counts are only added to it:
    its owner sends them with its own (one round trip for all of an end's counters)."""
    try:
        own = pipe is None
        pipe = (redis or get_redis()).pipeline(transaction=False) if own else pipe
        for ns in (namespace, ALL):
            name = key(ns, minute_of(at))
            pipe.hincrby(name, f"s:{status}", 1)
            if duration is not None and bound is not None:
                pipe.hincrby(name, f"d:{bound_label(bound)}", 1)
            pipe.expire(name, KEEP)
        if own:
            pipe.execute()
    except Exception as exc:  # noqa: BLE001 - a chart must never fail a run's end
        log.debug("series not counted: %s", exc)


@dataclass
class Window:
    """Counts over a window: per bucket start (epoch seconds) and status, and by duration bound."""

    starts: list[int]
    step: int  # seconds per bucket
    by_status: dict[str, list[int]] = field(default_factory=dict)
    durations: dict[str, int] = field(default_factory=dict)


def read(namespaces: list[str] | None, *, minutes: int, now: float, redis=None) -> Window:
    """The last ``minutes`` (1..MAX_WINDOW) up to ``now``, for ``namespaces`` (None: all of them)."""
    minutes = max(1, min(int(minutes), MAX_WINDOW))
    per_bucket = math.ceil(minutes / MAX_POINTS)
    buckets = math.ceil(minutes / per_bucket)
    last = minute_of(now)
    first = last - buckets * per_bucket + 1
    spaces = [ALL] if namespaces is None else sorted(set(namespaces))
    window = Window(starts=[(first + i * per_bucket) * 60 for i in range(buckets)], step=per_bucket * 60)
    if not spaces:
        return window
    with translated():
        redis = redis or get_redis()
        pipe = redis.pipeline(transaction=False)
        slots = [(m, ns) for m in range(first, last + 1) for ns in spaces]
        for m, ns in slots:
            pipe.hgetall(key(ns, m))
        answers = pipe.execute()
    for (m, _ns), counts in zip(slots, answers, strict=True):
        index = (m - first) // per_bucket
        for name, value in (counts or {}).items():
            kind, _, label = name.partition(":")
            if kind == "s":
                window.by_status.setdefault(label, [0] * buckets)[index] += int(value)
            elif kind == "d":
                window.durations[label] = window.durations.get(label, 0) + int(value)
    return window

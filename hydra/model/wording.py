"""A job's settings as words, for people: where it may run, how it is retried, when it runs.

Pure functions of the stored values (no I/O), shared by the web console and the CLI, so
both say the same thing the same way::

    affinity({"os": ["linux"], "tags": ["gpu"], "allowed_users": ["rich", "ana"]})
        -> "linux workers tagged gpu, users rich or ana"
    retries(3, {"base": 2, "cap": 60})
        -> "3 retries, exponential backoff from 2 s, at most 1 min"
    schedule("0 2 * * *", "UTC")
        -> "every day at 02:00 UTC (cron 0 2 * * *)"

Cron expressions are described by cron-descriptor (24-hour clock, English); what Hydra
adds is the time zone and the expression itself, so nothing is lost in the telling.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from cron_descriptor import ExpressionDescriptor, FormatError, Options

from hydra.model.lifecycle import DEFAULT_MAX_LOST, Backoff

#: A time of day in a description (``02:00``).
_CLOCK = re.compile(r"\d\d:\d\d")
#: The jitter a job gets when its backoff names none (not worth saying).
_DEFAULT_JITTER = Backoff().jitter


def either(items: Iterable[str], word: str = "or") -> str:
    """``a``, ``a or b``, ``a, b or c``."""
    items = [str(item) for item in items]
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {word} {items[-1]}"


def duration(seconds: float | None) -> str:
    """``0.25 s``, ``2 s``, ``1 min 30 s``, ``2 h 5 min``, ``3 d 4 h`` (``-`` for none)."""
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "-"
    seconds = float(seconds)
    if seconds < 10:
        text = f"{seconds:.2f}".rstrip("0").rstrip(".")
        return f"{text or '0'} s"
    total = round(seconds)
    if total < 60:
        return f"{total} s"
    for unit, size, small, small_size in (("d", 86400, "h", 3600), ("h", 3600, "min", 60), ("min", 60, "s", 1)):
        if total >= size:
            big, rest = divmod(total, size)
            rest //= small_size
            return f"{big} {unit} {rest} {small}" if rest else f"{big} {unit}"
    return f"{total} s"  # (not reached)


def affinity(given: Mapping | None) -> str:
    """Where a job may run, e.g. ``linux workers tagged gpu, users rich or ana``."""
    given = given or {}
    systems, tags, users = given.get("os") or [], given.get("tags") or [], given.get("allowed_users") or []
    text = f"{either(systems)} workers" if systems else "any worker"
    if tags:
        text += f" tagged {either(tags, 'and')}"
    if users:
        text += f", {'user' if len(users) == 1 else 'users'} {either(users)}"
    return text


def limits(resources: Mapping) -> str:
    """A job's resource limits in words: ``512 MiB memory, 0.5 cpu`` (each run)."""
    parts = []
    if resources.get("memory_mb") is not None:
        parts.append(f"{resources['memory_mb']} MiB memory")
    if resources.get("cpu") is not None:
        parts.append(f"{resources['cpu']:g} cpu")
    return ", ".join(parts) + " (each run)" if parts else "none"


def retries(count: int | None, backoff: Mapping | None = None, max_lost: int | None = None) -> str:
    """How failed attempts are retried, e.g. ``3 retries, exponential backoff from 2 s, at most 1 min``;
    with ``max_lost`` (set, or not the default) how often a lost worker's attempt starts again."""
    count = int(count or 0)
    policy = Backoff.of(dict(backoff or {}))
    if count == 0:
        text = "no retries"
    else:
        text = f"{count} {'retry' if count == 1 else 'retries'}, "
        if policy.factor == 1 or policy.base >= policy.cap:
            text += f"{duration(min(policy.base, policy.cap))} apart"
        else:
            times = "" if policy.factor == 2 else f", each wait {policy.factor:g} times the last"
            text += f"exponential backoff from {duration(policy.base)}{times}, at most {duration(policy.cap)}"
        if policy.jitter != _DEFAULT_JITTER:
            text += f", {policy.jitter:.0%} jitter" if policy.jitter else ", no jitter"
    if max_lost is not None and max_lost != DEFAULT_MAX_LOST:
        text += f"; started elsewhere up to {max_lost} times when its worker is lost"
    return text


def _describe(expr: str) -> str:
    options = Options()
    options.use_24hour_time_format = True
    options.verbose = False
    return ExpressionDescriptor(expr, options).get_description()


def schedule(expr: str | None, timezone: str | None = None) -> str:
    """A cron schedule, e.g. ``every day at 02:00 UTC (cron 0 2 * * *)``; the expression alone
    when it cannot be described."""
    if not expr:
        return "no schedule"
    zone = timezone or "UTC"
    try:
        text = _describe(expr)
    except (FormatError, ValueError, IndexError, KeyError) as exc:  # not one cron-descriptor can tell
        return f"cron {expr} ({zone}; {str(exc) or 'not described'})"
    first, comma, rest = text.partition(",")
    if not _CLOCK.search(first):
        return f"{text[0].lower()}{text[1:]} ({zone}; cron {expr})"
    if first.startswith("At ") and expr.split()[2:5] == ["*", "*", "*"]:
        first = "every day at " + first[3:]
    # a time of day: say whose, right after it
    return f"{first[0].lower()}{first[1:]} {zone}{comma}{rest} (cron {expr})"


def once(at: datetime | None) -> str:
    """A one-off start, e.g. ``once, at 2026-12-24 17:00:00Z``."""
    return "runs when submitted" if at is None else f"once, at {timestamp(at)}"


def timestamp(moment: datetime | None) -> str:
    """The one way a time is written: UTC, ``2026-12-24 17:00:00Z`` (``-`` for none)."""
    if moment is None:
        return "-"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")

"""Job priority (0-100, higher first) mapped onto the broker's priority levels.

A job's priority is an integer from 0 (lowest) to 100 (highest), default 50. The broker is Redis, and kombu's Redis transport emulates priorities with one
list per level (``<queue>``, ``<queue>:1`` ... ``<queue>:9``, see ``broker_transport_options``
in ``celeryconfig``, which take :data:`LEVELS` and :data:`SEP` from here); a worker pops from the lists in level order, and **lower levels are
served first** (level 0 is the most urgent). So 0-100 is cut into ten bands of about ten
and reversed:

=========  =====  ==================================
priority   level  note
=========  =====  ==================================
91-100     0      served first
81-90      1
...        ...
41-50      5      the default priority 50
...        ...
11-20      8
0-10       9      served last
=========  =====  ==================================

Order holds among the messages waiting in one worker's queue; a message a worker already
reserved is not overtaken (Hydra's workers reserve one message per free slot:
``worker_prefetch_multiplier = 1`` with late acks). Within a level, order is FIFO.
"""

from __future__ import annotations

#: kombu's Redis levels, in the order a worker serves them.
LEVELS = list(range(10))
HIGHEST, LOWEST = 100, 0
#: Separator between a queue name and its level in the Redis key (``celeryconfig``'s ``sep``).
SEP = ":"


def broker_level(priority: int | None, default: int = 50) -> int:
    """The broker level (0 = served first, 9 = last) of a job priority 0-100 (higher first).

    Out-of-range values are clamped; None (or anything not a number) counts as ``default``.
    """
    try:
        value = int(priority) if priority is not None else default
    except (TypeError, ValueError):
        value = default
    value = min(HIGHEST, max(LOWEST, value))
    return LEVELS[-1] - value * len(LEVELS) // (HIGHEST + 1)


def level_keys(queue: str) -> list[str]:
    """The Redis lists that hold a queue's messages, one per level (level 0 is the bare name):
    what a queue's depth is counted over."""
    return [queue if level == 0 else f"{queue}{SEP}{level}" for level in LEVELS]

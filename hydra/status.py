"""The one run-status vocabulary.

A run is one attempt at executing a job. Its life::

    pending --(an eligible worker appears)--> queued --(worker claims it)--> running
    queued/running --> succeeded | failed | timed_out | cancelled | lost
    failed/timed_out/lost --(attempts left)--> retrying (a new attempt is created)
    failed/timed_out/lost --(no attempts left)--> dead_letter

Seed 003 names map onto these as: ``completed`` -> ``succeeded``; ``queued``, ``failed``,
``retrying`` and ``dead_letter`` are the same words.
"""
from __future__ import annotations

from enum import Enum


class RunStatus(str, Enum):
    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    LOST = "lost"
    RETRYING = "retrying"
    DEAD_LETTER = "dead_letter"

    def __str__(self) -> str:  # so f"{status}" prints "running", not "RunStatus.RUNNING"
        return self.value

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL


#: Statuses after which an attempt never changes again.
TERMINAL = frozenset({
    RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.CANCELLED,
    RunStatus.LOST, RunStatus.RETRYING, RunStatus.DEAD_LETTER,
})
#: Statuses of an attempt that still holds (or waits for) a worker.
ACTIVE = frozenset({RunStatus.PENDING, RunStatus.QUEUED, RunStatus.RUNNING})

#: Seed 003's words accepted as filters.
ALIASES = {"completed": RunStatus.SUCCEEDED}


def parse_status(word: str) -> RunStatus:
    """``'completed'`` -> SUCCEEDED; raises ValueError for an unknown word."""
    word = word.strip().lower()
    if word in ALIASES:
        return ALIASES[word]
    return RunStatus(word)

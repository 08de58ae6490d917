"""The one run-status vocabulary, and the groups of statuses the rest of Hydra asks about.

What each status means, and how a run moves between them, is described once, for users, in
docs/concepts/statuses.md; here are the words and the groups the code decides by.
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
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

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL


#: Statuses after which an attempt never changes again.
TERMINAL = frozenset(
    {
        RunStatus.SUCCEEDED,
        RunStatus.FAILED,
        RunStatus.TIMED_OUT,
        RunStatus.CANCELLED,
        RunStatus.LOST,
        RunStatus.RETRYING,
        RunStatus.DEAD_LETTER,
    }
)
#: Statuses of an attempt that still holds (or waits for) a worker.
ACTIVE = frozenset({RunStatus.PENDING, RunStatus.QUEUED, RunStatus.RUNNING})
#: Ends that another attempt of the same job follows (a retry after its backoff, or a failover).
FOLLOWED = frozenset({RunStatus.RETRYING, RunStatus.LOST})
#: Statuses (of a job's latest run) meaning the job is still being worked on.
IN_PROGRESS = ACTIVE | FOLLOWED
#: Outcomes a user may retry by hand.
RETRYABLE = frozenset({RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.CANCELLED, RunStatus.DEAD_LETTER})

#: What the API reports for a job (or one-off task) whose first run waits for its start time.
#: It is not a run status: that run is stored ``pending`` with ``not_before`` in the future.
SCHEDULED = "scheduled"
#: What the API reports for a job stored without a run: it declares a required parameter
#: without a default (``hydra.model.params``), so it runs when a trigger gives the value.
STORED = "stored"

#: Words accepted as filters besides the statuses themselves.
ALIASES = {"completed": RunStatus.SUCCEEDED}
#: Every word a status filter accepts.
FILTER_WORDS = tuple(s.value for s in RunStatus) + tuple(ALIASES)


def parse_status(word: str) -> RunStatus:
    """``'completed'`` -> SUCCEEDED; raises ValueError for an unknown word."""
    word = word.strip().lower()
    if word in ALIASES:
        return ALIASES[word]
    return RunStatus(word)

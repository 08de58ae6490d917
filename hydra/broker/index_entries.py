"""What the index files for one record: a run in progress as the ``active`` hash holds it, a
job's latest ends as ``ends:job`` holds them, and the other entries the scripts of
``hydra.broker.index_scripts`` are given (``hydra.broker.index`` keeps and reads them).
"""

from __future__ import annotations

from dataclasses import dataclass

from hydra import clock
from hydra.broker import index_scripts as lua
from hydra.model.records import Run
from hydra.model.status import ACTIVE, TERMINAL, RunStatus

#: Statuses of a run that keep it in the ``active`` hash.
ACTIVE_VALUES = frozenset(s.value for s in ACTIVE)
#: Statuses of an attempt that ended (filed among its job's ends).
TERMINAL_VALUES = frozenset(s.value for s in TERMINAL)
#: How many of a job's latest ends ``ends:job`` keeps.
RECENT_ENDS = lua.RECENT_ENDS


@dataclass(frozen=True)
class Active:
    """A run in progress as the ``active`` hash files it (what the sweeps filter on)."""

    run_id: str
    namespace: str
    status: str
    worker_id: str | None
    #: It was published to a queue (False: recorded pending without one - no eligible worker
    #: yet, or the broker was down).
    has_queue: bool
    not_before: float | None
    queued_at: float
    job_id: str

    @classmethod
    def parse(cls, namespace: str, run_id: str, value: str) -> Active:
        status, worker, queue, not_before, queued_at, job_id = (value.split("|", 5) + [""] * 6)[:6]
        return cls(
            run_id=run_id,
            namespace=namespace,
            status=status,
            worker_id=worker or None,
            has_queue=queue == "1",
            not_before=float(not_before) if not_before else None,
            queued_at=float(queued_at or 0),
            job_id=job_id,
        )


def active_value(run: Run) -> str:
    """The ``active`` hash value of a run in progress ('' once it ended)."""
    if run.status not in ACTIVE_VALUES:
        return ""
    not_before = str(clock.millis(run.not_before)) if run.not_before else ""
    queued_at = str(clock.millis(run.queued_at)) if run.queued_at else "0"
    return "|".join((run.status, run.worker_id or "", "1" if run.queue else "0", not_before, queued_at, run.job_id))


def dead_mark(run: Run) -> str:
    if run.status != RunStatus.DEAD_LETTER.value:
        return ""
    return "retried" if run.retried_by else "dead"


def score_of(moment) -> int:
    return clock.millis(moment) if moment is not None else 0


def end_entry(run: Run) -> str:
    """The ``ends:job`` entry of an ended attempt ('' while it has not ended)."""
    if run.status not in TERMINAL_VALUES or not run.job_id:
        return ""
    ran = "" if run.duration is None else f"{float(run.duration):.3f}"
    return f"{run.id}|{run.status}|{ran}"


@dataclass(frozen=True)
class Ended:
    """One of a job's latest ended attempts, as ``ends:job`` files it."""

    run_id: str
    status: str
    #: Seconds it ran (None: it never started).
    duration: float | None
    #: When it ended (epoch milliseconds).
    at: int

    @classmethod
    def parse(cls, entry: str, score: float) -> Ended:
        run_id, status, ran = [*entry.split("|", 2), "", ""][:3]
        return cls(run_id=run_id, status=status, duration=float(ran) if ran else None, at=int(score))

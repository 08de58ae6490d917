"""What the console shows at a glance - a job's last runs, and the home page - at a cost that
does not grow with the history.

* :func:`summaries`: for a page of jobs, each one's latest ended attempts (when, how, how long)
  and its success rate over them, from the ``ends:job`` entries the run store files as
  attempts end (``hydra.broker.index``; one round trip for the page), and its next run (its
  cron schedule, or its one-off start).
* :func:`overview`: failing jobs (the newest of them, latest failure first), attempts ended per outcome over the last day, dead letters,
  workers online and offline, queue depth. Every number is read from what Redis keeps
  already: the indexes' sorted sets (their sizes), the per-minute counters of ended runs
  (``hydra.broker.series``), the worker registry and the queues' lengths; the few records
  shown are one short page of an index each.

Everything is limited to the namespaces the caller may read (``Reader``). While the indexes
are being rebuilt (Redis lost them), what they would count is reported as unknown (None),
never as zero.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

from hydra import clock
from hydra.broker import series
from hydra.broker.index import Index
from hydra.broker.index_entries import Ended
from hydra.control import charts
from hydra.control.access import Reader
from hydra.errors import Unavailable
from hydra.model.records import Job
from hydra.model.status import RunStatus

#: A job whose latest run ended so is failing.
FAILING = (RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.DEAD_LETTER)
#: Failing jobs the home page lists (newest first); the rest are a click away.
FAILING_SHOWN = 8
#: The home page's window of ended attempts (minutes): a day.
DAY = 24 * 60


@dataclass
class JobSummary:
    """A job's latest ended attempts (newest first, at most ``index_entries.RECENT_ENDS``) and its next run."""

    ends: list[Ended] = field(default_factory=list)
    next_run: datetime | None = None
    #: ``cron`` (its schedule's next tick) or ``once`` (a one-off's start); None: none planned.
    next_kind: str | None = None

    @property
    def last(self) -> Ended | None:
        return self.ends[0] if self.ends else None

    @property
    def succeeded(self) -> int:
        return sum(1 for end in self.ends if end.status == RunStatus.SUCCEEDED.value)

    @property
    def success_rate(self) -> float | None:
        """Succeeded / ended among the kept ends (None: none ended yet)."""
        return self.succeeded / len(self.ends) if self.ends else None


def next_run(job: Job, now: datetime) -> tuple[datetime | None, str | None]:
    """When the job runs next on its own: its cron schedule's next tick, or its one-off start
    still ahead; (None, None) when nothing is planned (paused, deleted, or it ran)."""
    if job.deleted_at:
        return None, None
    if job.schedule:
        tick = job.next_run_at(now)
        return (tick, "cron") if tick else (None, None)
    if job.scheduled_at and job.scheduled_at > now:
        return job.scheduled_at, "once"
    return None, None


def summaries(reader: Reader, jobs: list[Job]) -> dict[str, JobSummary]:
    """A :class:`JobSummary` per job of ``jobs`` (ones the caller may read: a listing's page).
    Its ``ends`` are left empty while the indexes are rebuilt or Redis cannot be reached."""
    now = clock.utcnow()
    found: dict[str, list[Ended]] = {}
    index = reader.runs.index
    try:
        if jobs and index.built("runs"):
            found = index.recent_ends([(job.namespace, job.id) for job in jobs])
    except Unavailable:
        found = {}
    out = {}
    for job in jobs:
        when, kind = next_run(job, now)
        out[job.id] = JobSummary(ends=found.get(job.id, []), next_run=when, next_kind=kind)
    return out


@dataclass
class Overview:
    """The home page's numbers (None: unknown right now, see the module docstring)."""

    failing: list[Job]
    failing_counts: dict[str, int | None]
    #: Attempts ended over the last day, by status.
    ended: dict[str, int] | None
    dead_letters: int | None
    workers_online: list[str]
    workers_offline: list[str]
    #: Messages waiting per worker (busiest first), and in the pending queue (None: not visible).
    queues: list[dict] | None
    pending: int | None
    summaries: dict[str, JobSummary] = field(default_factory=dict)

    @property
    def waiting(self) -> int | None:
        return None if self.queues is None else sum(q["depth"] for q in self.queues)


def _namespaces(reader: Reader, index: Index) -> list[str]:
    visible = reader.actor.visible()
    return index.namespaces() if visible is None else visible


def overview(reader: Reader, now: float | None = None) -> Overview:
    """The home page of ``reader``'s caller."""
    index = reader.runs.index
    candidates = _failing(reader)
    known = summaries(reader, candidates)

    def last_failed(job: Job) -> tuple:
        last = known[job.id].last
        return (last.at if last else clock.millis(job.created_at or clock.utcnow()), job.id)

    failing = sorted(candidates, key=last_failed, reverse=True)[:FAILING_SHOWN]
    counts: dict[str, int | None] = dict.fromkeys((s.value for s in FAILING), None)
    dead = None
    try:
        spaces = _namespaces(reader, index)
        if index.built("jobs"):
            sizes = index.counts([index.jobs_key(ns, status=s.value) for s in FAILING for ns in spaces])
            for i, status in enumerate(FAILING):
                counts[status.value] = sum(sizes[i * len(spaces) : (i + 1) * len(spaces)])
        if index.built("runs"):
            dead = sum(index.counts([key for ns in spaces for key in index.dead_keys(ns)]))
    except Unavailable:
        pass
    try:
        window = series.read(reader.actor.visible(), minutes=DAY, now=time.time() if now is None else now)
        ended: dict[str, int] | None = {s: sum(n) for s, n in sorted(window.by_status.items()) if sum(n)}
    except Unavailable:
        ended = None
    workers = reader.all_workers()
    try:
        depths = charts.depths(reader, workers)
    except Unavailable:
        depths = None
    pending = None
    if depths is not None:
        pending = next((d["depth"] for d in depths if d["worker"] == "(pending)"), None)
        depths = sorted((d for d in depths if d["worker"] != "(pending)"), key=lambda d: (-d["depth"], d["worker"]))
    return Overview(
        failing=failing,
        failing_counts=counts,
        ended=ended,
        dead_letters=dead,
        workers_online=sorted(w.id for w in workers if w.status == "online"),
        workers_offline=sorted(w.id for w in workers if w.status != "online"),
        queues=depths,
        pending=pending,
        summaries={job.id: known[job.id] for job in failing},
    )


def _failing(reader: Reader) -> list[Job]:
    """Failing jobs to choose the shown ones from: the newest FAILING_SHOWN of each failing
    status (one short indexed page each)."""
    found: list[Job] = []
    for status in FAILING:
        page, _ = reader.jobs_page(status=status, user=None, namespace=None, limit=FAILING_SHOWN, cursor=None)
        found += page
    return found

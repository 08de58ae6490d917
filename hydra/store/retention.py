"""Retention: old history is exported (optionally) and pruned, in small batches, by the
leading controller - never by TTL indexes (FerretDB has none, and a TTL index would also
delete the fences of runs whose stale messages Redis may still hand out).

The policy (``hydra.settings``): keep ``HYDRA_RETENTION_DAYS`` days (default 30; 0 keeps
everything; anything else is at least one day, far longer than Redis's visibility timeout, so
a run's fences outlive every copy of its message). Older than that:

* a **run** that ended is deleted with its fences (``<run_id>/start``, ``/end``, ``/retry``), its
  notification (``notifications/<run_id>``),
  its flow record (``hydra.store.flows``, and the chord records it closes), its live output
  (``<run_id>/<seq>``, ``/eof``) and its full output file when ``HYDRA_OUTPUT_DIR`` keeps one
  (``hydra.store.output_dir``), then its index entries; a run still in progress is kept,
  however old;
* a **job** created before the cutoff goes with its last run - unless it has a cron schedule
  and is not deleted (its definition is still in use); one with recent runs stays until they
  are old too.

When ``HYDRA_RETENTION_EXPORT`` names a directory, each batch is appended there as JSON Lines
(``hydra-runs-<date>.jsonl``, one run record per line, as ``GET /runs/{id}`` shows it: secret
parameter values redacted) before it is deleted; ``hydra export`` writes the same lines on demand.

Each pass walks each namespace's jobs oldest first from where the last pass stopped (a
cursor in Redis), their runs older than the cutoff oldest first, and stops after
``HYDRA_RETENTION_BATCH`` runs: O(batch), whatever the history. Every read and delete is by
``_id``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from pymongo import DeleteOne

from hydra import clock, names
from hydra.model.records import Job, Run
from hydra.model.status import TERMINAL
from hydra.settings import Settings, get_settings
from hydra.store.base import Store
from hydra.store.flows import FlowStore
from hydra.store.output_dir import OutputDir
from hydra.store.runs import RunStore

log = logging.getLogger(__name__)

_ENDED = frozenset(status.value for status in TERMINAL)
#: The least retention allowed (see the module docstring).
MIN_DAYS = 1.0


def cutoff_of(days: float, now: datetime | None = None) -> datetime | None:
    """The moment before which history goes, for ``days`` kept (None: keep everything)."""
    if days <= 0:
        return None
    return (now or clock.utcnow()) - timedelta(days=max(days, MIN_DAYS))


def _ended_ms(run: Run) -> int:
    moment = run.finished_at or run.queued_at
    return clock.millis(moment) if moment is not None else 0


def run_line(run: Run) -> str:
    """One run as a JSON Lines line (times in ISO 8601)."""

    def encode(value: Any) -> str:
        if isinstance(value, datetime):
            return value.isoformat()
        raise TypeError(f"{type(value).__name__} is not JSON")

    doc = run.to_doc()
    doc["id"] = doc.pop("_id")
    doc["params"] = run.shown_params  # secret values are write-only, in an export too
    return json.dumps(doc, default=encode, sort_keys=True)


class Retention(Store[Run]):
    collection_name, record_type, kind = names.JOB_RUNS, Run, "run"

    def __init__(self, runs: RunStore | None = None, settings: Settings | None = None):
        runs = runs or RunStore()
        super().__init__(runs._db, runs.index)
        self.runs, self.jobs = runs, runs.jobs
        self.settings = settings or get_settings()

    # -- selecting ----------------------------------------------------------------------------
    def old_runs(self, cutoff: datetime, *, namespaces: list[str] | None = None) -> Iterator[Run]:
        """Every run that ended before ``cutoff``, job by job (oldest jobs first). For
        ``hydra export``: it walks the whole history below the cutoff."""
        below = clock.millis(cutoff)
        for ns in self.index.namespaces() if namespaces is None else namespaces:
            for key in (self.index.jobs_key(ns), self.index.deleted_key(ns)):
                after = None
                while entries := self.index.oldest(key, below=below, after=after, limit=200):
                    for _, job_id in entries:
                        yield from self._ended(ns, job_id, below, limit=None, tidy=False)
                    after = entries[-1]

    def _ended(self, ns: str, job_id: str, below: int, *, limit: int | None, tidy: bool = True) -> list[Run]:
        """The job's runs queued before ``below`` that ended before it, oldest first (with
        ``tidy``, entries whose record is gone - pruned, or never stored - are dropped)."""
        entries = self.index.oldest(self.index.runs_key(ns, job_id), below=below, limit=limit or 10**9)
        found = self.runs.find_many([ident for _, ident in entries])
        for _, ident in entries:
            if tidy and ident not in found:
                self.index.drop_run(ns, ident, job_id)
        runs = [found[ident] for _, ident in entries if ident in found]
        return [run for run in runs if run.status in _ENDED and _ended_ms(run) < below]

    # -- exporting ----------------------------------------------------------------------------
    def export(self, out: IO[str], cutoff: datetime, *, namespaces: list[str] | None = None) -> int:
        """Write every run that ended before ``cutoff`` as JSON Lines; returns how many."""
        count = 0
        for run in self.old_runs(cutoff, namespaces=namespaces):
            out.write(run_line(run) + "\n")
            count += 1
        return count

    def _archive(self, runs: list[Run]) -> None:
        directory = self.settings.retention_export
        if not directory or not runs:
            return
        path = Path(directory) / f"hydra-runs-{clock.utcnow():%Y-%m-%d}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as out:
            out.writelines(run_line(run) + "\n" for run in runs)
            out.flush()
            os.fsync(out.fileno())

    # -- pruning ------------------------------------------------------------------------------
    def prune(self, now: datetime | None = None, *, batch: int | None = None) -> dict[str, int]:
        """One pass: prune up to ``batch`` runs (and the jobs that go with their last run)
        from where the last pass stopped. Returns what was deleted."""
        counts = {"runs": 0, "jobs": 0}
        cutoff = cutoff_of(self.settings.retention_days, now)
        if cutoff is None or not self.index.built():
            return counts
        below = clock.millis(cutoff)
        budget = batch or self.settings.retention_batch
        for ns in self.index.namespaces():
            for key in (self.index.jobs_key(ns), self.index.deleted_key(ns)):
                budget = self._walk(ns, key, below, budget, counts)
                if budget <= 0:
                    return counts
        return counts

    def _walk(self, ns: str, key: str, below: int, budget: int, counts: dict[str, int]) -> int:
        field = f"{ns}|{key}"
        saved = self.index.redis.hget(names.RETENTION_CURSOR_KEY, field)
        after = None
        if saved:
            score, _, ident = saved.partition("|")
            after = (int(score), ident)
        entries = self.index.oldest(key, below=below, after=after, limit=max(1, budget))
        if not entries:
            self.index.redis.hdel(names.RETENTION_CURSOR_KEY, field)  # the next pass starts over
            return budget
        jobs = self.jobs.find_many([ident for _, ident in entries])
        for score, job_id in entries:
            runs = self._ended(ns, job_id, below, limit=budget)
            self._archive(runs)
            self._delete_runs(runs)
            counts["runs"] += len(runs)
            budget -= len(runs)
            if budget <= 0:
                break  # maybe more of its runs to go: the next pass starts with this job again
            job = jobs.get(job_id)
            if job is None:
                self.index.drop_job(ns, job_id, "")
            elif self._goes(job, below):
                self._delete_job(job)
                counts["jobs"] += 1
            self.index.redis.hset(names.RETENTION_CURSOR_KEY, field, f"{score}|{job_id}")
        if counts["runs"] or counts["jobs"]:
            log.info("history pruned", extra={"event": "retention.pruned", "namespace": ns, **counts})
        return budget

    def _goes(self, job: Job, below: int) -> bool:
        """A job older than the cutoff goes once it has no run left, unless its cron
        schedule is still in use."""
        if job.schedule and not job.deleted_at:
            return False
        if job.created_at is None or clock.millis(job.created_at) >= below:
            return False
        return self.index.count(self.index.runs_key(job.namespace, job.id)) == 0

    def _delete_runs(self, runs: list[Run]) -> None:
        if not runs:
            return
        output, fences = [], []
        for run in runs:
            output += [DeleteOne({"_id": names.output_chunk_id(run.id, seq)}) for seq in range(run.live_chunks or 0)]
            output.append(DeleteOne({"_id": names.output_eof_id(run.id)}))
            fences += [DeleteOne({"_id": names.fence_id(run.id, phase)}) for phase in ("start", "end", "retry")]
        # Output and fences first, the record last: a pass cut short is finished by the next.
        self.db[names.RUN_OUTPUT].bulk_write(output, ordered=False)
        self.db[names.RUN_FENCES].bulk_write(fences, ordered=False)
        self.db[names.NOTIFICATIONS].bulk_write([DeleteOne({"_id": run.id}) for run in runs], ordered=False)
        FlowStore(self.db, self.index).forget([run.id for run in runs])
        files = OutputDir.configured(self.settings)
        if files is not None:
            for run in runs:
                files.delete(run.id)
        self._collection.bulk_write([DeleteOne({"_id": run.id}) for run in runs], ordered=False)
        pipe = self.index.batch()
        for run in runs:
            self.index.drop_run(run.namespace, run.id, run.job_id, pipe=pipe)
        pipe.execute()

    def _delete_job(self, job: Job) -> None:
        self.jobs._collection.delete_one({"_id": job.id})
        self.db[names.NOTIFY_STATE].delete_one({"_id": job.id})
        self.index.drop_job(job.namespace, job.id, job.user)

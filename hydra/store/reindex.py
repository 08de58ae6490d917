"""Filing records in the Redis indexes again from MongoDB: the backlog, and a full rebuild.

Run by the leading controller (``hydra.control.upkeep.IndexKeeper``):

* :meth:`Reindexer.drain_backlog` - records written while their writer could not reach
  Redis were noted in ``index_backlog`` (``Store._backlog``); each is read by ``_id`` and
  filed as it stands now. O(what Redis missed).
* :meth:`Reindexer.rebuild` - when Redis lost the indexes (flushed, or restarted and so
  perhaps missing its last writes) every job, then every run, then every audit event is read
  once and filed; until each part is complete (:meth:`hydra.broker.index.Index.mark_built`),
  the listings it serves query MongoDB itself and hide nothing. This is the one pass that costs O(history): once per loss of Redis,
  in batches, beside the controller's ticks. Writes meanwhile keep filing what they change,
  and filing is idempotent, so a record changed during the pass ends up filed as it is.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from hydra import clock, names
from hydra.model.records import Job, Run
from hydra.model.status import ACTIVE
from hydra.store.audit import AuditEvent, AuditStore
from hydra.store.base import Store
from hydra.store.notifications import file_due
from hydra.store.runs import RunStore

log = logging.getLogger(__name__)

#: Statuses of a job whose latest run is still in progress (a claim of it moves the job).
_IN_PROGRESS = frozenset(status.value for status in ACTIVE)
#: Records read per round trip of a rebuild.
BATCH = 1000


class Reindexer(Store[Run]):
    collection_name, record_type, kind = names.JOB_RUNS, Run, "run"

    def __init__(self, runs: RunStore):
        super().__init__(runs._db, runs.index)
        self.runs, self.jobs = runs, runs.jobs
        self.audit = AuditStore(runs._db, runs.index)

    # -- one record ---------------------------------------------------------------------------
    def file_jobs(self, jobs: list[Job], pipe: Any = None) -> None:
        """File jobs as they stand (their status as ``JobStore.find`` reads it)."""
        own = pipe is None
        pipe = pipe if pipe is not None else self.index.batch()
        for job in self.jobs._current(jobs):
            latest = job.last_run_id if job.status in _IN_PROGRESS else None
            self.index.put_job(job, latest=latest, undispatched=job.undispatched, pipe=pipe)
        if own:
            pipe.execute()

    def file_runs(self, runs: list[Run], pipe: Any = None) -> None:
        own = pipe is None
        pipe = pipe if pipe is not None else self.index.batch()
        for run in self.runs._current(runs):
            self.index.put_run(run, pipe=pipe)
        if own:
            pipe.execute()

    def file_audit(self, events: list[AuditEvent], pipe: Any = None) -> None:
        own = pipe is None
        pipe = pipe if pipe is not None else self.index.batch()
        for event in events:
            self.audit.file(event, pipe=pipe)
        if own:
            pipe.execute()

    # -- the backlog --------------------------------------------------------------------------
    def drain_backlog(self, limit: int = 500) -> int:
        """File the records noted in the backlog, as they stand now; returns how many."""
        docs = self._native("backlog", {}, limit=limit)
        if not docs:
            return 0
        job_ids = [doc["ref"] for doc in docs if doc.get("kind") == "job"]
        run_ids = [doc["ref"] for doc in docs if doc.get("kind") == "run"]
        runs = self.runs.find_many(run_ids)
        job_ids += [run.job_id for run in runs.values() if run.job_id]  # their status may not be filed
        jobs = self.jobs.find_many(job_ids)
        events = self.audit.find_many([doc["ref"] for doc in docs if doc.get("kind") == "audit"])
        pipe = self.index.batch()
        self.file_runs(list(runs.values()), pipe)
        self.file_jobs(list(jobs.values()), pipe)
        self.file_audit(list(events.values()), pipe)
        pipe.execute()
        file_due([doc["ref"] for doc in docs if doc.get("kind") == "notice"], self.index.redis)
        backlog = self.db[names.INDEX_BACKLOG]
        for doc in docs:
            backlog.delete_one({"_id": doc["_id"]})
        log.info("index backlog filed", extra={"event": "index.backlog", "records": len(docs)})
        return len(docs)

    # -- a rebuild ----------------------------------------------------------------------------
    def rebuild(self, *, keep_going: Callable[[], bool] = lambda: True, batch: int = BATCH) -> dict | None:
        """File every job, mark the jobs' indexes built; then the runs', then the audit trail's
        (a part already built is skipped: a rebuild abandoned by the previous leader). Stops
        (returning None) as soon as ``keep_going()`` is false (this controller stopped
        leading); otherwise returns the counts and seconds taken."""
        token = uuid.uuid4().hex
        started = time.monotonic()
        progress: dict[str | bytes, bytes | float | int | str] = {
            "token": token,
            "started_at": clock.utcnow().isoformat(),
            "jobs": 0,
            "runs": 0,
            "audit": 0,
            "done": 0,
        }
        self.index.redis.delete(names.INDEX_REBUILD_KEY)
        self.index.redis.hset(names.INDEX_REBUILD_KEY, mapping=progress)
        log.warning("rebuilding the Redis indexes from MongoDB", extra={"event": "index.rebuild", "token": token})
        passes = (
            ("jobs", "all_jobs", Job.from_doc, self.file_jobs),
            ("runs", "all_runs", Run.from_doc, self.file_runs),
            ("audit", "all_audit", AuditEvent.from_doc, self.file_audit),
        )
        for part, name, load, file in passes:
            if self.index.built(part):
                continue
            chunk: list = []
            for doc in self._cursor(name, {}, batch_size=batch):
                chunk.append(load(doc))
                if len(chunk) >= batch:
                    file(chunk)
                    self.index.redis.hincrby(names.INDEX_REBUILD_KEY, part, len(chunk))
                    chunk = []
                    if not keep_going():
                        log.warning("index rebuild abandoned", extra={"event": "index.rebuild_stopped"})
                        return None
            if chunk:
                file(chunk)
                self.index.redis.hincrby(names.INDEX_REBUILD_KEY, part, len(chunk))
            while self.drain_backlog():
                pass
            if not keep_going() or self.index.redis.hget(names.INDEX_REBUILD_KEY, "token") != token:
                return None  # stopped leading, or Redis was flushed meanwhile: start again
            self.index.mark_built(token, part)
            log.warning(
                "Redis indexes of %s rebuilt",
                part,
                extra={"event": "index.rebuilt_part", "part": part, "seconds": round(time.monotonic() - started, 3)},
            )
        seconds = time.monotonic() - started
        counts = self.index.redis.hgetall(names.INDEX_REBUILD_KEY)
        self.index.redis.hset(names.INDEX_REBUILD_KEY, mapping={"done": 1, "seconds": round(seconds, 3)})
        result: dict = {part: int(counts.get(part, 0)) for part in names.INDEX_PARTS}
        result["seconds"] = seconds
        log.warning("Redis indexes rebuilt", extra={"event": "index.rebuilt", **result})
        return result

"""Realistic history, bulk-loaded: what a Hydra installation holds after weeks of work.

:func:`load` writes jobs and runs straight into MongoDB (``insert_many``, as the stores would
have written them one by one: each run with its start and end fences, some with live output)
and files them in the Redis indexes the way the stores do (``hydra.broker.index``). Used by
the history benchmark (``bench/history_bench.py``) and the scale tests
(``tests/integration/test_history_scale.py``).

The mix: three namespaces, 50 users, jobs created over ``days`` days; a few cron jobs (one in
a thousand unless told: yearly schedule, already fired, so none fires during a benchmark)
hold a quarter of the runs; the rest run once or a few times (retries, failovers). Final outcomes:
succeeded 85 %, failed 7 %, timed out 2 %, cancelled 2 %, dead-lettered 2 %, lost then
succeeded 2 %. Every run has ended: the work in progress is what a benchmark adds itself.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from hydra import clock, names
from hydra.broker.index import Index
from hydra.model.records import RUN_END_FIELDS, Job, Run

NAMESPACES = ("default", "team-a", "team-b")
USERS = tuple(f"user{i:02d}" for i in range(50))
WORKERS = tuple(f"w{i:02d}@history" for i in range(20))
FINALS = (
    ("succeeded", 85),
    ("failed", 7),
    ("timed_out", 2),
    ("cancelled", 2),
    ("dead_letter", 2),
    ("lost", 2),  # lost, then failed over: the next attempt succeeds
)
OUTPUT = "line of output from a realistic command, with some numbers 1234567890\n"


@dataclass
class Loaded:
    jobs: int = 0
    runs: int = 0
    fences: int = 0
    chunks: int = 0
    #: Some ids a benchmark can page through (a cron job, a job with retries, users...).
    cron_jobs: list[str] = field(default_factory=list)
    users: tuple[str, ...] = USERS


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


class Synthesizer:
    def __init__(self, seed: int, now: datetime, days: float):
        self.rng = random.Random(seed)
        self.now, self.days = now, days

    def job(self, *, cron: bool) -> Job:
        rng = self.rng
        created = self.now - timedelta(seconds=rng.uniform(3600, self.days * 86400))
        job = Job(
            id=_uuid(rng),
            name=f"{'cron' if cron else 'job'}-{rng.randrange(10**6)}",
            user=rng.choice(USERS),
            namespace=rng.choice(NAMESPACES),
            affinity={"os": ["linux"], "tags": rng.choice([[], [], ["gpu"], ["ssd"]])},
            command=f"./task.sh --item {rng.randrange(10**6)}",
            shell="bash",
            retries=rng.choice([0, 0, 1, 2]),
            timeout=rng.choice([60.0, 600.0, 3600.0]),
            priority=50,
            created_at=created,
            updated_at=created,
            schedule_since=created,
        )
        if cron:
            job.schedule, job.timezone, job.last_fire_at = "0 3 1 1 *", "UTC", self.now
        return job

    def chain(self, job: Job, start: datetime, attempts: int) -> list[Run]:
        """One run chain of ``job``: ``attempts`` attempts from ``start``, ending in a final status."""
        rng = self.rng
        final = rng.choices([f for f, _ in FINALS], [w for _, w in FINALS])[0]
        runs, previous = [], None
        at = start
        for attempt in range(1, attempts + 1):
            last = attempt == attempts
            if not last:
                status, outcome = ("lost", "lost") if final == "lost" else ("retrying", "failed")
            elif final == "lost":
                status, outcome = "succeeded", "succeeded"
            else:
                status = final
                outcome = "failed" if final == "dead_letter" else final
            duration = rng.uniform(0.05, 120.0)
            started = at + timedelta(milliseconds=rng.uniform(3, 40))
            finished = started + timedelta(seconds=duration)
            worker = rng.choice(WORKERS)
            lines = rng.randrange(1, 6)
            run = Run(
                id=_uuid(rng),
                job_id=job.id,
                job_name=job.name,
                user=job.user,
                namespace=job.namespace,
                attempt=attempt,
                status=status,
                retry_of=previous.id if previous else None,
                lost=sum(r.status == "lost" for r in runs),
                failed=sum(r.status == "retrying" for r in runs),
                priority=50,
                command=job.command,
                shell="bash",
                timeout=job.timeout,
                queue=names.worker_queue(worker),
                worker_id=worker,
                queued_at=at,
                placed_at=at,
                started_at=started,
                finished_at=finished,
                duration=duration,
                pid=rng.randrange(1000, 60000),
                returncode=0 if outcome == "succeeded" else (None if outcome == "lost" else rng.choice([1, 2, 124])),
                stdout=OUTPUT * lines,
                stderr="" if outcome == "succeeded" else "error: something went wrong\n",
                stdout_bytes=len(OUTPUT) * lines,
                stderr_bytes=0,
                stdout_truncated=False,
                stderr_truncated=False,
                live_chunks=2 if rng.random() < 0.03 else 0,
                outcome=outcome if status != outcome else None,
                decision="retry" if status == "retrying" else None,
                ended_by=worker if outcome != "lost" else "controller@history",
            )
            runs.append(run)
            previous = run
            at = finished + timedelta(seconds=rng.uniform(1, 60))
        return runs


def documents(run: Run) -> tuple[dict, list[dict], list[dict]]:
    """A run's record, its fences and its live output, as the stores write them."""
    doc = run.to_doc()
    start = {
        "_id": names.fence_id(run.id, "start"),
        "run_id": run.id,
        "worker_id": run.worker_id,
        "pid": run.pid,
        "worker_incarnation": "history",
        "at": run.started_at,
    }
    end = {key: doc[key] for key in RUN_END_FIELDS if key in doc}
    end.update(_id=names.fence_id(run.id, "end"), run_id=run.id, by=run.ended_by, at=run.finished_at)
    chunks = [
        {"_id": names.output_chunk_id(run.id, seq), "run_id": run.id, "seq": seq, "stream": "stdout", "text": OUTPUT}
        for seq in range(run.live_chunks or 0)
    ]
    if chunks:
        chunks.append(
            {"_id": names.output_eof_id(run.id), "run_id": run.id, "chunks": len(chunks), "at": run.finished_at}
        )
    return doc, [start, end], chunks


def generate(
    jobs: int, runs: int, *, seed: int, days: float, now: datetime, crons: int | None = None
) -> Iterator[tuple[Job, list[Run]]]:
    """``jobs`` jobs holding ``runs`` runs in all, one job (with its runs) at a time;
    ``crons`` of them (default one in a thousand) cron jobs holding a quarter of the runs."""
    synth = Synthesizer(seed, now, days)
    rng = synth.rng
    if crons is None:
        crons = max(1, jobs // 1000) if runs >= 4 * jobs // 3 else 0
    plain_runs = runs - (runs // 4 if crons else 0)
    plain_jobs = jobs - crons
    budget = plain_runs
    for i in range(plain_jobs):
        left = plain_jobs - i
        # a chain of 1 to 3 attempts; now and then a job run again later (a trigger, a retry by hand)
        want = max(1, round(budget / left))
        job = synth.job(cron=False)
        chain_runs: list[Run] = []
        at = job.created_at or now
        while len(chain_runs) < want:
            attempts = min(want - len(chain_runs), rng.choice([1, 1, 1, 1, 1, 1, 2, 3]))
            chain_runs += synth.chain(job, at, attempts)
            at = (chain_runs[-1].finished_at or at) + timedelta(hours=rng.uniform(1, 48))
        budget -= len(chain_runs)
        yield job, chain_runs
    for i in range(crons):
        job = synth.job(cron=True)
        count = (runs - plain_runs) // crons + (1 if i < (runs - plain_runs) % crons else 0)
        span = max(1.0, ((now - (job.created_at or now)).total_seconds() - 60) / max(1, count))
        chain_runs = []
        for k in range(count):
            chain_runs += synth.chain(job, (job.created_at or now) + timedelta(seconds=k * span), 1)
        yield job, chain_runs


def finish(job: Job, runs: list[Run]) -> Job:
    """The job as its runs left it (status and latest run)."""
    if runs:
        latest = max(runs, key=lambda r: (r.finished_at or r.queued_at, r.id))
        job.status, job.last_run_id = latest.status, latest.id
        job.updated_at = latest.finished_at
    return job


def load(
    db,
    index: Index,
    *,
    jobs: int,
    runs: int,
    seed: int = 1,
    days: float = 25.0,
    crons: int | None = None,
    batch: int = 1000,
    say=None,
) -> Loaded:
    """Insert ``jobs`` jobs and ``runs`` runs (with fences and output) into ``db`` and file
    them in ``index``. Returns what was written."""
    now = clock.utcnow()
    loaded = Loaded()
    pending: dict[str, list[dict]] = {
        names.JOB_DEFINITIONS: [],
        names.JOB_RUNS: [],
        names.RUN_FENCES: [],
        names.RUN_OUTPUT: [],
    }
    records: tuple[list[Job], list[Run]] = ([], [])
    report = 100_000

    def flush() -> None:
        for collection, docs in pending.items():
            for i in range(0, len(docs), batch):
                db[collection].insert_many(docs[i : i + batch], ordered=False)
            docs.clear()
        pipe = index.batch()
        for job in records[0]:
            index.put_job(job, undispatched=False, pipe=pipe)
        for run in records[1]:
            index.put_run(run, pipe=pipe)
        pipe.execute()
        records[0].clear()
        records[1].clear()

    for job, chain in generate(jobs, runs, seed=seed, days=days, now=now, crons=crons):
        finish(job, chain)
        pending[names.JOB_DEFINITIONS].append(job.to_doc())
        records[0].append(job)
        if job.schedule:
            loaded.cron_jobs.append(job.id)
        for run in chain:
            doc, fences, chunks = documents(run)
            pending[names.JOB_RUNS].append(doc)
            pending[names.RUN_FENCES] += fences
            pending[names.RUN_OUTPUT] += chunks
            records[1].append(run)
            loaded.runs += 1
            loaded.fences += len(fences)
            loaded.chunks += len(chunks)
        loaded.jobs += 1
        if len(pending[names.JOB_RUNS]) >= batch * 5:
            flush()
            if say and loaded.runs >= report:
                say(f"  loaded {loaded.jobs} jobs, {loaded.runs} runs")
                report += 100_000
    flush()
    return loaded

"""The stores' Redis indexes on in-memory servers: listings and sweeps read them (no MongoDB
filter at all), page exactly like the MongoDB queries they stand in for, never show a record
that does not match, and - lost, stale or behind - never hide one."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from hydra import clock, names
from hydra.broker.index import Index
from hydra.control import verbs
from hydra.dispatch.attempts import end_attempt, publish_delayed
from hydra.errors import BrokerUnavailable
from hydra.model.access import Principal, Role
from hydra.model.outcome import Outcome
from hydra.model.spec import load_job
from hydra.model.status import RunStatus
from hydra.store.audit import AuditStore
from hydra.store.base import Store
from hydra.store.reindex import Reindexer

#: Submits in any namespace, as anyone.
ADMIN = Principal(user="admin", roles={"*": Role.ADMIN}, act_as=frozenset({"*"}), via="token:admin")

BODY = {"name": "n", "user": "rich", "command": "true", "affinity": {"os": ["linux"]}}


def submit(memory, **overrides):
    job, run, _ = verbs.submit(load_job(dict(BODY, **overrides)), actor=ADMIN, pipeline=memory.pipeline)
    return job, run


def claim(memory, run_id, worker="cpu1@host"):
    message = next(s.kwargs for s in memory.app.sent if s.options["task_id"] == run_id)
    return memory.pipeline.runs.claim(run_id, message=message, worker_id=worker)


def end(memory, run_id, status, **fields):
    run = memory.pipeline.runs.get(run_id)
    job = memory.pipeline.jobs.get(run.job_id)
    return end_attempt(
        run_id,
        Outcome(status=status, **fields),
        by="cpu1@host",
        job=job,
        attempt=run.attempt,
        chain=run.chain,
        pipeline=memory.pipeline,
    )


@pytest.fixture
def no_native(monkeypatch):
    """Fail any MongoDB query other than an _id lookup (what FerretDB would scan for)."""
    calls = []

    def refuse(self, name, *args, **kwargs):
        calls.append(name)
        raise AssertionError(f"native query {name!r} while the indexes are built")

    monkeypatch.setattr(Store, "_cursor", refuse)
    monkeypatch.setattr(Store, "_distinct", refuse)
    return calls


def history(memory, jobs: int = 60, seed: int = 7):
    """A mixed history: two namespaces, three users, every end, retries, dead letters."""
    rng = random.Random(seed)
    memory.worker("cpu1")
    made = []
    for i in range(jobs):
        ns = rng.choice(["default", "team-a"])
        user = rng.choice(["rich", "ana", "bo"])
        job, run = submit(memory, namespace=ns, user=user, name=f"j{i}", retries=rng.choice([0, 1]), max_lost=1)
        fate = rng.choice(["queued", "running", "succeeded", "failed", "timed_out", "lost", "cancelled"])
        if fate != "queued":
            claim(memory, run.run_id)
        if fate not in ("queued", "running"):
            end(memory, run.run_id, fate, returncode=0 if fate == "succeeded" else 1)
        made.append(memory.pipeline.jobs.get(job.id))
    return made


def both_ways(memory, read):
    """``read()`` from the indexes, then from MongoDB's declared queries (index not built)."""
    indexed = read()
    Index().unbuild()
    try:
        native = read()
    finally:
        Index().mark_built("unit")
    return indexed, native


def ids(records):
    return [r.id for r in records]


def walk(list_page, limit=7):
    """Every page of a listing, following its cursors: (ids, cursors)."""
    seen, cursors, cursor = [], [], None
    while True:
        page, cursor = list_page(limit=limit, cursor=cursor)
        seen += ids(page)
        cursors.append(cursor)
        if cursor is None:
            return seen, cursors


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"status": RunStatus.SUCCEEDED},
        {"status": RunStatus.RUNNING},
        {"status": RunStatus.QUEUED},
        {"status": RunStatus.DEAD_LETTER},
        {"user": "ana"},
        {"user": "bo", "status": RunStatus.FAILED},
        {"namespaces": ["team-a"]},
        {"namespaces": ["team-a"], "user": "rich", "status": RunStatus.RETRYING},
        {"namespaces": []},
    ],
)
def test_job_listings_from_the_indexes_page_like_the_mongodb_queries(memory, query):
    made = history(memory)
    jobs = memory.pipeline.jobs
    indexed, native = both_ways(memory, lambda: walk(lambda **kw: jobs.list(**query, **kw)))
    assert indexed == native  # the same jobs, the same order, the same cursors
    expected = [
        j.id
        for j in sorted(made, key=lambda j: (j.created_at, j.id), reverse=True)
        if ("status" not in query or j.status == query["status"].value)
        and ("user" not in query or j.user == query["user"])
        and ("namespaces" not in query or j.namespace in query["namespaces"])
    ]
    assert indexed[0] == expected


def test_listings_and_sweeps_run_no_mongodb_filter_when_the_indexes_are_built(memory, no_native):
    made = history(memory, jobs=30)
    runs, jobs = memory.pipeline.runs, memory.pipeline.jobs
    jobs.list(status=RunStatus.FAILED, user="rich", namespaces=["default", "team-a"])
    for job in made:
        runs.page_for_job(job.id, limit=3)
        runs.not_started(job.id)
    runs.dead_letters(include_retried=True)
    runs.dead_letters(job_id=made[0].id)
    runs.active_on("cpu1@host")
    runs.with_status([RunStatus.QUEUED, RunStatus.PENDING, RunStatus.RUNNING])
    runs.unpublished()
    runs.of_jobs([j.id for j in made])
    jobs.undispatched()
    jobs.scheduled()
    AuditStore().list(namespaces=["team-a"], actor="admin")
    AuditStore().list(target=made[0].id)
    assert no_native == []


def audit_trail(memory):
    """Events in two namespaces by two actors, and events of no namespace (tokens)."""
    store, rng, made = AuditStore(), random.Random(3), []
    for i in range(40):
        namespace = rng.choice(["default", "team-a", None])
        target = rng.choice(["job-1", "job-2", f"t{i}", None])
        made.append(
            store.record(
                actor=rng.choice(["ana", "bo"]), via="token:x", action="job.update", namespace=namespace, target=target
            )
        )
    return made


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"namespaces": ["team-a"]},
        {"namespaces": ["default", "team-a"], "actor": "ana"},
        {"actor": "bo"},
        {"target": "job-1"},
        {"target": "job-2", "actor": "ana", "namespaces": ["default"]},
        {"namespaces": []},
    ],
)
def test_the_audit_trail_from_the_indexes_pages_like_the_mongodb_queries(memory, query):
    made = audit_trail(memory)
    audit = AuditStore()
    indexed, native = both_ways(memory, lambda: walk(lambda **kw: audit.list(**query, **kw)))
    assert indexed == native
    expected = [
        e.id
        for e in sorted(made, key=lambda e: (clock.millis(e.at), e.id), reverse=True)  # stored to the ms
        if ("namespaces" not in query or e.namespace in query["namespaces"])
        and ("actor" not in query or e.actor == query["actor"])
        and ("target" not in query or e.target == query["target"])
    ]
    assert indexed[0] == expected
    Index().unbuild()  # lost with Redis: a rebuild files them again
    for key in Index().redis.scan_iter(match=names.INDEX_PREFIX + "*"):
        Index().redis.delete(key)
    Reindexer(memory.pipeline.runs).rebuild()
    assert walk(lambda **kw: audit.list(**query, **kw)) == indexed


def test_a_claimed_run_and_its_job_read_as_running_and_are_listed_so(memory):
    memory.worker("cpu1")
    job, run = submit(memory)
    jobs, runs = memory.pipeline.jobs, memory.pipeline.runs
    assert ids(jobs.list(status=RunStatus.QUEUED)[0]) == [job.id]
    claim(memory, run.run_id)
    stored = memory.db[names.JOB_RUNS].find_one({"_id": run.run_id})
    assert stored["status"] == "queued"  # the claim wrote only its start fence ...
    current = runs.get(run.run_id)  # ... which is what says it runs, where and since when
    assert (current.status, current.worker_id) == ("running", "cpu1@host") and current.started_at is not None
    assert jobs.get(job.id).status == "running"
    for read in (
        lambda: ids(jobs.list(status=RunStatus.RUNNING)[0]),
        lambda: ids(jobs.list(status=RunStatus.QUEUED)[0]),
    ):
        indexed, native = both_ways(memory, read)
        assert indexed == native
    assert both_ways(memory, lambda: ids(jobs.list(status=RunStatus.RUNNING)[0]))[0] == [job.id]
    assert ids(jobs.list(status=RunStatus.QUEUED)[0]) == []
    assert ids(runs.with_status([RunStatus.RUNNING])) == [run.run_id]
    assert ids(runs.with_status([RunStatus.QUEUED])) == []
    end(memory, run.run_id, "succeeded", returncode=0)
    assert ids(jobs.list(status=RunStatus.SUCCEEDED)[0]) == [job.id] and runs.with_status([RunStatus.RUNNING]) == []


def test_runs_of_a_job_and_dead_letters_page_like_the_mongodb_queries(memory):
    memory.worker("cpu1")
    job, run = submit(memory, retries=3, backoff={"base": 1, "jitter": 0})
    run_id = run.run_id
    for _ in range(3):  # fail, retry (published as if due), ... until the last attempt dead-letters
        claim(memory, run_id)
        end(memory, run_id, "failed", returncode=1)
        run_id = memory.pipeline.jobs.get(job.id).last_run_id
        assert publish_delayed(run_id, memory.pipeline)
    claim(memory, run_id)
    end(memory, run_id, "failed", returncode=1)
    runs = memory.pipeline.runs
    assert runs.get(run_id).status == "dead_letter"
    indexed, native = both_ways(memory, lambda: walk(lambda **kw: runs.page_for_job(job.id, **kw), limit=1))
    assert indexed == native and len(indexed[0]) == 4
    for query in ({}, {"job_id": job.id}, {"namespaces": ["other"]}, {"include_retried": True}):
        indexed, native = both_ways(memory, lambda query=query: ids(runs.dead_letters(**query)[0]))
        assert indexed == native == ([] if query.get("namespaces") else [run_id])
    retried_by, _ = verbs.retry(run_id, actor=ADMIN, pipeline=memory.pipeline)
    assert retried_by == job.id
    for query, expected in (({}, []), ({"include_retried": True}, [run_id]), ({"job_id": job.id}, [])):
        indexed, native = both_ways(memory, lambda query=query: ids(runs.dead_letters(**query)[0]))
        assert indexed == native == expected


def test_a_stale_entry_is_never_shown_and_a_flushed_index_hides_nothing(memory):
    made = history(memory, jobs=20)
    jobs = memory.pipeline.jobs
    victim = next(j for j in made if j.status == "succeeded")
    # an entry left behind (say, its writer died before moving it): listed under failed too
    memory.redis.zadd(Index.jobs_key(victim.namespace, status="failed"), {victim.id: 1})
    assert victim.id not in ids(jobs.list(status=RunStatus.FAILED, limit=1000)[0])
    before = walk(lambda **kw: jobs.list(**kw))[0]
    memory.redis.flushall()  # Redis lost everything: the stores read MongoDB ...
    assert walk(lambda **kw: jobs.list(**kw))[0] == before
    assert not Index().built()
    Reindexer(memory.pipeline.runs).rebuild()  # ... until the controller rebuilt the indexes
    assert Index().built() and walk(lambda **kw: jobs.list(**kw))[0] == before
    actives = {a.run_id for a in Index().active()}
    assert actives == {
        j.last_run_id
        for j in made
        if memory.pipeline.runs.get(j.last_run_id).status in ("pending", "queued", "running")
    }


def test_a_write_while_redis_is_down_is_noted_and_filed_later(memory, monkeypatch):
    memory.worker("cpu1")
    submit(memory)  # the router's registry is cached from now on
    index = memory.pipeline.runs.index

    def down(*args, **kwargs):
        raise BrokerUnavailable("Redis unreachable")

    with monkeypatch.context() as patch:
        patch.setattr(index, "_run", down)
        job, run = submit(memory, name="while-down")
    backlog = {doc["_id"] for doc in memory.db[names.INDEX_BACKLOG].find()}
    assert backlog == {f"job:{job.id}", f"run:{run.run_id}"}
    assert job.id not in ids(memory.pipeline.jobs.list()[0])  # not listed yet: the controller files it
    assert Reindexer(memory.pipeline.runs).drain_backlog() == 2
    assert job.id in ids(memory.pipeline.jobs.list()[0]) and memory.db[names.INDEX_BACKLOG].count_documents({}) == 0
    assert ids(memory.pipeline.runs.page_for_job(job.id)[0]) == [run.run_id]


def test_the_sweeps_drop_entries_of_runs_that_ended_or_were_never_stored(memory):
    memory.worker("cpu1")
    job, run = submit(memory)
    claim(memory, run.run_id)
    end(memory, run.run_id, "succeeded", returncode=0)
    index = Index()
    ended = memory.pipeline.runs.get(run.run_id)
    ended.status = "running"
    index.put_run(ended)  # a late "running" filed after the end
    ghost = ended.__class__(id="ghost", job_id=job.id, status="queued", worker_id="cpu1@host")
    ghost.queued_at = clock.utcnow() - timedelta(hours=1)
    index.put_run(ghost)  # an intent whose record was never inserted
    assert {a.run_id for a in index.active()} == {run.run_id, "ghost"}
    assert memory.pipeline.runs.active_on("cpu1@host") == []
    assert index.active() == []


def test_undispatched_and_scheduled_jobs_come_from_the_indexes(memory, no_native):
    memory.worker("cpu1")
    cron, _ = verbs.submit(load_job(dict(BODY, schedule="*/5 * * * *")), actor=ADMIN, pipeline=memory.pipeline)[:2]
    job = memory.pipeline.jobs.create(load_job(BODY), first_run_id="never-recorded")
    assert ids(memory.pipeline.jobs.scheduled()) == [cron.id]
    assert ids(memory.pipeline.jobs.undispatched()) == [job.id]
    verbs.delete(cron.id, actor=ADMIN, pipeline=memory.pipeline)
    assert memory.pipeline.jobs.scheduled() == []
    assert cron.id not in ids(memory.pipeline.jobs.list()[0])


def test_undispatched_jobs_within_their_grace_are_not_read(memory, no_native, monkeypatch):
    """The controller's sweep asks only for jobs past their grace: the index entry's score (the
    creation time) decides, and MongoDB reads none of the younger ones."""
    from hydra.store.jobs import JobStore

    job = memory.pipeline.jobs.create(load_job(BODY), first_run_id="never-recorded")
    read: list[str] = []
    real = JobStore.find_many
    monkeypatch.setattr(JobStore, "find_many", lambda self, job_ids: read.extend(job_ids) or real(self, job_ids))
    assert memory.pipeline.jobs.undispatched(created_before=clock.utcnow() - timedelta(seconds=30)) == []
    assert read == []
    assert ids(memory.pipeline.jobs.undispatched(created_before=clock.utcnow() + timedelta(seconds=1))) == [job.id]


def test_a_run_without_a_record_gets_one_with_its_end(memory):
    """A message published past the pipeline: its worker's end creates the record."""
    memory.worker("cpu1")
    job, _ = submit(memory)
    stored = memory.pipeline.jobs.get(job.id)
    end_attempt(
        "unrecorded",
        Outcome(status="succeeded", returncode=0, stdout="hi\n", worker_id="cpu1@host"),
        by="cpu1@host",
        job=stored,
        attempt=1,
        pipeline=memory.pipeline,
    )
    run = memory.pipeline.runs.get("unrecorded")
    assert (run.status, run.stdout, run.job_id, run.worker_id) == ("succeeded", "hi\n", job.id, "cpu1@host")
    assert "unrecorded" in ids(memory.pipeline.runs.for_job(job.id))


def test_the_controller_rebuilds_lost_indexes_then_republishes_what_waits(memory):
    from hydra.control.controller import Controller

    memory.worker("cpu1")
    job, run = submit(memory)
    controller = Controller(memory.app, pipeline=memory.pipeline, name="unit")
    for key in memory.redis.scan_iter(match=names.INDEX_PREFIX + "*"):
        memory.redis.delete(key)
    assert controller.sweeps.publish_unpublished() == 0  # waits for the rebuild
    controller.indexer.reconcile_due = True
    controller.indexer.keep()
    assert not Index().built() and controller.indexer.reconcile_due  # only the leader rebuilds
    assert controller.lease.hold()
    sent = len(memory.app.sent)
    controller.indexer.keep()
    assert Index().built() and not controller.indexer.reconcile_due
    assert [s.options["task_id"] for s in memory.app.sent[sent:]] == [run.run_id]  # published again
    assert ids(memory.pipeline.jobs.list()[0]) == [job.id]


def test_a_rebuild_survives_a_missed_renewal_but_stops_for_another_leader(memory, monkeypatch):
    from hydra.control.controller import Controller

    submit(memory)
    controller = Controller(memory.app, pipeline=memory.pipeline, name="unit")
    assert controller.lease.hold()
    seen = []
    real = Reindexer.rebuild

    def rebuild(self, *, keep_going, **kwargs):
        memory.redis.delete(controller.lease.key)  # a renewal missed: the lease lapsed, nobody took it
        assert not controller.lease.hold()  # renewing a lapsed lease fails: no longer leading
        seen.append(keep_going())
        memory.redis.set(controller.lease.key, "other-controller")  # now another leads
        seen.append(keep_going())
        return real(self, keep_going=keep_going, **kwargs)

    monkeypatch.setattr(Reindexer, "rebuild", rebuild)
    Index().unbuild()
    controller.indexer.keep()
    assert seen == [True, False] and not Index().built()  # the other leader rebuilds


def test_the_scheduler_waits_for_the_jobs_indexes_on_ferretdb(memory, monkeypatch):
    """Loading every schedule from FerretDB while the jobs' indexes are rebuilt would be a
    scan of every job, longer than the scheduler's lock lives: it waits instead."""
    from hydra.control.scheduler import Scheduler

    cron, _, _ = verbs.submit(load_job(dict(BODY, schedule="*/5 * * * *")), actor=ADMIN, pipeline=memory.pipeline)
    monkeypatch.setattr("hydra.store.base.is_ferretdb", lambda db: True)
    scheduler = Scheduler(memory.pipeline)
    Index().unbuild()
    assert not scheduler.acquire() and scheduler.entries == {}
    Index().mark_built("unit")
    assert scheduler.acquire() and set(scheduler.entries) == {cron.id}

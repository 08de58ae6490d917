"""The store operations of one successful job, as the table of docs/performance.md ("The job
path") lists them: the API's (job, audit event, run) and the worker's (the recorded digest and
flow flag, the start fence, the end fence, the run's end, the job's end). A change that adds
one must show up here and in the table, with its reason."""

from __future__ import annotations

import mongomock
import pytest

from hydra import names
from hydra.control import verbs
from hydra.dispatch.attempts import end_attempt
from hydra.model.access import Principal, Role
from hydra.model.outcome import Outcome
from hydra.model.records import Job
from hydra.model.spec import load_job
from hydra.store.flows import FlowStore
from hydra.store.group_commit import GroupCommit

ALICE = Principal(user="alice", roles={"default": Role.OPERATOR}, via="token:alice")
#: The pymongo methods a store calls (reads and writes).
METHODS = (
    "insert_one",
    "insert_many",
    "find_one",
    "find",
    "update_one",
    "find_one_and_update",
    "replace_one",
    "delete_one",
)


@pytest.fixture
def operations(monkeypatch):
    """(collection, method) of every MongoDB call while ``recording``."""
    seen: list[tuple[str, str]] = []
    state = {"on": False, "depth": 0}
    for method in METHODS:
        real = getattr(mongomock.collection.Collection, method)

        def spy(self, *args, _real=real, _method=method, **kwargs):
            if state["on"] and state["depth"] == 0:  # not mongomock's own calls (find_one -> find)
                seen.append((self.name, _method))
            state["depth"] += 1
            try:
                return _real(self, *args, **kwargs)
            finally:
                state["depth"] -= 1

        monkeypatch.setattr(mongomock.collection.Collection, method, spy)

    def record(fn):
        seen.clear()
        state["on"] = True
        try:
            result = fn()
        finally:
            state["on"] = False
        return result, list(seen)

    return record


def test_a_job_costs_three_operations_in_the_api_and_five_in_the_worker(memory, operations, monkeypatch):
    memory.worker("cpu1")
    memory.pipeline.router.limits("default")  # the namespace's quota limits: read once per 5 s, not per job
    body = load_job({"name": "echo", "command": "echo hi", "affinity": {"os": ["linux"]}})
    grouped: list[str] = []
    real_insert = GroupCommit.insert
    monkeypatch.setattr(
        GroupCommit, "insert", lambda self, doc: grouped.append(self.collection.name) or real_insert(self, doc)
    )
    (job, run, _), api = operations(lambda: verbs.submit(body, actor=ALICE, pipeline=memory.pipeline))
    # Alone, each is an insert_one; concurrent submissions of the same process share one
    # insert_many per collection (group commit: tests/unit/test_group_commit.py).
    assert api == [
        ("job_definitions", "insert_one"),
        ("audit_events", "insert_one"),
        ("job_runs", "insert_one"),
    ]
    assert grouped == ["job_definitions", "audit_events", "job_runs"]
    runs = memory.pipeline.runs
    message = memory.app.sent[-1].kwargs

    def worker():
        _, flow = runs.recorded_start(run.run_id)  # admit: the message agrees with the record
        assert flow is False  # a job submitted by REST: nothing started it, nothing follows its run
        runs.claim(run.run_id, message=message, worker_id="cpu1@host")
        FlowStore().read_at_start(run.run_id, recorded=flow)  # none, says its record: no read
        outcome = Outcome(status="succeeded", returncode=0, worker_id="cpu1@host")
        return end_attempt(
            run.run_id,
            outcome,
            by="cpu1@host",
            job=Job.from_message(message),
            attempt=1,
            pipeline=memory.pipeline,
            holding=True,  # its claim took the start fence
        )

    recorded, worker_ops = operations(worker)
    assert recorded
    assert worker_ops == [
        ("job_runs", "find_one"),  # the recorded digest, and whether the run has a flow record
        ("run_fences", "insert_one"),  # the start fence: the decision, and "running"
        ("run_fences", "insert_one"),  # the end fence: whose end counts
        ("job_runs", "find_one_and_update"),  # the run's end
        ("job_definitions", "update_one"),  # the job shows its latest run's status
    ]
    assert memory.pipeline.jobs.get(job.id).status == "succeeded"


def test_the_controllers_sweeps_read_nothing_from_mongodb_while_a_backlog_waits(memory, operations):
    """docs/performance.md, the job path: runs queued and holding quota places, and a job whose
    first run is not recorded yet (within its grace), cost the sweeps no MongoDB read: the
    ``active`` hash and the undispatched entries' scores decide."""
    from hydra.control.controller import Controller

    memory.worker("cpu1", concurrency=4)
    for _ in range(3):
        verbs.submit(load_job({"name": "echo", "command": "echo hi"}), actor=ALICE, pipeline=memory.pipeline)
    memory.pipeline.jobs.create(load_job({"name": "young", "user": "alice", "command": "true"}), first_run_id="r-young")
    sweeps = Controller(memory.app, pipeline=memory.pipeline).sweeps
    assert len(memory.pipeline.router.slots.held("default")[0]) == 3  # the backlog holds its places

    (published, freed), reads = operations(lambda: (sweeps.publish_unpublished(), sweeps.correct_quotas()))
    assert (published, freed) == (0, 0)
    assert reads == []


@pytest.fixture
def round_trips(monkeypatch):
    """The Redis round trips while ``recording``: a command's name, or ``pipeline`` and the
    names of what it carried (one round trip)."""
    import redis

    seen: list[str] = []
    state = {"on": False}
    real_command, real_execute = redis.client.Redis.execute_command, redis.client.Pipeline.execute

    def command(self, *args, **options):
        if state["on"]:
            seen.append(str(args[0]).upper())
        return real_command(self, *args, **options)

    def execute(self, *args, **kwargs):
        if state["on"]:
            seen.append("pipeline " + " ".join(str(c[0][0]).upper() for c in self.command_stack))
        return real_execute(self, *args, **kwargs)

    monkeypatch.setattr(redis.client.Redis, "execute_command", command)
    monkeypatch.setattr(redis.client.Pipeline, "execute", execute)

    def record(fn):
        seen.clear()
        state["on"] = True
        try:
            fn()
        finally:
            state["on"] = False
        return list(seen)

    return record


def test_the_workers_claim_and_end_cost_three_redis_round_trips(memory, round_trips):
    """The claim is one script (index, quota place to running, off ``hydra:sent``), the end one
    script (index, quota places freed) and one pipeline of counters (totals, minute series,
    a monitored job's counts); the table's Redis rows say the same."""
    memory.worker("cpu1")
    runs = memory.pipeline.runs

    def one_job():
        body = load_job({"name": "echo", "command": "echo hi", "affinity": {"os": ["linux"]}})
        _job, run, _ = verbs.submit(body, actor=ALICE, pipeline=memory.pipeline)
        message = memory.app.sent[-1].kwargs
        outcome = Outcome(status="succeeded", returncode=0, worker_id="cpu1@host")
        claim = lambda: runs.claim(run.run_id, message=message, worker_id="cpu1@host")  # noqa: E731
        end = lambda: end_attempt(  # noqa: E731
            run.run_id, outcome, by="cpu1@host", job=Job.from_message(message), attempt=1, pipeline=memory.pipeline
        )
        return round_trips(claim), round_trips(end)

    one_job()  # the scripts are loaded into Redis once (SCRIPT LOAD), then sent by their digest
    claim, end = one_job()
    assert claim == ["EVALSHA"]
    assert len(end) == 2 and end[0] == "EVALSHA" and end[1].startswith("pipeline HINCRBY")
    assert "EXPIRE" in end[1]  # the console's minute series rides in the counters' pipeline


def test_a_submission_files_its_redis_work_in_five_round_trips_before_its_message(memory, round_trips):
    """``POST /jobs/``'s Redis work, as the table's API rows say: the job filed (a script), the
    audit event filed with the job counted (one pipeline), the router's choice (a script), the
    quota place with the load added (a script), the run filed with its sent entry (a script);
    the message and its ``task-sent`` event are Celery's (``LPUSH``, ``PUBLISH``; this app
    records them instead). The registry's version is read at most every HYDRA_ROUTER_CACHE s."""
    memory.worker("cpu1")
    memory.pipeline.router.limits("default")  # the namespace's quota limits: read once per 5 s, not per job
    body = load_job({"name": "echo", "command": "echo hi", "affinity": {"os": ["linux"]}})

    def submit():
        verbs.submit(body, actor=ALICE, pipeline=memory.pipeline)

    round_trips(submit)  # the scripts are loaded into Redis once (SCRIPT LOAD), then sent by their digest
    api = round_trips(submit)
    assert api == [
        "EVALSHA",  # the job filed (PUT_JOB), before its insert
        "pipeline HINCRBY ZADD ZADD ZADD SADD",  # the job counted, the audit event filed
        "EVALSHA",  # the router's choice: the first members of the eligible load groups
        "EVALSHA",  # the quota place taken and the worker's load added
        "EVALSHA",  # the run filed (PUT_RUN) and noted in hydra:sent, before its insert
    ]
    run_id = memory.app.sent[-1].options["task_id"]
    assert memory.redis.zscore(names.SENT_KEY, run_id) is not None
    assert int(memory.redis.hget(names.LOAD_KEY, "cpu1@host")) == 2
    assert memory.redis.hget(names.METRIC_JOBS_SUBMITTED, "api") == "2"

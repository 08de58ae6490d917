"""The Redis work of a job's status changes (``hydra.broker.index_scripts``): a job sits in
exactly one status set and ``jobs:filed`` says which, so a move takes it out of that one set;
a job filed before that field existed is taken out of every set once; the claim's and the
end's scripts also move and free the run's quota place and its ``hydra:sent`` entry."""

from __future__ import annotations

import dataclasses

from hydra import names
from hydra.broker.index import Index
from hydra.broker.quotas import NamespaceSlots
from hydra.control import verbs
from hydra.dispatch.attempts import end_attempt
from hydra.model.access import Principal, Role
from hydra.model.outcome import Outcome
from hydra.model.spec import load_job
from hydra.model.status import RunStatus

ADMIN = Principal(user="admin", roles={"*": Role.ADMIN}, act_as=frozenset({"*"}), via="token:admin")
BODY = {"name": "n", "user": "rich", "namespace": "team-a", "command": "true", "affinity": {"os": ["linux"]}}


def submit(memory):
    job, run, _ = verbs.submit(load_job(dict(BODY)), actor=ADMIN, pipeline=memory.pipeline)
    return job, run


def claim(memory, run_id):
    message = next(s.kwargs for s in memory.app.sent if s.options["task_id"] == run_id)
    memory.pipeline.runs.claim(run_id, message=message, worker_id="cpu1@host")


def end(memory, run_id, status="succeeded"):
    run = memory.pipeline.runs.get(run_id)
    job = memory.pipeline.jobs.get(run.job_id)
    outcome = Outcome(status=status, returncode=0, worker_id="cpu1@host")
    end_attempt(run_id, outcome, by="cpu1@host", job=job, attempt=run.attempt, pipeline=memory.pipeline)


def filed_under(redis, job, user=None) -> list[str]:
    """The status sets (all users', or ``user``'s) that hold ``job``."""
    return [
        s.value
        for s in RunStatus
        if redis.zscore(Index.jobs_key(job.namespace, status=s.value, user=user), job.id) is not None
    ]


def filed_field(redis, job):
    return redis.hget(names.index_prefix(job.namespace) + "jobs:filed", job.id)


def test_each_move_leaves_the_job_in_one_status_set_and_notes_which(memory):
    memory.worker("cpu1")
    job, run = submit(memory)
    redis = memory.redis
    assert filed_under(redis, job) == filed_under(redis, job, "rich") == ["queued"]
    assert filed_field(redis, job) == "queued"
    claim(memory, run.run_id)
    assert filed_under(redis, job) == filed_under(redis, job, "rich") == ["running"]
    assert filed_field(redis, job) == "running"
    end(memory, run.run_id, "failed")
    assert filed_under(redis, job) == filed_under(redis, job, "rich") == ["failed"]
    assert filed_field(redis, job) == "failed"


def test_a_job_given_to_another_user_leaves_the_former_users_sets(memory):
    memory.worker("cpu1")
    job, _run = submit(memory)
    redis = memory.redis
    Index().put_job(dataclasses.replace(job, user="ann"), status="queued", previous_user="rich")
    assert filed_under(redis, job, "rich") == [] and redis.zscore(Index.jobs_key("team-a", user="rich"), job.id) is None
    assert filed_under(redis, job, "ann") == filed_under(redis, job) == ["queued"]


def test_a_job_filed_before_the_field_existed_is_taken_out_of_every_status_set(memory):
    memory.worker("cpu1")
    job, run = submit(memory)
    redis = memory.redis
    # as an older Hydra left it: no jobs:filed field, and (say) a stale entry in another set
    redis.hdel(names.index_prefix("team-a") + "jobs:filed", job.id)
    for user in (None, "rich"):
        redis.zadd(Index.jobs_key("team-a", status="failed", user=user), {job.id: 1})
    claim(memory, run.run_id)
    assert filed_under(redis, job) == filed_under(redis, job, "rich") == ["running"]
    assert filed_field(redis, job) == "running"


def test_a_dropped_job_leaves_its_status_set_and_its_field(memory):
    memory.worker("cpu1")
    job, _run = submit(memory)
    Index().drop_job("team-a", job.id, "rich")
    assert filed_under(memory.redis, job) == [] and filed_field(memory.redis, job) is None


def test_the_claim_and_the_end_move_and_free_the_quota_place_and_the_sent_entry(memory):
    memory.worker("cpu1")
    _job, run = submit(memory)
    slots, redis = NamespaceSlots(), memory.redis
    assert slots.held("team-a") == ({run.run_id}, set())
    assert redis.zscore(names.SENT_KEY, run.run_id) is not None
    claim(memory, run.run_id)
    assert slots.held("team-a") == (set(), {run.run_id})
    assert redis.zscore(names.SENT_KEY, run.run_id) is None
    end(memory, run.run_id)
    assert slots.held("team-a") == (set(), set())

"""The control verbs (submit, update, delete, pause, resume, trigger, retry, cancel) on in-memory stores."""

from __future__ import annotations

from datetime import timedelta

import pytest

from hydra import clock, names
from hydra.broker.schedules import ScheduleFeed
from hydra.broker.stops import StopFlags
from hydra.control import verbs
from hydra.dispatch.attempts import end_attempt
from hydra.errors import Conflict, InvalidJob, NotFound
from hydra.model.access import Principal, Role
from hydra.model.outcome import Outcome
from hydra.model.spec import load_job
from hydra.model.status import RunStatus

BODY = {"name": "nightly", "user": "rich", "command": "make", "affinity": {"os": ["linux"]}}
ADMIN = Principal(user="rich", roles={"*": Role.ADMIN}, act_as=frozenset({"*"}), via="token:test")


def submit(memory, **overrides):
    return verbs.submit(load_job(dict(BODY, **overrides)), actor=ADMIN, pipeline=memory.pipeline)


def test_a_plain_job_is_stored_dispatched_and_counted(memory):
    memory.worker("cpu1")
    job, run, starts = submit(memory)
    assert starts is None and run.status == RunStatus.QUEUED and run.worker_id == "cpu1@host"
    assert memory.pipeline.jobs.get(job.id).last_run_id == run.run_id
    assert memory.redis.hgetall(names.METRIC_JOBS_SUBMITTED) == {"api": "1"}


def test_a_one_off_in_the_future_waits_in_the_due_index(memory):
    at = clock.utcnow() + timedelta(hours=1)
    job, run, starts = submit(memory, scheduled_at=at.isoformat())
    assert abs((starts - at).total_seconds()) < 0.001 and run.status == RunStatus.PENDING
    stored = memory.pipeline.runs.get(run.run_id)
    assert stored.not_before is not None and not memory.app.sent
    assert memory.pipeline.jobs.get(job.id).scheduled_run_id == run.run_id


def test_a_cron_job_gets_no_run_but_tells_the_scheduler(memory):
    before = ScheduleFeed().current()
    job, run, starts = submit(memory, schedule="0 3 * * *", timezone="Europe/Paris")
    assert run is None and starts == job.next_run_at() and starts > clock.utcnow()
    assert ScheduleFeed().changed(before, ScheduleFeed().current()) == [job.id]


def test_patch_merges_then_validates_the_whole_body(memory):
    job, _run, _ = submit(memory, schedule="*/5 * * * *")
    changed = verbs.update(
        job.id, patch={"command": "make test", "priority": 80}, actor=ADMIN, pipeline=memory.pipeline
    )
    assert (changed.command, changed.priority, changed.user) == ("make test", 80, "rich")
    with pytest.raises(InvalidJob) as info:
        verbs.update(job.id, patch={"affinity": {"allowed_users": ["ana"]}}, actor=ADMIN, pipeline=memory.pipeline)
    assert "user" in info.value.errors
    assert memory.pipeline.jobs.get(job.id).command == "make test"  # nothing half-written


def test_a_deleted_job_keeps_its_history_and_refuses_verbs(memory):
    job, run, _ = submit(memory)  # no worker: pending
    verbs.delete(job.id, actor=ADMIN, pipeline=memory.pipeline)
    assert memory.pipeline.runs.get(run.run_id).status == "cancelled"
    assert memory.pipeline.jobs.get(job.id).deleted_at is not None
    for verb in (verbs.trigger, verbs.pause):
        with pytest.raises(Conflict):
            verb(job.id, actor=ADMIN, pipeline=memory.pipeline)
    verbs.delete(job.id, actor=ADMIN, pipeline=memory.pipeline)  # idempotent
    with pytest.raises(NotFound):
        verbs.delete("no-such-job", actor=ADMIN, pipeline=memory.pipeline)


def test_pause_and_resume_need_a_schedule_and_restart_it_from_now(memory):
    plain, _run, _ = submit(memory)
    with pytest.raises(Conflict):
        verbs.pause(plain.id, actor=ADMIN, pipeline=memory.pipeline)
    job, _none, _ = submit(memory, schedule="* * * * *")
    paused = verbs.pause(job.id, actor=ADMIN, pipeline=memory.pipeline)
    assert paused.paused and paused.next_run_at() is None
    resumed = verbs.resume(job.id, actor=ADMIN, pipeline=memory.pipeline)
    assert not resumed.paused and resumed.schedule_since > job.schedule_since


def test_a_failed_run_is_retried_once_as_the_next_attempt_of_its_chain(memory):
    memory.worker("cpu1")
    job, run, _ = submit(memory)
    with pytest.raises(Conflict):  # still queued
        verbs.retry(run.run_id, actor=ADMIN, pipeline=memory.pipeline)
    end_attempt(
        run.run_id,
        Outcome(status="failed", returncode=2),
        by="cpu1@host",
        job=memory.pipeline.jobs.get(job.id),
        attempt=1,
        pipeline=memory.pipeline,
    )
    job_id, again = verbs.retry(run.run_id, actor=ADMIN, pipeline=memory.pipeline)
    retried = memory.pipeline.runs.get(again.run_id)
    assert job_id == job.id and (retried.attempt, retried.retry_of) == (2, run.run_id)
    assert memory.pipeline.runs.get(run.run_id).retried_by == again.run_id
    with pytest.raises(Conflict, match="already retried"):
        verbs.retry(run.run_id, actor=ADMIN, pipeline=memory.pipeline)


def test_cancel_ends_a_queued_run_at_once_and_asks_a_running_ones_worker(memory):
    memory.worker("cpu1")
    _job, queued, _ = submit(memory)
    run, ended = verbs.cancel(queued.run_id, actor=ADMIN, pipeline=memory.pipeline)
    assert ended and run.status == "cancelled" and run.ended_by == "rich"

    _job, running, _ = submit(memory)
    memory.pipeline.runs.claim(running.run_id, message=memory.app.sent[-1].kwargs, worker_id="cpu1@host")
    run, ended = verbs.cancel(running.run_id, actor=ADMIN, pipeline=memory.pipeline)
    assert not ended and run.status == "running" and run.cancel_requested_at is not None
    assert StopFlags().reason(running.run_id) == "cancel requested by rich"
    with pytest.raises(Conflict):
        verbs.cancel(queued.run_id, actor=ADMIN, pipeline=memory.pipeline)

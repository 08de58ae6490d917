"""Ending an attempt (the end fence, the lifecycle decision, the follow-up) on in-memory stores."""

from __future__ import annotations

from datetime import timedelta

from hydra import clock, names
from hydra.broker.due import DueIndex
from hydra.dispatch.attempts import end_attempt, publish_due
from hydra.model.outcome import Outcome
from hydra.model.spec import load_job

BODY = {"name": "flaky", "user": "rich", "command": "exit 1", "retries": 2, "backoff": {"base": 30, "jitter": 0}}


def started(memory, **overrides):
    """A job with its first attempt dispatched and claimed by a worker."""
    memory.worker("cpu1")
    job = memory.pipeline.jobs.create(load_job(dict(BODY, **overrides)))
    where = memory.pipeline.dispatch(job)
    memory.pipeline.runs.claim(where.run_id, message=memory.app.sent[-1].kwargs, worker_id="cpu1@host")
    return memory.pipeline.jobs.get(job.id), where.run_id


def end(memory, job, run_id, status, *, by="cpu1@host", **fields):
    run = memory.pipeline.runs.get(run_id)
    return end_attempt(
        run_id,
        Outcome(status=status, **fields),
        by=by,
        job=job,
        attempt=run.attempt,
        chain=run.chain,
        pipeline=memory.pipeline,
    )


def finished(memory) -> dict:
    return {key: int(value) for key, value in memory.redis.hgetall(names.METRIC_RUNS_FINISHED).items()}


def test_a_failure_with_retries_left_is_retrying_and_its_retry_waits_for_the_backoff(memory):
    job, run_id = started(memory)
    assert end(memory, job, run_id, "failed", returncode=1, stderr="boom")
    run = memory.pipeline.runs.get(run_id)
    assert (run.status, run.outcome, run.decision, run.returncode, run.stderr) == (
        "retrying",
        "failed",
        "retry 1 of 2",
        1,
        "boom",
    )
    retry = memory.pipeline.runs.get(memory.pipeline.jobs.get(job.id).last_run_id)
    assert (retry.attempt, retry.retry_of, retry.failed, retry.status) == (2, run_id, 1, "pending")
    assert 29 <= (retry.not_before - run.finished_at).total_seconds() <= 31
    assert DueIndex().size() == 1 and len(memory.app.sent) == 1  # not sent before its time
    assert finished(memory) == {"retrying": 1}


def test_only_the_first_end_counts(memory):
    job, run_id = started(memory)
    assert end(memory, job, run_id, "lost", by="controller", error="worker gone")
    assert not end(memory, job, run_id, "succeeded", returncode=0)  # the late result
    run = memory.pipeline.runs.get(run_id)
    assert (run.status, run.ended_by) == ("lost", "controller")
    assert finished(memory) == {"lost": 1}
    assert len(memory.app.sent) == 2  # one failover attempt, not two


def test_a_lost_attempt_fails_over_at_once_without_using_a_retry(memory):
    job, run_id = started(memory)
    end(memory, job, run_id, "lost", by="controller")
    failover = memory.pipeline.runs.get(memory.pipeline.jobs.get(job.id).last_run_id)
    assert (failover.attempt, failover.lost, failover.failed, failover.status) == (2, 1, 0, "queued")
    assert memory.app.sent[-1].options["headers"]["hydra_lost"] == 1


def test_a_cancel_under_way_turns_any_end_into_cancelled_with_no_follow_up(memory):
    job, run_id = started(memory)
    memory.pipeline.runs.request_cancel(run_id)
    end(memory, job, run_id, "failed", returncode=143)
    run = memory.pipeline.runs.get(run_id)
    assert (run.status, run.outcome, run.decision) == ("cancelled", "failed", "cancel requested")
    assert memory.pipeline.jobs.get(job.id).last_run_id == run_id and len(memory.app.sent) == 1


def test_the_last_failure_is_a_dead_letter_and_the_job_mirrors_it(memory):
    job, run_id = started(memory, retries=0)
    end(memory, job, run_id, "timed_out", error="timed out after 1s")
    assert memory.pipeline.jobs.get(job.id).status == "timed_out"
    job, run_id = started(memory, retries=1)
    end(memory, job, run_id, "failed")
    retry_id = memory.pipeline.jobs.get(job.id).last_run_id
    end(memory, job, retry_id, "failed")
    assert memory.pipeline.runs.get(retry_id).status == "dead_letter"
    assert [r.id for r in memory.pipeline.runs.dead_letters()[0]] == [retry_id]


def test_a_due_retry_is_published_and_a_deleted_jobs_is_cancelled(memory):
    job, run_id = started(memory)
    end(memory, job, run_id, "failed")
    retry_id = memory.pipeline.jobs.get(job.id).last_run_id
    assert publish_due(memory.pipeline) == 0  # 30 s to go
    later = clock.utcnow() + timedelta(seconds=31)
    assert publish_due(memory.pipeline, later) == 1
    assert memory.pipeline.runs.get(retry_id).status == "queued" and memory.queue_of(retry_id)

    other, other_run = started(memory)
    end(memory, other, other_run, "failed")
    memory.pipeline.jobs.mark_deleted(other.id)
    assert publish_due(memory.pipeline, later) == 0
    waiting = memory.pipeline.runs.get(memory.pipeline.jobs.get(other.id).last_run_id)
    assert (waiting.status, waiting.error) == ("cancelled", "the job was deleted")


def test_a_stored_job_that_no_longer_validates_fails_its_run_and_holds_up_no_other(memory):
    broken, broken_run = started(memory)
    end(memory, broken, broken_run, "failed")
    # As written past the API (or by an older version): a timeout that is no number.
    memory.db[names.JOB_DEFINITIONS].update_one({"_id": broken.id}, {"$set": {"timeout": "soon"}})
    fine, fine_run = started(memory)
    end(memory, fine, fine_run, "failed")
    later = clock.utcnow() + timedelta(seconds=31)
    assert publish_due(memory.pipeline, later) == 1  # the fine job's retry, behind the broken one's
    failed = memory.pipeline.runs.get(memory.pipeline.jobs.get(broken.id).last_run_id)
    assert failed.status == "failed" and failed.error.startswith("the stored job cannot run")
    retry = memory.pipeline.runs.get(memory.pipeline.jobs.get(fine.id).last_run_id)
    assert retry.status == "queued" and memory.queue_of(retry.id)

"""The result backend: how each way a Celery task can end decodes into a run outcome, and how a
run record reads back as a Celery result."""

from __future__ import annotations

import pytest
from celery import states

from hydra.celery.app import app
from hydra.celery.backend import HydraBackend, outcome_from
from hydra.errors import CommandTimedOut, command_error_for, command_error_named
from hydra.model.outcome import Outcome
from hydra.model.spec import load_job
from hydra.model.status import RunStatus


def encoded(exc: Exception) -> dict:
    """The exception as the worker's backend encodes it for the JSON result serializer."""
    return HydraBackend(app).prepare_exception(exc, "json")


def test_a_returned_outcome_is_recorded_as_it_is():
    result = Outcome(status="succeeded", returncode=0, stdout="hi\n", live_chunks=0).as_dict()
    outcome = outcome_from(result, states.SUCCESS)
    assert (outcome.status, outcome.returncode, outcome.stdout, outcome.live_chunks) == ("succeeded", 0, "hi\n", 0)


def test_a_raised_command_error_carries_its_outcome():
    raw = Outcome(status="timed_out", error="timed out after 1s", stdout="partial").as_dict()
    outcome = outcome_from(encoded(CommandTimedOut("timed out after 1s", raw)), states.FAILURE)
    assert (outcome.status, outcome.error, outcome.stdout) == ("timed_out", "timed out after 1s", "partial")


@pytest.mark.parametrize(
    "exc_type, status",
    [
        ("WorkerLostError", "lost"),
        ("TimeLimitExceeded", "timed_out"),
        ("SoftTimeLimitExceeded", "timed_out"),
        ("KeyError", "failed"),
    ],
)
def test_what_celery_reports_for_a_task_that_did_not_return(exc_type, status):
    outcome = outcome_from({"exc_type": exc_type, "exc_message": ["boom"]}, states.FAILURE)
    assert outcome.status == status and "boom" in outcome.error


def test_revoked_is_cancelled_and_non_ends_record_nothing():
    assert outcome_from(None, states.REVOKED).status == "cancelled"
    assert outcome_from(None, states.STARTED) is None and outcome_from(None, states.RETRY) is None


def test_each_status_has_one_error_class_both_ways():
    for status in ("failed", "timed_out", "cancelled"):
        cls = command_error_for(status)
        assert cls.status == status and command_error_named(cls.__name__) is cls
    assert command_error_for("lost").__name__ == "CommandFailed"
    assert command_error_named("Refused") is not None and command_error_named("ValueError") is None


def test_a_run_reads_back_as_its_celery_result(memory):
    memory.worker("cpu1")
    job = memory.pipeline.jobs.create(load_job({"name": "j", "user": "u", "command": "x"}))
    where = memory.pipeline.dispatch(job)
    backend = HydraBackend(app)
    assert backend._get_task_meta_for(where.run_id)["status"] == states.PENDING
    memory.pipeline.runs.finish(
        where.run_id, Outcome(status="timed_out", error="timed out after 1s"), status=RunStatus.TIMED_OUT, by="w"
    )
    meta = backend._get_task_meta_for(where.run_id)
    assert meta["status"] == states.FAILURE and meta["result"]["exc_type"] == "CommandTimedOut"
    assert meta["result"]["exc_message"][0] == "timed out after 1s"

"""Triggers with parameter values, on in-memory stores: what the trigger checks, what the message
and the run record carry, what retries and delayed runs keep, and what the audit trail shows."""

from __future__ import annotations

import pytest

from hydra.control import submission, verbs
from hydra.dispatch.attempts import end_attempt, publish_delayed
from hydra.errors import InvalidJob
from hydra.model.access import Principal, Role
from hydra.model.message import execution_digest, load_message
from hydra.model.outcome import Outcome
from hydra.model.redaction import REDACTED
from hydra.model.spec import load_job
from hydra.model.status import STORED
from hydra.store.audit import AuditStore

ADMIN = Principal(user="rich", roles={"*": Role.ADMIN}, act_as=frozenset({"*"}), via="token:test")
DECLARED = [
    {"name": "TARGET", "required": True, "allowed": ["staging", "prod"]},
    {"name": "TOKEN", "secret": True},
    {"name": "LEVEL", "default": "info"},
]
BODY = {"name": "deploy", "user": "rich", "command": "deploy.sh", "params": DECLARED}


def stored_job(memory, **fields):
    return verbs.submit(load_job({**BODY, **fields}), actor=ADMIN, pipeline=memory.pipeline)


def trigger(memory, job_id, params):
    return verbs.trigger(job_id, actor=ADMIN, params=params, pipeline=memory.pipeline)


def test_a_job_with_a_required_parameter_without_default_is_stored_without_a_run(memory):
    memory.worker("cpu1")
    job, run, starts = stored_job(memory)
    assert run is None and starts is None and not memory.app.sent
    assert submission.accepted(job.id, run, starts).status == STORED
    answer = submission.submit(load_job(BODY), actor=ADMIN, idempotency_key="k1", pipeline=memory.pipeline)
    again = submission.submit(load_job(BODY), actor=ADMIN, idempotency_key="k1", pipeline=memory.pipeline)
    assert (answer.status, answer.run_id) == (STORED, None) and again.replayed and again.status == STORED
    # With a default for each required one, it runs at once, with the defaults.
    _job, first, _ = stored_job(memory, params=[{**DECLARED[0], "default": "staging"}, DECLARED[2]])
    assert memory.pipeline.runs.get(first.run_id).params == {"TARGET": "staging", "LEVEL": "info"}


def test_a_trigger_checks_the_values_and_names_each_bad_one(memory):
    job, _run, _ = stored_job(memory)
    with pytest.raises(InvalidJob) as info:
        trigger(memory, job.id, {"TARGET": "dev", "COLOUR": "red"})
    assert set(info.value.errors["params"]) == {"TARGET", "COLOUR"}
    with pytest.raises(InvalidJob) as info:
        trigger(memory, job.id, {})
    assert info.value.errors == {"params": {"TARGET": ["required: this parameter has no default"]}}
    assert not memory.app.sent  # nothing was recorded or sent


def test_the_message_and_the_run_carry_the_values_and_secret_ones_are_redacted_in_answers(memory):
    memory.worker("cpu1")
    job, _run, _ = stored_job(memory)
    placed = trigger(memory, job.id, {"TARGET": "prod", "TOKEN": "s3cret"})
    sent = memory.app.sent[-1]
    assert sent.kwargs["param_values"] == {"TARGET": "prod", "TOKEN": "s3cret", "LEVEL": "info"}
    assert "s3cret" not in sent.options["kwargsrepr"]  # what Celery's logs, events and Flower show
    run = memory.pipeline.runs.get(placed.run_id)
    assert run.params == {"TARGET": "prod", "TOKEN": "s3cret", "LEVEL": "info"}
    assert run.shown_params == {"TARGET": "prod", "TOKEN": REDACTED, "LEVEL": "info"}
    assert run.spec_digest == execution_digest(load_message(sent.kwargs))  # what the worker compares


def test_the_audit_trail_records_the_values_with_secret_ones_redacted(memory):
    memory.worker("cpu1")
    job, _run, _ = stored_job(memory)
    placed = trigger(memory, job.id, {"TARGET": "prod", "TOKEN": "s3cret"})
    events, _ = AuditStore().list(target=job.id)
    triggered = next(e for e in events if e.action == "job.trigger")
    assert triggered.details == {
        "run": placed.run_id,
        "params": {"TARGET": "prod", "TOKEN": REDACTED, "LEVEL": "info"},
    }
    assert "s3cret" not in repr([e.details for e in events])


def test_a_retry_and_an_automatic_retry_run_with_the_same_values(memory):
    memory.worker("cpu1")
    job, _run, _ = stored_job(memory, retries=1, backoff={"base": 60})
    first = trigger(memory, job.id, {"TARGET": "prod", "TOKEN": "s3cret"})
    end_attempt(
        first.run_id,
        Outcome(status="failed", returncode=1),
        by="cpu1@host",
        job=memory.pipeline.jobs.get(job.id),
        attempt=1,
        pipeline=memory.pipeline,
    )
    # The automatic retry waits for its backoff: recorded with the values, published with them.
    delayed = next(r for r in memory.pipeline.runs.not_started(job.id) if r.retry_of == first.run_id)
    assert delayed.params["TARGET"] == "prod" and delayed.secret_params == ["TOKEN"]
    assert publish_delayed(delayed.id, memory.pipeline)  # its time came (the due index says when)
    assert memory.app.sent[-1].kwargs["param_values"]["TOKEN"] == "s3cret"
    end_attempt(
        delayed.id,
        Outcome(status="failed", returncode=1),
        by="cpu1@host",
        job=memory.pipeline.jobs.get(job.id),
        attempt=2,
        pipeline=memory.pipeline,
        chain=memory.pipeline.runs.get(delayed.id).chain,
    )
    _job_id, by_hand = verbs.retry(delayed.id, actor=ADMIN, pipeline=memory.pipeline)
    assert memory.pipeline.runs.get(by_hand.run_id).params == {"TARGET": "prod", "TOKEN": "s3cret", "LEVEL": "info"}
    assert memory.app.sent[-1].kwargs["param_values"]["TARGET"] == "prod"


def test_a_python_message_for_a_stored_job_gives_values_checked_against_its_declaration(memory):
    memory.worker("cpu1")
    job, _run, _ = stored_job(memory)
    memory.pipeline.accept((), {"job_id": job.id, "param_values": {"TARGET": "staging"}}, {})
    sent = memory.app.sent[-1]
    assert sent.kwargs["param_values"] == {"TARGET": "staging", "LEVEL": "info"}
    assert memory.pipeline.runs.get(sent.options["task_id"]).params == sent.kwargs["param_values"]
    with pytest.raises(InvalidJob) as info:
        memory.pipeline.accept((), {"job_id": job.id, "param_values": {"TARGET": "dev"}}, {})
    assert "TARGET" in info.value.errors["param_values"]


def test_a_job_another_starts_runs_with_its_defaults_so_it_may_not_need_a_value(memory):
    memory.worker("cpu1")
    waiting, _run, _ = stored_job(memory)  # TARGET: required, no default
    with pytest.raises(InvalidJob) as info:
        stored_job(memory, params=None, on_success=[waiting.id])
    assert "TARGET required without a default" in info.value.errors["on_success"][0]
    defaults = [{**DECLARED[0], "default": "staging"}, *DECLARED[1:]]
    downstream, first, _ = stored_job(memory, params=defaults)
    upstream, run, _ = stored_job(memory, params=None, on_success=[downstream.id])
    end_attempt(
        run.run_id,
        Outcome(status="succeeded", returncode=0),
        by="cpu1@host",
        job=memory.pipeline.jobs.get(upstream.id),
        attempt=1,
        pipeline=memory.pipeline,
    )
    started = [r for r in memory.pipeline.runs.for_job(downstream.id) if r.id != first.run_id]
    assert [r.params for r in started] == [{"TARGET": "staging", "LEVEL": "info"}]

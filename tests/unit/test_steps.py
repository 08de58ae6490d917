"""Canvas steps pre-signed when published, checked, and started as signed (hydra.dispatch.steps,
Pipeline.forward); what a process without a private key does instead of signing (follow-ups,
the result backend)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from hydra import names
from hydra.celery import backend as hydra_backend
from hydra.dispatch import signing, steps
from hydra.dispatch.attempts import follow_up
from hydra.dispatch.envelope import Envelope, seal
from hydra.errors import InvalidJob
from hydra.model.records import Chain
from hydra.model.spec import load_job
from hydra.settings import get_settings

TASK = names.TASK_RUN_COMMAND


def sig(command: str, task_id: str | None = None, **options) -> dict:
    """A step as Celery's ``run_command.si(...)`` gives it (its dict form)."""
    return {
        "task": TASK,
        "args": [],
        "kwargs": {"command": command, "user": "u", "affinity": {"tags": ["gpu"]}},
        "options": {**({"task_id": task_id} if task_id else {}), **options},
        "subtask_type": None,
        "immutable": True,
    }


@pytest.fixture
def as_worker(monkeypatch):
    """Switch this process to what a worker holds (the public keys only); call it."""

    def switch():
        handed = signing.worker_settings()
        monkeypatch.setenv("HYDRA_SIGNING_KEY_FILE", "")
        monkeypatch.setenv("HYDRA_SIGNING_KEY", "")
        for name, value in handed.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        assert not signing.can_sign()

    yield switch
    monkeypatch.undo()
    get_settings.cache_clear()


def sent_envelope(sent) -> Envelope:
    return Envelope.for_send(sent.name, sent.options["task_id"], (), sent.kwargs, sent.options)


def test_linked_and_chained_steps_are_presigned_and_their_jobs_stored_without_runs(memory):
    memory.worker("gpu1", tags={"gpu"})
    chained = [sig("echo three", "c3"), sig("echo two", "c2")]  # Celery's order: the last runs next
    memory.pipeline.accept(
        (), {"command": "echo one", "user": "u"}, {"task_id": "one", "link": sig("echo after", "a1"), "chain": chained}
    )
    [sent] = memory.app.sent
    envelope = sent_envelope(sent)
    assert envelope.verify(sent.options["headers"][signing.HEADER]) is None and steps.refusal(envelope) is None
    [callback] = envelope.embed["callbacks"]
    three, two = envelope.embed["chain"]
    assert [s["options"]["task_id"] for s in (callback, three, two)] == ["a1", "c3", "c2"]
    for step in (callback, three, two):
        job = memory.pipeline.jobs.get(step["kwargs"]["job_id"])
        assert job.source == "python" and job.last_run_id is None and not job.undispatched  # no sweep starts it
        assert memory.pipeline.runs.find(step["options"]["task_id"]) is None  # recorded when it starts
    # "two" is signed as it will be sent: with "three" still to come after it
    assert steps.step_envelope(two, [three]).verify(two["options"]["headers"][signing.HEADER]) is None
    assert "tampered" in steps.step_envelope(two, None).verify(two["options"]["headers"][signing.HEADER])


@pytest.mark.parametrize(
    "options, option",
    [
        ({"link": {**sig("x"), "task": "celery.accumulate"}}, "link"),
        ({"link_error": {**sig("x"), "subtask_type": "group"}}, "link_error"),
        ({"chain": [sig("x", countdown=5)]}, "chain"),
        ({"link": {**sig("x"), "args": ["ret"], "immutable": False}}, "link"),
        ({"link": {**sig("x"), "args": ["echo"]}}, "link"),
        ({"link": sig("x", chain=[sig("y")])}, "link"),
        ({"chord": sig("body")}, "chord"),
        ({"link": {**sig("x"), "kwargs": {"command": "x", "user": "u", "timeout": -1}}}, "link"),
    ],
)
def test_a_step_that_cannot_be_presigned_is_refused_before_anything_is_stored(memory, options, option):
    memory.worker("gpu1", tags={"gpu"})
    with pytest.raises(InvalidJob) as info:
        memory.pipeline.accept((), {"command": "echo one", "user": "u"}, {"task_id": "one", **options})
    assert set(info.value.errors) == {option}
    assert memory.pipeline.jobs.list()[0] == [] and not memory.app.sent and memory.pipeline.runs.find("one") is None


def test_a_caller_cannot_set_hydras_or_celerys_headers(memory):
    with pytest.raises(InvalidJob) as info:
        memory.pipeline.accept((), {"command": "x", "user": "u"}, {"headers": {"hydra_lost": 5, "mine": 1}})
    assert "hydra_lost" in info.value.errors["headers"][0] and not memory.app.sent


def test_a_worker_starts_a_presigned_step_as_signed_and_only_once(memory, as_worker):
    memory.worker("gpu1", tags={"gpu"})
    memory.pipeline.accept((), {"command": "echo one", "user": "u"}, {"task_id": "one", "link": sig("echo a", "a1")})
    [step] = memory.app.sent[0].options["link"]
    as_worker()
    # as Celery's trace starts a callback: Signature.apply_async -> Task.apply_async -> send_task
    started = {**step["options"], "parent_id": "one", "root_id": "one", "ignore_result": False}
    memory.pipeline.accept(step["args"], step["kwargs"], dict(started))
    forwarded = memory.app.sent[-1]
    assert forwarded.options["headers"][signing.HEADER] == step["options"]["headers"][signing.HEADER]
    assert sent_envelope(forwarded).verify(forwarded.options["headers"][signing.HEADER]) is None
    run = memory.pipeline.runs.get("a1")
    assert (run.status, run.job_id, run.worker_id) == ("queued", step["kwargs"]["job_id"], "gpu1@host")
    memory.pipeline.accept(step["args"], step["kwargs"], dict(started))  # the message carrying it, delivered again
    assert len(memory.app.sent) == 2


def test_an_altered_step_is_recorded_refused_and_never_sent(memory, as_worker):
    memory.worker("gpu1", tags={"gpu"})
    memory.pipeline.accept((), {"command": "echo one", "user": "u"}, {"task_id": "one", "link": sig("echo a", "a1")})
    [step] = memory.app.sent[0].options["link"]
    as_worker()
    memory.pipeline.accept([], {**step["kwargs"], "command": "id"}, dict(step["options"]))
    run = memory.pipeline.runs.get("a1")
    assert run.status == "dead_letter" and "tampered" in run.error and len(memory.app.sent) == 1


def test_a_process_without_a_private_key_records_nothing_it_cannot_sign(memory, as_worker):
    memory.worker("gpu1", tags={"gpu"})
    as_worker()
    with pytest.raises(signing.SigningKeyMissing):
        memory.pipeline.accept((), {"command": "x", "user": "u"}, {"task_id": "r"})
    assert memory.pipeline.jobs.list()[0] == [] and memory.pipeline.runs.find("r") is None and not memory.app.sent


def test_a_worker_hands_a_failover_to_the_controller(memory, as_worker):
    memory.worker("gpu1", tags={"gpu"})
    job = memory.pipeline.jobs.create(load_job({"name": "j", "user": "u", "command": "x"}))
    as_worker()
    run_id = follow_up(
        job.id, attempt=2, delay=0, reason="failing over", chain=Chain("r1", 1, 0), pipeline=memory.pipeline
    )
    run = memory.pipeline.runs.get(run_id)
    assert (run.status, run.attempt, run.retry_of, run.lost) == ("pending", 2, "r1", 1)
    assert run.not_before is not None and not memory.app.sent  # the controller's publish_due sends it


def test_the_result_backend_records_only_the_end_of_a_message_hydra_signed(memory):
    sealed = seal("r1", {"command": "x", "user": "u", "job_id": "j", "attempt": 1}, Chain(), {})
    request = SimpleNamespace(
        args=[], kwargs=sealed.envelope.kwargs, **sealed.envelope.headers, **sealed.envelope.embed
    )
    assert not hydra_backend.authentic("r1", request)  # unsigned
    setattr(request, signing.HEADER, sealed.signature)
    assert hydra_backend.authentic("r1", request)  # as the worker's main process has it
    assert not hydra_backend.authentic("r2", request)  # another run's message
    assert not hydra_backend.authentic("r1", None)  # Celery's remote revoke
    admitted = SimpleNamespace(hydra_admitted="r3")
    assert hydra_backend.authentic("r3", admitted)  # admitted by this worker process

"""Celery's canvas through Hydra (hydra.dispatch.canvas, hydra.dispatch.continuation): steps
pre-signed when published, what follows a run kept with its record, started as signed by
whoever records the run's final end - retries and failovers included - and recorded as not
run when it will not run; what a process without a private key does instead of signing."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from celery import chain, chord, group

from hydra import names
from hydra.celery import backend as hydra_backend
from hydra.dispatch import signing
from hydra.dispatch.attempts import end_attempt, follow_up, publish_delayed
from hydra.dispatch.canvas import refusal, step_envelope
from hydra.dispatch.envelope import Envelope, seal
from hydra.errors import InvalidJob
from hydra.model.flow import Step, Upstream
from hydra.model.outcome import Outcome
from hydra.model.records import Chain
from hydra.model.spec import load_job
from hydra.settings import get_settings
from hydra.store.audit import AuditStore
from hydra.store.flows import FlowStore

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


class Keys:
    """Switch this process to what a worker holds (the public keys only), and back."""

    def __init__(self):
        self.patch = pytest.MonkeyPatch()

    def __call__(self):
        handed = signing.worker_settings()
        self.patch.setenv("HYDRA_SIGNING_KEY_FILE", "")
        self.patch.setenv("HYDRA_SIGNING_KEY", "")
        for name, value in handed.items():
            self.patch.setenv(name, value)
        get_settings.cache_clear()
        assert not signing.can_sign()

    def back(self):
        self.patch.undo()
        get_settings.cache_clear()
        assert signing.can_sign()


@pytest.fixture
def as_worker():
    keys = Keys()
    yield keys
    keys.back()


def sent_envelope(sent) -> Envelope:
    return Envelope.for_send(sent.name, sent.options["task_id"], (), sent.kwargs, sent.options)


def sent_ids(memory) -> list[str]:
    return [s.options["task_id"] for s in memory.app.sent]


def end(memory, run_id: str, status: str, **outcome):
    """End a run as the worker that ran it would (the result backend calls end_attempt)."""
    run = memory.pipeline.runs.get(run_id)
    job = memory.pipeline.jobs.get(run.job_id)
    return end_attempt(
        run_id,
        Outcome(status=status, **outcome),
        by="gpu1@host",
        job=job,
        attempt=run.attempt,
        chain=run.chain,
        pipeline=memory.pipeline,
    )


def test_the_canvas_is_kept_with_the_run_and_the_message_carries_none(memory):
    memory.worker("gpu1", tags={"gpu"})
    chained = [sig("echo three", "c3"), sig("echo two", "c2")]  # Celery's order: the last runs next
    memory.pipeline.accept(
        (),
        {"command": "echo one", "user": "u"},
        {"task_id": "one", "link": sig("echo after", "a1"), "link_error": sig("echo oops", "e1"), "chain": chained},
    )
    [sent] = memory.app.sent
    envelope = sent_envelope(sent)
    assert envelope.verify(sent.options["headers"][signing.HEADER]) is None and refusal(envelope) is None
    assert all(sent.options[name] is None for name in ("link", "link_error", "chain", "chord"))
    then = FlowStore().get("one").continuation
    after, two = then.on_success
    [oops] = then.on_failure
    assert (after.run_id, two.run_id, oops.run_id) == ("a1", "c2", "e1")
    [three] = two.then.on_success  # what follows a step travels with it
    assert three.run_id == "c3" and not three.then.on_success
    for step in (after, two, three, oops):
        assert step_envelope(step).verify(step.signature) is None  # signed as the message it is sent as
        assert memory.pipeline.jobs.find(step.job_id) is None  # stored when it starts (an unused errback: never)
        assert memory.pipeline.runs.find(step.run_id) is None
    tampered = Step(two.run_id, {**two.kwargs, "command": "id"}, two.signature)
    assert "tampered" in step_envelope(tampered).verify(two.signature)


@pytest.mark.parametrize(
    "options, option",
    [
        ({"link": {**sig("x"), "task": "celery.accumulate"}}, "link"),
        ({"link_error": {**sig("x"), "task": "tasks.cleanup"}}, "link_error"),
        ({"chain": [sig("x", countdown=5)]}, "chain"),
        ({"link": {**sig("x"), "args": ["ret"], "immutable": False}}, "link"),
        ({"link": {**sig("x"), "args": ["echo"]}}, "link"),
        ({"link": sig("x", chain=[sig("y")])}, "link"),
        ({"chord": sig("body")}, "chord"),  # a header task without a published chord
        ({"chord": sig("body"), "group_id": "nope"}, "chord"),
        ({"link": {**sig("x"), "kwargs": {"command": "x", "user": "u", "timeout": -1}}}, "link"),
        ({"link": group(sig("b"), sig("c")), "link_error": chain(sig("a"), group(sig("b"), sig("c")))}, "link_error"),
        ({"link": chord([chord([sig("a")], sig("b"))], sig("c"))}, "link"),  # a chord within a chord
        ({"link": chord([sig("a")], group(sig("b"), sig("c")))}, "link"),  # a chord's body is a group
        ({"link": [sig("x", "same"), sig("y", "same")]}, "link"),  # one task id, two steps
    ],
)
def test_what_cannot_be_presigned_is_refused_before_anything_is_stored(memory, options, option):
    memory.worker("gpu1", tags={"gpu"})
    with pytest.raises(InvalidJob) as info:
        memory.pipeline.accept((), {"command": "echo one", "user": "u"}, {"task_id": "one", **options})
    assert set(info.value.errors) == {option}, info.value.errors
    assert memory.pipeline.jobs.list()[0] == [] and not memory.app.sent and memory.pipeline.runs.find("one") is None
    assert FlowStore().find("one") is None


def test_a_caller_cannot_set_hydras_or_celerys_headers(memory):
    with pytest.raises(InvalidJob) as info:
        memory.pipeline.accept((), {"command": "x", "user": "u"}, {"headers": {"hydra_lost": 5, "mine": 1}})
    assert "hydra_lost" in info.value.errors["headers"][0] and not memory.app.sent


def test_a_worker_starts_the_next_steps_as_signed_and_only_once(memory, as_worker):
    memory.worker("gpu1", tags={"gpu"})
    memory.pipeline.accept(
        (),
        {"command": "echo one", "user": "u"},
        {"task_id": "one", "link": sig("echo a", "a1"), "chain": [sig("echo three", "c3"), sig("echo two", "c2")]},
    )
    then = FlowStore().get("one").continuation
    as_worker()
    assert end(memory, "one", "succeeded") is not None
    assert sent_ids(memory) == ["one", "a1", "c2"]
    for sent, step in zip(memory.app.sent[1:], then.on_success, strict=True):
        assert sent.options["headers"][signing.HEADER] == step.signature  # sent exactly as its publisher signed it
        assert sent_envelope(sent).verify(step.signature) is None
        job = memory.pipeline.jobs.get(step.job_id)
        assert job.source == "python" and memory.pipeline.runs.get(step.run_id).status == "queued"
        assert FlowStore().get(step.run_id).started_by == Upstream(
            ("one",), ("succeeded",), "on_success", *_job(memory, "one")
        )
    started = FlowStore().get("one").started
    assert [(e["run_id"], e["via"]) for e in started] == [("a1", "on_success"), ("c2", "on_success")]
    # the end is recorded once; a second start of the same step (a replayed end) sends nothing
    from hydra.dispatch.continuation import start_step

    start_step(then.on_success[1], Upstream(("one",), ("succeeded",), "on_success"), memory.pipeline)
    assert sent_ids(memory) == ["one", "a1", "c2"]
    assert end(memory, "c2", "succeeded") is not None
    assert sent_ids(memory)[-1] == "c3"  # the chain goes on from c2's record


def _job(memory, run_id: str) -> tuple[str, str]:
    run = memory.pipeline.runs.get(run_id)
    return run.job_id, run.job_name or ""


def test_a_failed_step_ends_the_chain_with_each_step_not_run_recorded_and_starts_the_errback(memory, as_worker):
    memory.worker("gpu1", tags={"gpu"})
    memory.pipeline.accept(
        (),
        {"command": "exit 3", "user": "u"},
        {
            "task_id": "one",
            "link": sig("echo linked", "a1"),
            "link_error": sig("echo cleanup", "e1"),
            "chain": [sig("echo three", "c3"), sig("echo two", "c2", link=sig("echo two-after", "t2"))],
        },
    )
    as_worker()
    end(memory, "one", "failed", returncode=3)
    assert sent_ids(memory) == ["one", "e1"]  # only the errback
    for run_id in ("a1", "c2", "c3", "t2"):
        run = memory.pipeline.runs.get(run_id)
        assert (run.status, run.decision) == ("cancelled", "not started"), run_id
        assert run.error == "not started: run one before it ended failed"
        assert memory.pipeline.runs.start_of(run_id).worker_id is None  # held: no worker ever starts it
        assert memory.pipeline.jobs.get(run.job_id).status == "cancelled"
    notes = {e["run_id"]: e.get("note") for e in FlowStore().get("one").started}
    assert notes == {"e1": None, "a1": "not started: run one before it ended failed", "c2": notes["c2"]}
    assert {e["run_id"] for e in FlowStore().get("c2").started} == {"t2", "c3"}  # noted as not run after c2


def test_the_canvas_goes_on_after_the_final_outcome_of_a_retried_step(memory, as_worker):
    memory.worker("gpu1", tags={"gpu"})
    memory.pipeline.accept(
        (),
        {"command": "flaky", "user": "u", "retries": 1, "backoff": {"base": 1, "jitter": 0}},
        {"task_id": "one", "chain": [sig("echo next", "n1")], "link_error": sig("echo cleanup", "e1")},
    )
    as_worker()
    decision = end(memory, "one", "failed", returncode=1)
    assert decision.status == "retrying" and sent_ids(memory) == ["one"]  # nothing follows yet
    second = FlowStore().get("one").next
    assert memory.pipeline.runs.get(second).retry_of == "one"
    assert FlowStore().get(second).root == "one"
    # Celery's view: the task is not ready while a retry follows it
    from hydra.celery.app import app

    backend = hydra_backend.HydraBackend(app)
    assert backend._get_task_meta_for("one")["status"] == "PENDING"  # the retry, waiting for its time
    end(memory, second, "succeeded")
    assert sent_ids(memory) == ["one", "n1"]  # the retry's success continues the chain; no errback
    assert backend._get_task_meta_for("one")["status"] == "SUCCESS"
    assert FlowStore().get("n1").started_by.runs == (second,)


def test_an_errback_starts_after_the_last_failover_and_retry(memory, as_worker):
    memory.worker("gpu1", tags={"gpu"})
    memory.pipeline.accept(
        (),
        {"command": "flaky", "user": "u", "retries": 1, "max_lost": 2},
        {"task_id": "one", "link_error": sig("echo cleanup", "e1")},
    )
    as_worker()
    assert end(memory, "one", "lost").status == "lost"  # failed over: the controller publishes it
    second = FlowStore().get("one").next
    assert end(memory, second, "failed").status == "retrying"
    third = FlowStore().get(second).next
    assert FlowStore().get(third).root == "one" and "e1" not in sent_ids(memory)
    assert end(memory, third, "failed").status == "dead_letter"
    assert sent_ids(memory)[-1] == "e1"
    assert FlowStore().get("e1").started_by == Upstream((third,), ("dead_letter",), "on_failure", *_job(memory, "one"))


def test_an_altered_step_is_recorded_refused_and_what_follows_it_not_run(memory, as_worker):
    memory.worker("gpu1", tags={"gpu"})
    memory.pipeline.accept(
        (),
        {"command": "echo one", "user": "u"},
        {"task_id": "one", "chain": [sig("echo 3", "c3"), sig("echo 2", "c2")]},
    )
    doc = memory.db[names.RUN_FLOWS].find_one({"_id": "one"})
    doc["then"]["on_success"][0]["kwargs"]["command"] = "id"  # written past Hydra: the signature no longer matches
    memory.db[names.RUN_FLOWS].replace_one({"_id": "one"}, doc)
    as_worker()
    end(memory, "one", "succeeded")
    assert sent_ids(memory) == ["one"]
    refused = memory.pipeline.runs.get("c2")
    assert refused.status == "dead_letter" and "tampered" in refused.error
    assert memory.pipeline.runs.get("c3").status == "cancelled"


def test_a_step_started_during_a_broker_outage_is_published_by_the_controller_and_its_chain_goes_on(memory, as_worker):
    from kombu.exceptions import OperationalError

    memory.worker("gpu1", tags={"gpu"})
    memory.pipeline.accept(
        (),
        {"command": "echo one", "user": "u"},
        {"task_id": "one", "chain": [sig("echo 3", "c3"), sig("echo 2", "c2")]},
    )
    as_worker()
    memory.app.fail = OperationalError("broker down")
    end(memory, "one", "succeeded")
    waiting = memory.pipeline.runs.get("c2")
    assert waiting.status == "pending" and not waiting.queue  # recorded unsent
    memory.app.fail = None
    as_worker.back()  # the controller: it signs
    assert publish_delayed("c2", memory.pipeline)
    assert sent_ids(memory) == ["one", "c2"]
    resent = memory.app.sent[-1]
    assert sent_envelope(resent).verify(resent.options["headers"][signing.HEADER]) is None  # signed anew, as stored
    end(memory, "c2", "succeeded")
    assert sent_ids(memory) == ["one", "c2", "c3"]  # the chain goes on from c2's record, not from a message


def test_a_publish_that_fails_past_the_broker_ends_its_run_with_the_reason(memory):
    memory.worker("gpu1", tags={"gpu"})
    memory.app.fail = TypeError("Pipeline.send() got multiple values for argument 'chain'")
    with pytest.raises(TypeError):
        memory.pipeline.accept((), {"command": "echo one", "user": "u"}, {"task_id": "one"})
    run = memory.pipeline.runs.get("one")
    assert run.status == "failed" and run.decision == "not published" and "multiple values" in run.error
    assert not memory.redis.zscore(names.SENT_KEY, "one")


def test_a_run_is_watched_before_it_is_recorded(memory):
    memory.worker("gpu1", tags={"gpu"})
    memory.app.fail = KeyboardInterrupt()  # the publisher dies mid-send: nothing catches it
    with pytest.raises(KeyboardInterrupt):
        memory.pipeline.accept((), {"command": "echo one", "user": "u"}, {"task_id": "one"})
    assert memory.pipeline.runs.get("one").status == "queued"
    assert memory.redis.zscore(names.SENT_KEY, "one")  # the controller publishes it again after the bound


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


def test_a_worker_refuses_a_message_that_carries_a_canvas():
    sealed = seal("r1", {"command": "x", "user": "u", "job_id": "j", "attempt": 1}, Chain(), {"link": [sig("id")]})
    assert "callbacks" in refusal(sealed.envelope)
    assert refusal(seal("r1", {"command": "x", "user": "u"}, Chain(), {}).envelope) is None


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


def test_submissions_with_the_signing_key_are_audited_with_each_step(memory):
    memory.worker("gpu1", tags={"gpu"})
    memory.pipeline.accept(
        (),
        {"command": "echo one", "user": "u", "env": {"TOKEN": "s3cret"}},
        {"task_id": "one", "link": sig("echo a", "a1")},
    )
    events, _ = AuditStore().list()
    by_run = {e.details["run"]: e for e in events}
    key = f"signing-key:{signing.keyring_id()}"
    assert {e.actor for e in events} == {key} and {e.via for e in events} == {"apply_async"}
    assert by_run["one"].action == "job.submit" and by_run["one"].details["env"] == ["TOKEN"]
    assert by_run["a1"].details["step_of"] == "one"
    assert "s3cret" not in repr([e.to_doc() for e in events])


def test_upstream_variables_pass_on_only_ids_and_statuses():
    upstream = Upstream(("r1", "$(rm -rf /)"), ("succeeded", "evil"), "chord", "job-1")
    env = upstream.environment()
    assert env == {
        "HYDRA_UPSTREAM_RUN_ID": "r1",
        "HYDRA_UPSTREAM_STATUS": "succeeded",
        "HYDRA_UPSTREAM_JOB_ID": "job-1",
        "HYDRA_UPSTREAM_VIA": "chord",
    }


@pytest.fixture
def celery_app(memory):
    """Hydra's Celery app, publishing through the in-memory pipeline."""
    from hydra.celery.app import app

    memory.worker("gpu1", tags={"gpu"})
    return app


def body(command: str) -> dict:
    return {"command": command, "user": "u", "affinity": {"tags": ["gpu"]}}


def test_celerys_chain_runs_its_steps_one_after_another(memory, celery_app):
    from hydra import run_command as rc

    result = chain(rc.si(**body("a")), rc.si(**body("b")), rc.si(**body("c"))).apply_async()
    first, second = result.parent.parent.id, result.parent.id
    assert sent_ids(memory) == [first]
    end(memory, first, "succeeded")
    end(memory, second, "succeeded")
    assert sent_ids(memory) == [first, second, result.id]  # AsyncResult of the chain: its last step


def test_celerys_group_sends_each_member(memory, celery_app):
    from hydra import run_command as rc

    result = group(rc.si(**body("a")), rc.si(**body("b"))).apply_async()
    assert sent_ids(memory) == [r.id for r in result.results]


def test_celerys_chord_starts_its_body_once_every_header_run_succeeded(memory, celery_app):
    from hydra import run_command as rc

    result = chord(
        [rc.si(**body("a")), chain(rc.si(**body("b1")), rc.si(**body("b2")))], rc.si(**body("sum"))
    ).apply_async()
    header = result.parent  # Celery's GroupResult: the header's parts (a chained part: its last step)
    a, b2 = (r.id for r in header.results)
    b1 = memory.app.sent[-1].options["task_id"]
    assert sent_ids(memory) == [a, b1] and FlowStore().chord(header.id).parts == [a, b2]
    end(memory, a, "succeeded")
    end(memory, b1, "succeeded")
    assert result.id not in sent_ids(memory)
    end(memory, b2, "succeeded")
    assert sent_ids(memory)[-1] == result.id
    upstream = FlowStore().get(result.id).started_by
    assert (upstream.runs, upstream.statuses, upstream.via) == ((a, b2), ("succeeded", "succeeded"), "chord")


def test_a_failed_header_part_leaves_the_chord_body_not_run_and_starts_its_errbacks(memory, celery_app):
    from hydra import run_command as rc

    errback = rc.si(**body("echo chord failed"))
    result = chord([rc.si(**body("a")), rc.si(**body("b"))], rc.si(**body("sum")).on_error(errback)).apply_async()
    a, b = (r.id for r in result.parent.results)
    end(memory, a, "failed")
    end(memory, b, "succeeded")
    assert memory.pipeline.runs.get(result.id).status == "cancelled"
    assert f"run {a} of chord" in memory.pipeline.runs.get(result.id).error
    assert len(memory.app.sent) == 3  # a, b and the body's errback
    assert memory.app.sent[-1].kwargs["command"] == "echo chord failed"


def test_a_chain_through_a_group_is_a_chord(memory, celery_app):
    from hydra import run_command as rc

    result = chain(rc.si(**body("a")), group(rc.si(**body("b")), rc.si(**body("c"))), rc.si(**body("d"))).apply_async()
    [first] = sent_ids(memory)
    end(memory, first, "succeeded")
    b, c = sent_ids(memory)[1:]
    end(memory, b, "succeeded")
    end(memory, c, "succeeded")
    assert sent_ids(memory)[-1] == result.id  # d, the chord's body


def test_a_refused_header_task_ends_its_part_of_the_chord(memory, celery_app):
    from hydra import run_command as rc

    with pytest.raises(InvalidJob):
        chord([rc.si(**body("a")), rc.si(command="b", user="u", timeout=-1)], rc.si(**body("sum"))).apply_async()
    [a] = sent_ids(memory)
    end(memory, a, "succeeded")
    body_run = memory.pipeline.runs.get(FlowStore().get(a).started[0]["run_id"])
    assert body_run.status == "cancelled" and "ended failed" in body_run.error

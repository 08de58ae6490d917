"""Notifications (hydra.model.notify, hydra.dispatch.notices, hydra.control.notifier): the rules
of the ``notify`` field, the events of an end, the signature, redaction in every answer, and
the notifier's attempts, retries and refusals, on the in-memory stores."""

from __future__ import annotations

import json

import pytest

from api.schemas.jobs import JobSchema
from api.schemas.runs import RunSchema
from hydra import names
from hydra.cli.notify import described_targets, parse_targets
from hydra.control import verbs
from hydra.control.access import Reader
from hydra.control.notifier import Notifier
from hydra.dispatch.attempts import end_attempt
from hydra.errors import InvalidJob
from hydra.model import notify
from hydra.model.access import Principal, Role
from hydra.model.message import load_message, message_kwargs
from hydra.model.outcome import Outcome
from hydra.model.records import Job
from hydra.model.redaction import REDACTED, without_secrets
from hydra.model.spec import load_job
from hydra.model.status import RunStatus
from hydra.rpc.convert import job_message, run_message
from hydra.settings import Settings
from hydra.store.namespaces import NamespaceLimits, NamespaceStore
from hydra.store.notifications import DELIVERED, FAILED, PENDING, REFUSED, NotificationStore

ALICE = Principal(user="alice", roles={"*": Role.ADMIN}, via="token:alice")
SECRET = "a-webhook-secret-0123456789"
SLACK = "https://hooks.slack.example/services/T0/B0/XYZ"
WEBHOOK = {"on": ["failed", "recovered"], "webhook": {"url": "https://ops.example/hook", "secret": SECRET}}


def body(**extra):
    return {"name": "nightly", "command": "false", **extra}


def errors_of(value) -> dict:
    with pytest.raises(InvalidJob) as caught:
        load_job(body(notify=value))
    return caught.value.errors["notify"]


# -- the rules of the field ------------------------------------------------------------------
def test_a_job_names_targets_and_the_events_are_kept_in_one_order():
    spec = load_job(body(notify=[{"on": ["recovered", "failed", "failed"], "slack": {"url": SLACK}}, WEBHOOK]))
    assert spec["notify"][0] == {"on": ["recovered", "failed"], "slack": {"url": SLACK}}
    assert spec["notify"][1]["webhook"]["secret"] == SECRET
    assert load_job(body())["notify"] is None


@pytest.mark.parametrize(
    ("value", "where", "words"),
    [
        ([{"on": ["exploded"], "slack": {"url": SLACK}}], (0, "on", 0), "unknown event 'exploded'"),
        ([{"on": [], "slack": {"url": SLACK}}], (0, "on"), "Length"),
        ([{"slack": {"url": SLACK}}], (0, "on"), "required"),
        ([{"on": ["failed"], "slack": {"url": "ftp://files.example/x"}}], (0, "slack", "url"), "not an http(s) URL"),
        ([{"on": ["failed"], "webhook": {"url": "https://x.example/h"}}], (0, "webhook", "secret"), "required"),
        (
            [{"on": ["failed"], "webhook": {"url": "https://x.example/h", "secret": "short"}}],
            (0, "webhook", "secret"),
            "16",
        ),
        (
            [{"on": ["failed"], "webhook": {"url": "https://x.example/h", "secret": REDACTED}}],
            (0, "webhook", "secret"),
            "give the secret itself",
        ),
        ([{"on": ["failed"]}], (0, "_schema"), "exactly one of webhook or slack"),
        ([{"on": ["failed"], "slack": {"url": SLACK}, "webhook": WEBHOOK["webhook"]}], (0, "_schema"), "exactly one"),
        ([{"on": ["failed"], "slack": {"url": SLACK}, "email": "x"}], (0, "email"), "Unknown field"),
        ([{"on": ["failed"], "slack": {"url": SLACK}}] * 11, (), "Length"),
    ],
)
def test_a_bad_target_is_refused_naming_the_field(value, where, words):
    messages = errors_of(value)
    for key in where:
        messages = messages[key]
    assert words.lower() in json.dumps(messages).lower()


def test_the_message_names_the_events_only_and_never_carries_the_targets():
    spec = load_job(body(notify=[WEBHOOK, {"on": ["dead_letter"], "slack": {"url": SLACK}}]))
    kwargs = message_kwargs(spec, job_id="j1", attempt=1)
    assert kwargs["notify_on"] == ["recovered", "dead_letter", "failed"]
    assert "notify" not in kwargs and SECRET not in json.dumps(kwargs) and SLACK not in json.dumps(kwargs)
    loaded = load_message({**kwargs, "user": "alice"})
    assert Job.from_message(loaded).notify == [{"on": ["recovered", "dead_letter", "failed"]}]
    with pytest.raises(InvalidJob) as caught:  # targets belong to the stored job
        load_message({**kwargs, "user": "alice", "notify": spec["notify"]})
    assert "notify" in caught.value.errors
    with pytest.raises(InvalidJob):
        load_message({**kwargs, "user": "alice", "notify_on": ["exploded"]})


# -- events and signatures -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "outcome", "previous", "events"),
    [
        ("succeeded", "succeeded", None, ["succeeded"]),
        ("succeeded", "succeeded", "succeeded", ["succeeded"]),
        ("succeeded", "succeeded", "failed", ["recovered", "succeeded"]),
        ("succeeded", "succeeded", "dead_letter", ["recovered", "succeeded"]),
        ("failed", "failed", None, ["failed"]),
        ("timed_out", "timed_out", "succeeded", ["failed"]),
        ("dead_letter", "failed", None, ["dead_letter", "failed"]),
        ("dead_letter", "lost", None, ["dead_letter", "lost", "failed"]),
        ("lost", "lost", None, ["lost"]),
        ("retrying", "failed", None, []),
        ("cancelled", "cancelled", "failed", []),
    ],
)
def test_the_events_of_an_end(status, outcome, previous, events):
    before = RunStatus(previous) if previous else None
    assert notify.events_of(RunStatus(status), RunStatus(outcome), before) == events


def test_a_target_is_sent_the_most_specific_event_it_hears():
    assert notify.event_for({"on": ["failed", "dead_letter"]}, ["dead_letter", "failed"]) == "dead_letter"
    assert notify.event_for({"on": ["failed"]}, ["dead_letter", "lost", "failed"]) == "failed"
    assert notify.event_for({"on": ["succeeded"]}, ["dead_letter", "failed"]) is None


def test_a_receiver_verifies_the_signature_and_refuses_a_change_or_a_replay():
    data = notify.encoded({"event": "failed", "run": {"id": "r1"}})
    sig = notify.signature(SECRET, 1_800_000_000, data)
    assert sig.startswith("sha256=") and len(sig) == 7 + 64
    assert notify.verify(SECRET, "1800000000", data, sig, now=1_800_000_010)
    assert not notify.verify("another-secret-0123456", "1800000000", data, sig, now=1_800_000_010)
    assert not notify.verify(SECRET, "1800000000", data + b" ", sig, now=1_800_000_010)
    assert not notify.verify(SECRET, "1800000001", data, sig, now=1_800_000_010)
    assert not notify.verify(SECRET, "1800000000", data, sig, now=1_800_000_000 + 301)  # too old: a replay
    assert not notify.verify(SECRET, "soon", data, sig, now=1_800_000_010)


def test_a_slack_body_has_text_and_blocks():
    shown = notify.slack_body(
        "dead_letter", {"id": "j1", "name": "nightly", "namespace": "ops"}, {"id": "r1", "status": "dead_letter"}, "u"
    )
    assert "nightly" in shown["text"] and "dead letter" in shown["text"] and "<u|" in shown["text"]
    assert shown["blocks"][0]["text"]["text"] == shown["text"]


def test_the_backoff_doubles_up_to_an_hour():
    assert [notify.retry_delay(n, 5.0) for n in (1, 2, 3)] == [5.0, 10.0, 20.0]
    assert notify.retry_delay(30, 5.0) == 3600.0


def test_the_line_syntax_of_the_cli_and_the_console():
    assert parse_targets(("failed,recovered webhook https://ops.example/hook " + SECRET,)) == [WEBHOOK]
    assert parse_targets(("dead_letter slack " + SLACK,)) == [{"on": ["dead_letter"], "slack": {"url": SLACK}}]
    assert parse_targets((json.dumps(WEBHOOK),)) == [WEBHOOK]
    assert parse_targets(()) is None
    for bad in ("failed webhook https://x.example", "failed email x@y", "[1]"):
        with pytest.raises(Exception, match="EVENTS webhook URL SECRET"):
            parse_targets((bad,))
    assert described_targets([WEBHOOK]) == "failed,recovered -> webhook https://ops.example/hook"


# -- secrets are write-only ------------------------------------------------------------------
def test_secrets_are_redacted_in_every_answer_and_left_out_of_the_edit_form(memory):
    spec = load_job(body(notify=[WEBHOOK, {"on": ["failed"], "slack": {"url": SLACK}}]))
    job, _, _ = verbs.submit(spec, actor=ALICE, pipeline=memory.pipeline)
    stored = memory.pipeline.jobs.get(job.id)
    rest = JobSchema().dump(stored)
    grpc = job_message(stored)
    assert rest["notify"][0] == {
        "on": ["recovered", "failed"],
        "webhook": {"url": WEBHOOK["webhook"]["url"], "secret": REDACTED},
    }
    assert rest["notify"][1]["slack"] == {"url": REDACTED}
    assert grpc.notify[0].webhook.secret == REDACTED and grpc.notify[1].slack.url == REDACTED
    for shown in (json.dumps(rest), str(grpc)):
        assert SECRET not in shown and SLACK not in shown
    assert "notify" not in without_secrets(stored.spec())
    verbs.update(job.id, actor=ALICE, patch={"priority": 70}, pipeline=memory.pipeline)
    assert memory.pipeline.jobs.get(job.id).notify[0]["webhook"]["secret"] == SECRET  # a PATCH without it keeps it


# -- the end-fence winner notes the notice; the notifier delivers it ---------------------------
def end(memory, job_id: str, status: str) -> str:
    """Run the job's next attempt to ``status`` as a worker would (the job as its message carries it)."""
    verbs.trigger(job_id, actor=ALICE, pipeline=memory.pipeline)
    sent = memory.app.sent[-1]
    run_id = sent.options["task_id"]
    end_attempt(
        run_id,
        Outcome(status=status),
        by="w@host",
        job=Job.from_message(sent.kwargs),
        attempt=1,
        pipeline=memory.pipeline,
    )
    return run_id


class Recorder:
    """Stands in for the HTTP send: answers from ``codes`` in turn, recording each call."""

    def __init__(self, *codes):
        self.codes, self.calls = list(codes), []

    def __call__(self, url, data, headers):
        self.calls.append((url, data, headers))
        code = self.codes.pop(0)
        if code is None:
            return None, "ConnectionError: refused", False
        return code, (None if 200 <= code < 300 else f"HTTP {code}"), False


def notifier(memory, monkeypatch, recorder, **settings) -> Notifier:
    made = Notifier(memory.pipeline, Settings(notify_backoff=1.0, notify_attempts=3, **settings))
    monkeypatch.setattr(made, "send", recorder)
    return made


def test_a_failure_is_noted_and_delivered_signed(memory, monkeypatch):
    memory.worker("w")
    job, _, _ = verbs.submit(load_job(body(notify=[WEBHOOK])), actor=ALICE, pipeline=memory.pipeline)
    memory.app.sent.clear()
    run_id = end(memory, job.id, "failed")
    notice = NotificationStore().get(run_id)
    assert notice.events == ["failed"] and not notice.resolved and notice.job_id == job.id
    sent = Recorder(200)
    assert notifier(memory, monkeypatch, sent).deliver_due() == 1
    url, data, headers = sent.calls[0]
    assert url == WEBHOOK["webhook"]["url"]
    assert notify.verify(
        SECRET,
        headers[notify.TIMESTAMP_HEADER],
        data,
        headers[notify.SIGNATURE_HEADER],
        now=float(headers[notify.TIMESTAMP_HEADER]),
    )
    payload = json.loads(data)
    assert payload["event"] == "failed" and payload["run"]["id"] == run_id and payload["job"]["name"] == "nightly"
    assert payload["console_url"].endswith(f"/ui/runs/{run_id}") and headers[notify.DELIVERY_HEADER] == f"{run_id}.0"
    shown = Reader(ALICE).run_shown(run_id)
    answer = RunSchema().dump(shown)["notifications"]
    assert answer["done"] and answer["deliveries"][0]["state"] == DELIVERED
    assert answer["deliveries"][0]["attempts"][0]["status_code"] == 200 and SECRET not in json.dumps(answer)
    assert run_message(shown).notifications.deliveries[0].state == DELIVERED
    assert memory.redis.zcard(names.NOTIFY_DUE_KEY) == 0


def test_a_success_notifies_only_who_hears_it_and_recovered_only_after_a_failure(memory, monkeypatch):
    memory.worker("w")
    job, _, _ = verbs.submit(load_job(body(notify=[WEBHOOK])), actor=ALICE, pipeline=memory.pipeline)
    ok = end(memory, job.id, "succeeded")
    assert NotificationStore().find(ok) is None  # nobody hears "succeeded"
    failed = end(memory, job.id, "failed")
    recovered = end(memory, job.id, "succeeded")
    again = end(memory, job.id, "succeeded")
    assert NotificationStore().get(failed).events == ["failed"]
    assert NotificationStore().get(recovered).events == ["recovered", "succeeded"]
    assert NotificationStore().find(again) is None
    sent = Recorder(200, 200)
    notifier(memory, monkeypatch, sent).deliver_due()
    assert sorted(json.loads(call[1])["event"] for call in sent.calls) == ["failed", "recovered"]


def test_a_job_without_targets_gets_its_namespaces_and_a_job_with_none_costs_nothing(memory, monkeypatch):
    memory.worker("w")
    quiet, _, _ = verbs.submit(load_job(body()), actor=ALICE, pipeline=memory.pipeline)
    assert NotificationStore().find(end(memory, quiet.id, "failed")) is None
    NamespaceStore().put(NamespaceLimits(id="ops", notify=[{"on": ["failed"], "slack": {"url": SLACK}}]), by="root")
    job, _, _ = verbs.submit(load_job(body(namespace="ops")), actor=ALICE, pipeline=memory.pipeline)
    run_id = end(memory, job.id, "failed")
    sent = Recorder(200)
    notifier(memory, monkeypatch, sent).deliver_due()
    assert sent.calls[0][0] == SLACK and json.loads(sent.calls[0][1])["text"].startswith(":x: Hydra job 'nightly'")
    delivery = NotificationStore().get(run_id).deliveries[0]
    assert delivery["kind"] == "slack" and delivery["state"] == DELIVERED
    assert Reader(ALICE).run_shown(run_id).notifications["deliveries"][0]["url"] == REDACTED


def test_a_failing_target_is_tried_again_with_backoff_then_recorded_failed(memory, monkeypatch):
    memory.worker("w")
    job, _, _ = verbs.submit(load_job(body(notify=[WEBHOOK])), actor=ALICE, pipeline=memory.pipeline)
    run_id = end(memory, job.id, "failed")
    sent = Recorder(None, 503, 500)
    made = notifier(memory, monkeypatch, sent)
    made.deliver_due()
    delivery = NotificationStore().get(run_id).deliveries[0]
    assert delivery["state"] == PENDING and delivery["attempts"][0]["error"].startswith("ConnectionError")
    due = memory.redis.zscore(names.NOTIFY_DUE_KEY, run_id)
    assert due == pytest.approx(delivery["next_at"]) and made.deliver_due(now=due - 0.5) == 0  # not yet due
    made.deliver_due(now=due + 0.1)
    second = NotificationStore().get(run_id).deliveries[0]
    assert second["attempts"][1]["status_code"] == 503 and second["next_at"] - due >= 1.9  # 1 s, then 2 s
    made.deliver_due(now=second["next_at"] + 0.1)
    final = NotificationStore().get(run_id)
    assert final.done and final.deliveries[0]["state"] == FAILED and len(final.deliveries[0]["attempts"]) == 3
    assert memory.redis.zcard(names.NOTIFY_DUE_KEY) == 0
    assert RunStatus(memory.pipeline.runs.get(run_id).status) == RunStatus.FAILED  # the run is as it ended


def test_a_target_the_egress_guard_refuses_is_recorded_refused_at_once(memory):
    memory.worker("w")
    local = {"on": ["failed"], "webhook": {"url": "http://127.0.0.1:9/hook", "secret": SECRET}}
    job, _, _ = verbs.submit(load_job(body(notify=[local])), actor=ALICE, pipeline=memory.pipeline)
    run_id = end(memory, job.id, "failed")
    Notifier(memory.pipeline, Settings()).deliver_due()
    delivery = NotificationStore().get(run_id).deliveries[0]
    assert delivery["state"] == REFUSED and len(delivery["attempts"]) == 1
    assert (
        "egress refused" in delivery["attempts"][0]["error"]
        and "HYDRA_WEBHOOK_ALLOW" in delivery["attempts"][0]["error"]
    )


def test_a_due_entry_without_its_notice_is_kept_a_while_then_dropped(memory, monkeypatch):
    made = notifier(memory, monkeypatch, Recorder())
    made.due.add("r-unwritten", 1000.0)
    made.deliver_due(now=1010.0)
    assert made.due.score("r-unwritten") == 1000.0  # its writer may be between the two writes
    made.deliver_due(now=1000.0 + 61)
    assert made.due.score("r-unwritten") is None


def test_after_redis_lost_the_due_index_the_notices_not_done_are_filed_again(memory, monkeypatch):
    memory.worker("w")
    job, _, _ = verbs.submit(load_job(body(notify=[WEBHOOK])), actor=ALICE, pipeline=memory.pipeline)
    waiting, delivered = end(memory, job.id, "failed"), end(memory, job.id, "failed")
    made = notifier(memory, monkeypatch, Recorder(200))
    made.handle(delivered, now=1e12)
    memory.redis.delete(names.NOTIFY_DUE_KEY)
    assert made.refile() == 1 and made.due.due(1e12) == [waiting]


def test_a_notice_that_cannot_be_handled_does_not_hold_up_the_others(memory, monkeypatch):
    memory.worker("w")
    job, _, _ = verbs.submit(load_job(body(notify=[WEBHOOK])), actor=ALICE, pipeline=memory.pipeline)
    stuck, fine = end(memory, job.id, "failed"), end(memory, job.id, "failed")
    store = NotificationStore()
    broken = store.get(stuck)
    broken.deliveries = [{"kind": "webhook", "state": PENDING}]  # no URL: written by no version of Hydra
    broken.resolved = True
    store.save(broken)
    made = notifier(memory, monkeypatch, Recorder(200))
    assert made.deliver_due(now=2e9) == 2
    assert store.get(fine).done and made.due.score(stuck) == 2e9 + 300


def test_a_grpc_job_spec_carries_targets_to_the_same_rules():
    from hydra.rpc.convert import job_body
    from hydra.v1 import hydra_pb2

    spec = hydra_pb2.JobSpec(
        name="nightly",
        command="false",
        notify=[
            hydra_pb2.NotifyTarget(
                on=["failed"], webhook=hydra_pb2.NotifyWebhook(url="https://ops.example/h", secret=SECRET)
            ),
            hydra_pb2.NotifyTarget(on=["lost"], slack=hydra_pb2.NotifySlack(url=SLACK)),
        ],
    )
    assert load_job(job_body(spec))["notify"] == [
        {"on": ["failed"], "webhook": {"url": "https://ops.example/h", "secret": SECRET}},
        {"on": ["lost"], "slack": {"url": SLACK}},
    ]
    bad = hydra_pb2.JobSpec(name="n", command="false", notify=[hydra_pb2.NotifyTarget(on=["exploded"])])
    with pytest.raises(InvalidJob) as caught:
        load_job(job_body(bad))
    assert caught.value.errors["notify"][0]["on"] == {
        0: ["unknown event 'exploded'; use one of recovered, succeeded, dead_letter, lost, failed"]
    }

"""Notifications on the real stack: a receiver on 127.0.0.1 (the one internal address the test
stack's HYDRA_WEBHOOK_ALLOW lists) gets what the leading controller delivers when runs end -
a signed webhook, a Slack-shaped body - with every attempt recorded on the run (REST, the
client, the CLI); a receiver that is down gets it once it is back; a target the egress guard
refuses is recorded refused and the run is as it ended."""

from __future__ import annotations

import http.server
import json
import threading
import time

import pytest
from click.testing import CliRunner

from hydra.cli import main
from hydra.client import Client
from hydra.model import notify
from hydra.model.redaction import REDACTED
from tests.conftest import WEBHOOK_PORT
from tests.helpers import job_body, submit, unique, wait_run, wait_until

SECRET = "integration-secret-0123456789"


class Receiver(http.server.BaseHTTPRequestHandler):
    seen: list[dict] = []

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length)
        self.seen.append({"path": self.path, "headers": dict(self.headers), "data": data})
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


class Listening:
    """The receiver on WEBHOOK_PORT; started and stopped by the test (a receiver that is down)."""

    def __init__(self):
        self.server: http.server.ThreadingHTTPServer | None = None
        Receiver.seen = []

    def start(self) -> None:
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", WEBHOOK_PORT), Receiver)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def got(self, path: str) -> list[dict]:
        return [item for item in Receiver.seen if item["path"] == path]


@pytest.fixture
def receiver(stack):
    listening = Listening()
    yield listening
    listening.stop()


def url(path: str) -> str:
    return f"http://127.0.0.1:{WEBHOOK_PORT}{path}"


def webhook(path: str, *events: str) -> dict:
    return {"on": list(events), "webhook": {"url": url(path), "secret": SECRET}}


def notifications(api, run_id: str, *, done: bool = True) -> dict:
    """The run's notifications once every delivery is done (or, with done=False, once noted)."""

    def ready():
        shown = api.get(f"/runs/{run_id}").json.get("notifications")
        return shown if shown and (shown["done"] or not done) else None

    return wait_until(ready, 60, message=f"the notifications of run {run_id}")


def test_a_failure_reaches_the_webhook_signed_and_every_interface_shows_the_attempt(api, stack, receiver):
    receiver.start()
    path = f"/{unique('hook')}"
    created = submit(api, "exit 3", notify=[webhook(path, "failed", "recovered")])
    run = wait_run(created["run_id"])
    assert run.status == "failed"
    shown = notifications(api, run.id)
    (delivery,) = shown["deliveries"]
    assert shown["events"] == ["failed"] and delivery["state"] == "delivered" and delivery["event"] == "failed"
    assert delivery["attempts"][-1]["status_code"] == 200 and delivery["attempts"][-1]["error"] is None
    (got,) = receiver.got(path)
    headers, data = got["headers"], got["data"]
    assert notify.verify(SECRET, headers["X-Hydra-Timestamp"], data, headers["X-Hydra-Signature"], now=time.time())
    assert not notify.verify(
        "not-the-secret-0123456789", headers["X-Hydra-Timestamp"], data, headers["X-Hydra-Signature"], now=time.time()
    )
    body = json.loads(data)
    assert body["event"] == "failed" and body["run"]["id"] == run.id and body["run"]["returncode"] == 3
    assert body["job"]["id"] == created["job_id"] and body["console_url"].endswith(f"/ui/runs/{run.id}")
    assert headers["X-Hydra-Event"] == "failed" and headers["X-Hydra-Delivery"] == f"{run.id}.0"
    job = api.get(f"/jobs/{created['job_id']}").json
    assert job["notify"] == [{"on": ["recovered", "failed"], "webhook": {"url": url(path), "secret": REDACTED}}]
    stack.start_api()
    with Client(stack.api_url) as client:
        assert client.run(run.id).notifications["deliveries"][0]["state"] == "delivered"
        assert client.job(created["job_id"]).notify[0]["webhook"]["secret"] == REDACTED
    result = CliRunner().invoke(main, ["run", "show", "--api-url", stack.api_url, run.id])
    assert "notified" in result.output and "delivered" in result.output and "200" in result.output, result.output


def test_recovered_is_sent_on_the_first_success_after_a_failure(api, stack, receiver, shared):
    receiver.start()
    path = f"/{unique('recovered')}"
    marker = shared / "ok"
    created = submit(api, f"test -f {marker}", cwd=str(shared), notify=[webhook(path, "recovered")])
    failed = wait_run(created["run_id"])
    assert failed.status == "failed"
    marker.write_text("now it works")
    second = api.post(f"/jobs/{created['job_id']}/trigger").json["run_id"]
    assert wait_run(second).status == "succeeded"
    shown = notifications(api, second)
    assert shown["events"] == ["recovered", "succeeded"] and shown["deliveries"][0]["event"] == "recovered"
    third = api.post(f"/jobs/{created['job_id']}/trigger").json["run_id"]
    assert wait_run(third).status == "succeeded"
    (got,) = receiver.got(path)  # one: the failure and the later success told nobody
    assert json.loads(got["data"])["run"]["id"] == second
    assert api.get(f"/runs/{failed.id}").json["notifications"] is None
    assert api.get(f"/runs/{third}").json["notifications"] is None


def test_a_slack_target_gets_text_and_blocks_and_its_url_is_never_shown(api, stack, receiver):
    receiver.start()
    path = f"/{unique('slack')}/services/T0/B0/XYZ"
    created = submit(api, "true", notify=[{"on": ["succeeded"], "slack": {"url": url(path)}}])
    run_id = created["run_id"]
    assert wait_run(run_id).status == "succeeded"
    shown = notifications(api, run_id)
    assert shown["deliveries"][0]["url"] == REDACTED and shown["deliveries"][0]["state"] == "delivered"
    (got,) = receiver.got(path)
    body = json.loads(got["data"])
    assert set(body) == {"text", "blocks"} and "succeeded" in body["text"] and run_id in body["text"]
    assert "X-Hydra-Signature" not in got["headers"]
    assert path not in json.dumps(api.get(f"/jobs/{created['job_id']}").json)


def test_a_receiver_that_is_down_gets_it_once_it_is_back(api, stack, receiver):
    path = f"/{unique('later')}"
    created = submit(api, "exit 1", notify=[webhook(path, "failed")])
    run = wait_run(created["run_id"])
    assert run.status == "failed"  # the run ended as it did, whatever the receiver does

    def tried():
        shown = notifications(api, run.id, done=False)
        deliveries = shown["deliveries"]
        return deliveries and deliveries[0]["attempts"] and deliveries[0]

    first = wait_until(tried, 60, message="a first attempt at a receiver that is down")
    assert first["state"] == "pending" and first["attempts"][0]["status_code"] is None
    assert "Connection" in first["attempts"][0]["error"]
    receiver.start()
    shown = notifications(api, run.id)
    attempts = shown["deliveries"][0]["attempts"]
    assert shown["deliveries"][0]["state"] == "delivered" and len(attempts) >= 2
    assert attempts[0]["error"] and attempts[-1]["status_code"] == 200
    assert len(receiver.got(path)) == 1
    assert api.get(f"/runs/{run.id}").json["status"] == "failed"


def test_a_namespace_default_applies_to_its_jobs_that_name_none(api, stack, receiver):
    receiver.start()
    namespace = unique("notify").lower()
    path = f"/{namespace}"
    answer = api.put(f"/namespaces/{namespace}", json={"notify": [webhook(path, "failed")]})
    assert answer.status_code == 200, answer.json
    assert answer.json["notify"][0]["webhook"]["secret"] == REDACTED
    assert api.get(f"/namespaces/{namespace}").json["notify"][0]["webhook"] == {"url": url(path), "secret": REDACTED}
    own_path = f"/{namespace}-own"
    plain = submit(api, "exit 2", namespace=namespace)
    own = submit(api, "exit 2", namespace=namespace, notify=[webhook(own_path, "failed")])
    for created in (plain, own):
        assert wait_run(created["run_id"]).status == "failed"
        notifications(api, created["run_id"])
    assert [json.loads(item["data"])["run"]["id"] for item in receiver.got(path)] == [plain["run_id"]]
    assert [json.loads(item["data"])["run"]["id"] for item in receiver.got(own_path)] == [own["run_id"]]
    api.delete(f"/namespaces/{namespace}")


def test_a_target_the_egress_guard_refuses_is_recorded_and_the_run_is_unaffected(api, stack):
    blocked = {"on": ["succeeded"], "webhook": {"url": f"http://127.0.0.1:{WEBHOOK_PORT + 1}/x", "secret": SECRET}}
    created = submit(api, "echo fine", notify=[blocked])
    run = wait_run(created["run_id"])
    assert run.status == "succeeded" and run.stdout == "fine\n"
    (delivery,) = notifications(api, run.id)["deliveries"]
    assert delivery["state"] == "refused" and len(delivery["attempts"]) == 1
    assert (
        "egress refused" in delivery["attempts"][0]["error"]
        and "HYDRA_WEBHOOK_ALLOW" in delivery["attempts"][0]["error"]
    )


@pytest.mark.parametrize(
    ("target", "where"),
    [
        ({"on": ["exploded"], "slack": {"url": "https://hooks.example/x"}}, ["0", "on", "0"]),
        ({"on": ["failed"], "slack": {"url": "file:///etc/passwd"}}, ["0", "slack", "url"]),
        (
            {"on": ["failed"], "webhook": {"url": "https://hooks.example/x", "secret": REDACTED}},
            ["0", "webhook", "secret"],
        ),
    ],
)
def test_a_bad_target_is_a_422_naming_the_field_and_nothing_is_stored(api, stack, target, where):
    name = unique("bad-notify")
    response = api.post("/jobs/", json=job_body("true", name=name, notify=[target]))
    assert response.status_code == 422
    errors = response.json["errors"]["json"]["notify"]
    for key in where:
        errors = errors[key] if key in errors else errors[int(key)]
    assert errors
    bad_ns = api.put("/namespaces/default", json={"notify": [target]})
    assert bad_ns.status_code == 422 and "notify" in bad_ns.json["errors"]["json"]

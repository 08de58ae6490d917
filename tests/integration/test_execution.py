"""Execution options on the real stack: env on a scrubbed base, cwd, args without a shell,
and the HTTP webhook executor against a real local server."""

from __future__ import annotations

import http.server
import json
import threading

import pytest

from tests.conftest import WEBHOOK_PORT
from tests.helpers import job_body, submit, wait_run, wait_until


def submit_http(api, request: dict, **overrides) -> dict:
    body = job_body("unused", executor="http", http=request, **overrides)
    del body["command"], body["shell"]
    response = api.post("/jobs", json=body)
    assert response.status_code == 201, response.json
    return response.json


def test_job_env_is_added_to_a_scrubbed_base(api, stack):
    run = wait_run(submit(api, "env", env={"GREETING": "hi there", "PATH_EXTRA": "/opt/x"})["run_id"])
    assert run.status == "succeeded"
    env = dict(line.split("=", 1) for line in run.stdout.splitlines() if "=" in line)
    assert env["GREETING"] == "hi there" and env["PATH_EXTRA"] == "/opt/x"
    assert "PATH" in env
    # A run learns who it is (HYDRA_RUN_ID, ...), never the worker's own settings or secrets.
    run_vars = {"HYDRA_RUN_ID", "HYDRA_JOB_ID", "HYDRA_ATTEMPT", "HYDRA_WORKER"}
    assert run_vars <= set(env) and env["HYDRA_RUN_ID"] == run.id
    leaked = [
        name
        for name in env
        if name.startswith(("CELERY", "PYTHONPATH")) or (name.startswith("HYDRA_") and name not in run_vars)
    ]
    assert leaked == []
    assert stack.broker_url not in run.stdout and stack.mongo_url not in run.stdout


def test_cwd_and_args_without_a_shell(api, stack, shared):
    (shared / "here.txt").write_text("found")
    run = wait_run(submit(api, "cat here.txt; pwd", cwd=str(shared))["run_id"])
    assert run.stdout == f"found{shared}\n"

    # no shell: nothing is expanded, quoted or split
    literal = wait_run(submit(api, "printf", shell=None, args=["%s|", "a b", "$HOME", "*", ";echo no"])["run_id"])
    assert literal.status == "succeeded" and literal.stdout == "a b|$HOME|*|;echo no|"
    missing = wait_run(submit(api, "pwd", cwd=str(shared / "absent"))["run_id"])
    assert missing.status == "failed" and "cwd does not exist" in missing.error


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[dict] = []
    redirect_to = "http://127.0.0.1:1/"

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        self.seen.append(
            {"method": self.command, "path": self.path, "body": body, "auth": self.headers.get("Authorization")}
        )
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", self.redirect_to)
            self.end_headers()
            return
        code = 503 if self.path.startswith("/down") else 200
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(json.dumps({"ok": code == 200, "echo": body}).encode())

    do_GET = do_POST = do_PUT = do_HEAD = _answer  # noqa: N815 - http.server's handler names

    def log_message(self, *args):
        pass


@pytest.fixture
def hook_server():
    # The one internal address the stack's webhooks may reach (HYDRA_WEBHOOK_ALLOW, tests/conftest.py).
    server = http.server.ThreadingHTTPServer(("127.0.0.1", WEBHOOK_PORT), _Recorder)
    _Recorder.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", _Recorder.seen
    server.shutdown()
    server.server_close()


def test_http_webhook_is_a_run_like_any_other(api, stack, hook_server):
    base, seen = hook_server
    request = {
        "url": f"{base}/reports/generate",
        "method": "POST",
        "headers": {"Authorization": "Bearer token"},
        "body": {"report": "daily"},
        "timeout": 5,
    }
    created = submit_http(api, request, name="daily-report")
    run = wait_run(created["run_id"])
    assert run.status == "succeeded" and run.returncode == 200
    assert json.loads(run.stdout) == {"ok": True, "echo": '{"report": "daily"}'}
    assert run.executor == "http" and run.url == request["url"] and run.worker_id
    assert seen == [
        {"method": "POST", "path": "/reports/generate", "body": '{"report": "daily"}', "auth": "Bearer token"}
    ]


def test_http_errors_fail_and_retry_like_commands(api, stack, hook_server):
    base, seen = hook_server
    created = submit_http(api, {"url": f"{base}/down", "method": "GET"}, retries=1, backoff={"base": 0.2, "jitter": 0})
    first = wait_run(created["run_id"])
    assert first.status == "retrying" and first.returncode == 503 and "HTTP 503" in first.error
    last = wait_until(
        lambda: next(
            (
                r
                for r in api.get(f"/jobs/{created['job_id']}/runs").json
                if r["attempt"] == 2 and r["status"] == "dead_letter"
            ),
            None,
        ),
        20,
        message="the second attempt's dead letter",
    )
    assert last["returncode"] == 503 and len(seen) == 2


def test_a_webhook_nobody_answers_fails(api, stack):
    # the allow-listed port, with nothing listening there
    refused = wait_run(submit_http(api, {"url": f"http://127.0.0.1:{WEBHOOK_PORT}/nothing", "method": "GET"})["run_id"])
    assert refused.status == "failed" and refused.returncode is None and "Connection" in refused.error


@pytest.fixture
def internal_server():
    """An internal service webhooks must not reach (on a port HYDRA_WEBHOOK_ALLOW does not list)."""
    seen: list[str] = []

    class Internal(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.path)
            self.send_response(200)
            self.end_headers()

        do_POST = do_GET  # noqa: N815

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Internal)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_port, seen
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "2130706433", "0x7f000001", "0.0.0.0", "127.1", "localhost", "[::ffff:127.0.0.1]"]
)
def test_a_webhook_cannot_reach_an_internal_address_in_any_spelling(api, stack, internal_server, host):
    port, seen = internal_server
    body = job_body("unused", executor="http", http={"url": f"http://{host}:{port}/jobs/", "method": "POST"})
    del body["command"], body["shell"]
    response = api.post("/jobs", json=body)
    if response.status_code == 422:  # refused up front: nothing stored
        assert "http" in response.json["errors"]["json"]
    else:
        run = wait_run(response.json["run_id"])
        assert run.status == "failed" and run.returncode is None and run.error.startswith("egress refused")
        assert "HYDRA_WEBHOOK_ALLOW" in run.error
    assert seen == []


def test_a_webhook_does_not_follow_a_redirect_to_an_internal_address(api, stack, hook_server, internal_server):
    base, _seen = hook_server
    port, seen = internal_server
    _Recorder.redirect_to = f"http://127.0.0.1:{port}/jobs/"
    run = wait_run(submit_http(api, {"url": f"{base}/redirect", "method": "GET"})["run_id"])
    assert run.status == "failed" and run.returncode == 302
    assert "not followed" in run.error and f"127.0.0.1:{port}/jobs/" in run.error
    assert seen == []

"""Execution options on the real stack: env on a scrubbed base, cwd, args without a shell,
and the HTTP webhook executor against a real local server."""

from __future__ import annotations

import http.server
import json
import threading

import pytest

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

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        self.seen.append(
            {"method": self.command, "path": self.path, "body": body, "auth": self.headers.get("Authorization")}
        )
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
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
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

    refused = wait_run(submit_http(api, {"url": "http://127.0.0.1:1/nothing", "method": "GET"})["run_id"])
    assert refused.status == "failed" and refused.returncode is None and "Connection" in refused.error

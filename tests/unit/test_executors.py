"""The executor interface and the http executor (against a real local HTTP server)."""

from __future__ import annotations

import http.server
import threading
import time

import pytest

from hydra.execution import executors
from hydra.execution.egress import EgressPolicy
from hydra.execution.executors import Context


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/slow":
            time.sleep(2)
        self.send_response(404 if self.path == "/missing" else 200)
        self.end_headers()
        self.wfile.write(b"x" * 5000 if self.path == "/big" else b"got " + body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def base_url():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


#: The local test server is internal: these tests allow-list loopback (test_egress.py shows the default).
LOOPBACK = EgressPolicy.from_text("127.0.0.0/8")


def ctx(**kw) -> Context:
    kw.setdefault("egress", LOOPBACK)
    return Context(os_name="linux", output_limit=kw.pop("output_limit", 1000), default_timeout=10, **kw)


def hook(url: str, **request) -> dict:
    return {"executor": "http", "http": {"url": url, "method": "POST", **request}}


def test_2xx_succeeds_with_the_body_as_stdout(base_url):
    out = executors.run(hook(f"{base_url}/ok", body={"a": 1}), ctx())
    assert (out.status, out.returncode, out.stdout) == ("succeeded", 200, 'got {"a": 1}')
    assert out.error is None and out.started_at <= out.finished_at


def test_other_codes_fail_and_big_bodies_are_capped(base_url):
    missing = executors.run(hook(f"{base_url}/missing", body="raw text"), ctx())
    assert missing.status == "failed" and missing.returncode == 404 and "HTTP 404" in missing.error
    big = executors.run(hook(f"{base_url}/big"), ctx(output_limit=100))
    assert big.stdout_truncated and big.stdout_bytes == 5000 and len(big.stdout) < 200


def test_timeout_and_cancel_end_the_attempt_at_once(base_url):
    started = time.monotonic()
    slow = executors.run(hook(f"{base_url}/slow", timeout=0.3), ctx())
    assert slow.status == "timed_out" and time.monotonic() - started < 1.5
    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()
    started = time.monotonic()
    assert executors.run(hook(f"{base_url}/slow"), ctx(cancel=cancel)).status == "cancelled"
    assert time.monotonic() - started < 1.0
    assert executors.run(hook(f"{base_url}/ok"), ctx(cancel=cancel)).returncode is None  # never sent


def test_unreachable_and_unknown_executors_are_failed_outcomes():
    refused = executors.run(hook("http://127.0.0.1:1/x"), ctx())
    assert refused.status == "failed" and refused.returncode is None and refused.error
    assert executors.run({"executor": "ssh"}, ctx()).status == "failed"


def test_shell_is_the_default_and_only_the_names_jobs_may_ask_for_register():
    assert executors.run({"command": "echo hi", "shell": "sh"}, ctx()).stdout == "hi\n"
    assert executors.run({"args": []}, ctx()).status == "failed"

    with pytest.raises(ValueError, match="not one of"):  # a job could never name it
        executors.register("constant")


def test_the_registry_holds_exactly_the_executors_a_job_may_name():
    from hydra.model.spec import EXECUTORS

    assert executors.names() == sorted(EXECUTORS)

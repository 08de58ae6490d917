"""LOG_FORMAT=json on real processes: the API under gunicorn, a controller and a worker each
write one JSON object per line with component, event, job_id, run_id and worker."""

from __future__ import annotations

import json
import re

import requests

from hydra.logs import CORE_KEYS
from hydrastack import WorkerSpec, pick_free_ports
from tests.helpers import job_body, unique, wait_run, wait_until

CELERY_TEXT_LINE = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+: [A-Z]+/")


def records(stack, name: str, *, strict: bool) -> list[dict]:
    """The JSON lines of the last start of ``name``'s log. ``strict``: every line must be JSON
    (a Celery worker also prints its start-up banner, which is not a log record)."""
    text = stack.log_path(name).read_text()
    text = text[text.rindex("hydrastack: starting") :].split("\n", 1)[1]
    found = []
    for line in filter(None, text.splitlines()):
        if line.startswith("{"):
            found.append(json.loads(line))
        else:
            assert not strict, f"{name}: not a JSON line: {line!r}"
            assert not CELERY_TEXT_LINE.match(line), f"{name}: a text log line: {line!r}"
    assert found, f"{name}: no JSON lines"
    for record in found:
        assert set(CORE_KEYS) <= set(record), record
    return found


def test_each_component_writes_json_lines(stack, worker_factory):
    json_env = {"LOG_FORMAT": "json", "LOG_LEVEL": "INFO"}
    tag = unique("jsonlog").lower()
    worker = worker_factory(WorkerSpec(unique("jsonw"), f"os.linux,tag.{tag}", concurrency=1, env=json_env))
    port = pick_free_ports(1)[0]
    api_argv = stack.api_command()
    api_argv[api_argv.index("--bind") + 1] = f"127.0.0.1:{port}"
    stack.spawn("api-json", api_argv, env=json_env, port=port)
    stack.spawn("controller-json", stack.controller_command(), env=json_env)
    try:
        wait_until(
            lambda: stack._http_status(f"http://127.0.0.1:{port}/health") == 200,
            60,
            message="the JSON-logging API answers",
        )
        created = requests.post(
            f"http://127.0.0.1:{port}/jobs/",
            headers={"Authorization": f"Bearer {stack.admin_token}"},
            timeout=30,
            json=job_body("echo logged", affinity={"os": ["linux"], "tags": [tag]}),
        ).json()
        run_id, job_id = created["run_id"], created["job_id"]
        assert wait_run(run_id).worker_id == worker.node
        wait_until(
            lambda: "controller.started" in stack.log_path("controller-json").read_text(),
            30,
            message="the second controller started",
        )
    finally:
        stack.stop("api-json")
        stack.stop("controller-json")

    api = records(stack, "api-json", strict=True)
    assert {r["component"] for r in api} == {"api"}
    published = next(r for r in api if r["event"] == "run.published")
    assert (published["run_id"], published["job_id"], published["worker"]) == (run_id, job_id, worker.node)
    assert any(r["event"] == "http.request" and r["path"] == "/jobs/" and r["status"] == "201" for r in api)

    controller = records(stack, "controller-json", strict=True)
    assert {r["component"] for r in controller} == {"controller"}
    assert any(r["event"] == "controller.started" and r["worker"] for r in controller)

    lines = records(stack, worker.process_name, strict=False)
    assert {r["component"] for r in lines} == {"worker"}
    mine = [r for r in lines if r["run_id"] == run_id]
    events = {r["event"] for r in mine}
    assert {"run.started", "run.ended"} <= events, mine
    for record in mine:
        assert record["worker"] == worker.node
    for record in mine:
        if record["event"] in ("run.started", "run.ended"):
            assert record["job_id"] == job_id
    assert any("received" in r["message"] and r["logger"].startswith("celery") for r in mine)
    assert any(r["message"].endswith(" ready.") for r in lines)  # Celery's own lines are kept

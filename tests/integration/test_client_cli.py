"""hydra.client, the hydra CLI and the examples/ scripts against the API under gunicorn."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from datetime import datetime

import pytest
from click.testing import CliRunner

from hydra import errors
from hydra.cli import main
from hydra.client import (
    Client,
    ClientError,
    Conflict,
    InvalidRequest,
    NotFound,
    Run,
    Submitted,
    Unavailable,
    WaitTimeout,
)
from hydra.errors import HydraError
from hydra.store.runs import RunStore
from hydrastack import REPO, venv_bin
from tests.conftest import CPU, GPU
from tests.helpers import unique, wait_run


@pytest.fixture(scope="module")
def client(stack):
    stack.start_api()
    with Client(stack.api_url) as hydra:
        yield hydra


def test_client_submits_follows_waits_and_reads_back(client):
    name = unique("client")
    submitted = client.submit("echo out; echo err >&2; exit 3", name=name, user="tester", os="linux", timeout=30)
    assert isinstance(submitted, Submitted) and submitted.status in ("queued", "pending")
    chunks = list(client.follow(submitted.run_id, timeout=60))
    assert "".join(c.text for c in chunks if c.stream == "stdout") == "out\n"
    assert "".join(c.text for c in chunks if c.stream == "stderr") == "err\n"
    run = client.wait(submitted.run_id, timeout=30)
    assert isinstance(run, Run) and run.ended
    assert (run.status, run.returncode, run.exit_code, run.stdout) == ("failed", 3, 3, "out\n")
    assert isinstance(run.finished_at, datetime) and run.worker_id in (GPU.node, CPU.node)
    job = client.job(submitted.job_id)
    assert (job.name, job.status, job.last_run_id, job.source) == (name, "failed", submitted.run_id, "api")
    assert [r.id for r in client.runs(submitted.job_id)] == [submitted.run_id]
    assert [j.id for j in client.jobs(user="tester", status="failed", limit=1000)].count(job.id) == 1
    online = {w.id for w in client.workers() if w.status == "online"}
    assert {GPU.node, CPU.node} <= online


def test_client_errors_are_one_family(client, stack):
    with pytest.raises(NotFound) as missing:
        client.run("no-such-run")
    assert missing.value.status_code == 404 and "no-such-run" in missing.value.message
    with pytest.raises(InvalidRequest) as invalid:
        client.submit("echo x", user="bad user")
    assert "user" in invalid.value.errors["json"]
    with pytest.raises(Unavailable):
        Client("http://127.0.0.1:9", timeout=2).workers()
    slow = client.submit("sleep 4", timeout=30)
    with pytest.raises(WaitTimeout):
        client.wait(slow.run_id, timeout=0.5)
    with pytest.raises(WaitTimeout):
        list(client.follow(slow.run_id, timeout=0.5))
    for cls in (NotFound, InvalidRequest, Unavailable, WaitTimeout):
        assert issubclass(cls, ClientError) and issubclass(cls, HydraError)


def test_the_client_raises_the_servers_own_error_classes(client, stack):
    """``except hydra.errors.X`` catches the client's answer as it catches the server's error."""
    with pytest.raises(errors.NotFound) as missing:
        client.run("no-such-run")
    assert missing.value.status_code == errors.NotFound.http_status
    ended = client.submit("true", user="tester", timeout=30)
    client.wait(ended.run_id, timeout=60)
    with pytest.raises(errors.Conflict) as conflict:
        client.cancel(ended.run_id)
    assert conflict.value.status_code == errors.Conflict.http_status
    with pytest.raises(errors.NotAuthenticated) as anonymous:
        Client(stack.api_url, token="hydra_nobody_nothing").workers()
    assert anonymous.value.status_code == errors.NotAuthenticated.http_status
    viewer = client.create_token(unique("viewer"), roles={"default": "viewer"}, user="vera")
    with Client(stack.api_url, token=viewer.token) as as_viewer, pytest.raises(errors.Forbidden) as forbidden:
        as_viewer.submit("true", user="vera")
    assert forbidden.value.status_code == errors.Forbidden.http_status
    with pytest.raises(errors.Unavailable):  # no answer at all: as a 503 (tests/unit/test_errors.py)
        Client("http://127.0.0.1:9", timeout=2).workers()


def test_a_run_published_with_apply_async_is_visible_through_the_client(client):
    from hydra import run_command

    result = run_command.apply_async(
        kwargs={"command": "echo via-celery", "user": "pyuser", "affinity": {"os": ["linux"]}}
    )
    run = client.wait(result.id, timeout=60)
    assert (run.id, run.status, run.stdout) == (result.id, "succeeded", "via-celery\n")
    assert client.job(run.job_id).source == "python"
    assert "".join(chunk.text for chunk in client.follow(result.id)) == "via-celery\n"


# --- the CLI, in process -------------------------------------------------------------------------


def hydra_cli(stack, *args: str):
    result = CliRunner().invoke(main, [args[0], "--api-url", stack.api_url, *args[1:]])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def test_cli_submit_wait_streams_and_exits_with_the_commands_code(client, stack):
    result = hydra_cli(
        stack, "submit", "--os", "linux", "--timeout", "30", "--wait", "--", "echo hi; echo oops >&2; exit 7"
    )
    assert result.exit_code == 7, result.output
    assert result.stdout == "hi\n"
    assert "oops\n" in result.stderr and "failed (exit 7)" in result.stderr and "queued on" in result.stderr

    ok = hydra_cli(stack, "submit", "--wait", "--", "echo", "two words")
    assert ok.exit_code == 0 and ok.stdout == "two words\n"


def test_cli_follows_a_retried_run_to_its_last_attempt(client, stack):
    result = hydra_cli(stack, "submit", "--retries", "1", "--wait", "--json", "--", "echo try; exit 4")
    assert result.exit_code == 4, result.output
    final = json.loads(result.stdout)
    assert final["status"] == "dead_letter" and final["attempt"] == 2 and final["retry_of"]


def test_cli_tables_json_and_errors(client, stack):
    created = hydra_cli(
        stack,
        "submit",
        "--json",
        "--name",
        unique("cli"),
        "--user",
        "clier",
        "--env",
        "GREETING=hello",
        "--",
        "echo $GREETING",
    )
    assert created.exit_code == 0, created.output
    submitted = json.loads(created.stdout)
    run = wait_run(submitted["run_id"])
    assert run.stdout == "hello\n" and run.user == "clier"

    jobs = hydra_cli(stack, "jobs", "--user", "clier")
    assert jobs.exit_code == 0 and jobs.stdout.splitlines()[0].split() == [
        "JOB",
        "NAME",
        "NAMESPACE",
        "USER",
        "STATUS",
        "CREATED",
        "COMMAND",
    ]
    assert submitted["job_id"] in jobs.stdout and "echo $GREETING" in jobs.stdout
    assert [j["id"] for j in json.loads(hydra_cli(stack, "jobs", "--user", "clier", "--json").stdout)] == [
        submitted["job_id"]
    ]

    runs = hydra_cli(stack, "runs", submitted["job_id"])
    assert runs.exit_code == 0 and submitted["run_id"] in runs.stdout and "succeeded" in runs.stdout
    assert json.loads(hydra_cli(stack, "runs", submitted["job_id"], "--json").stdout)[0]["id"] == submitted["run_id"]

    logs = hydra_cli(stack, "logs", submitted["run_id"])
    assert logs.exit_code == 0 and logs.stdout == "hello\n"
    lines = [json.loads(line) for line in hydra_cli(stack, "logs", "--json", submitted["run_id"]).stdout.splitlines()]
    assert lines == [{"seq": 0, "stream": "stdout", "text": "hello\n", "cut": False}]

    workers = hydra_cli(stack, "workers")
    assert workers.stdout.splitlines()[0].split()[:3] == ["WORKER", "STATUS", "OS"]
    assert GPU.node in workers.stdout and "gpu" in workers.stdout
    assert {GPU.node, CPU.node} <= {w["id"] for w in json.loads(hydra_cli(stack, "workers", "--json").stdout)}

    unknown = hydra_cli(stack, "logs", "nope")
    assert unknown.exit_code == 3 and "run 'nope' not found" in unknown.stderr
    invalid = hydra_cli(stack, "submit", "--user", "bad user", "--", "true")
    assert invalid.exit_code == 3 and "user:" in invalid.stderr


# --- the CLI as a real process ----------------------------------------------------------------------


def _lines(pipe) -> queue.Queue:
    lines: queue.Queue = queue.Queue()

    def pump():
        for line in iter(pipe.readline, ""):
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def test_cli_process_streams_output_while_the_command_runs(client, stack):
    env = {**os.environ, "HYDRA_API_URL": stack.api_url}
    hydra = str(venv_bin() / "hydra")
    submit = subprocess.Popen(
        [hydra, "submit", "--timeout", "60", "--wait", "--", "echo one; sleep 3; echo two; exit 5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    try:
        out, err = _lines(submit.stdout), _lines(submit.stderr)
        progress = err.get(timeout=30)
        run_id = progress.split("run ")[1].split(":")[0]
        follower = subprocess.Popen(
            [hydra, "logs", "-f", run_id], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO
        )
        followed = _lines(follower.stdout)
        for stream in (out, followed):
            assert stream.get(timeout=30) == "one\n"
        assert RunStore().get(run_id).status == "running"  # seen while the command runs
        assert submit.wait(timeout=60) == 5
        assert follower.wait(timeout=60) == 0
        assert out.get(timeout=5) == "two\n" and followed.get(timeout=5) == "two\n"
    finally:
        for proc in (submit, locals().get("follower")):
            if proc is not None and proc.poll() is None:
                proc.kill()


# --- the examples/ scripts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv", [[sys.executable, "examples/submit_job.py"], ["bash", "examples/submit_job.sh"]], ids=["python", "curl"]
)
def test_the_examples_work_as_written(client, stack, argv):
    env = {**os.environ, "HYDRA_API_URL": stack.api_url}
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "hello world" in done.stdout and "succeeded" in done.stdout


def test_client_and_cli_cancel_running_and_queued_runs(client, stack):
    """A running run's tree is killed within 2 s; a pending one ends at once; an ended one is a Conflict."""
    running = client.submit("sleep 60", user="canceller", os="linux", timeout=120)
    wait_run(running.run_id, statuses=["running"])
    asked = time.monotonic()
    answer = client.cancel(running.run_id)
    assert answer.id == running.run_id and answer.status in ("running", "cancelled")
    ended = client.wait(running.run_id, timeout=10)
    assert ended.status == "cancelled" and time.monotonic() - asked < 2.5

    waiting = client.submit("echo never", user="canceller", tags=["no-such-tag"])
    result = hydra_cli(stack, "cancel", waiting.run_id)
    assert result.exit_code == 0 and f"run {waiting.run_id} cancelled" in result.output
    assert client.run(waiting.run_id).status == "cancelled"

    again = hydra_cli(stack, "cancel", waiting.run_id, "--json")
    assert again.exit_code == 3 and "already ended" in again.output
    with pytest.raises(Conflict):
        client.cancel(running.run_id)

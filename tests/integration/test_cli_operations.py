"""The CLI and the client over the whole API, against gunicorn on the real stack: job
show/update/delete/pause/resume/trigger, run show/retry/cancel, dead letters, submit's
schedule (--at, --cron/--tz), argument-list and http forms, /schedule, health, metrics;
Ctrl-C during --wait, with and without --cancel-on-interrupt."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from hydra.cli import main
from hydra.client import Client, Conflict, NotFound
from hydra.store.runs import RunStore
from hydrastack import REPO, venv_bin
from tests.helpers import unique, wait_run, wait_until
from tests.integration.test_client_cli import _lines
from tests.integration.test_execution import hook_server  # noqa: F401 - the fixture


@pytest.fixture(scope="module")
def client(stack):
    stack.start_api()
    with Client(stack.api_url) as hydra:
        yield hydra


def hydra(stack, *words: str, json_out: bool = True):
    """``hydra <words>`` in process, with --api-url after the (sub)command and --json."""
    depth = 2 if words[0] in ("job", "run", "schedule", "token", "namespace") else 1
    argv = [*words[:depth], "--api-url", stack.api_url, *(["--json"] if json_out else []), *words[depth:]]
    result = CliRunner().invoke(main, argv)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def answer(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_a_cron_job_is_shown_updated_paused_resumed_triggered_and_deleted(client, stack):
    name = unique("cron")
    made = answer(hydra(stack, "submit", "--name", name, "--cron", "0 3 * * *", "--tz", "Europe/Paris", "--", "echo c"))
    job_id = made["job_id"]
    assert made["status"] == "scheduled" and made["run_id"] is None
    shown = answer(hydra(stack, "job", "show", job_id))
    assert (shown["schedule"], shown["timezone"], shown["name"]) == ("0 3 * * *", "Europe/Paris", name)

    changed = answer(hydra(stack, "job", "update", job_id, "--priority", "80", "--set", "retries=2"))
    assert (changed["priority"], changed["retries"]) == (80, 2)
    shown_text = hydra(stack, "job", "show", job_id, json_out=False).stdout  # its settings in words
    said = dict(line.split("  ", 1) for line in shown_text.splitlines())
    said = {key.strip(): value.strip() for key, value in said.items()}
    assert said["schedule"] == "every day at 03:00 Europe/Paris (cron 0 3 * * *)"
    assert said["runs on"] == "any worker"
    assert said["retries"] == "2 retries, exponential backoff from 5 s, at most 5 min"
    assert client.update_job(job_id, timeout=9).timeout == 9
    assert answer(hydra(stack, "job", "pause", job_id))["paused"] is True
    assert answer(hydra(stack, "job", "resume", job_id))["paused"] is False
    triggered = answer(hydra(stack, "job", "trigger", job_id))
    assert triggered["job_id"] == job_id and wait_run(triggered["run_id"]).stdout == "c\n"

    body = {**{k: shown[k] for k in ("name", "command", "schedule", "timezone")}, "priority": 5}
    path = REPO / ".hydra-test-body.json"
    path.write_text(json.dumps(body))
    try:
        replaced = answer(hydra(stack, "job", "update", job_id, "--replace", str(path)))
    finally:
        path.unlink()
    assert (replaced["priority"], replaced["retries"]) == (5, 0)  # the whole body was replaced

    deleted = hydra(stack, "job", "delete", job_id, json_out=False)
    assert deleted.exit_code == 0 and f"job {job_id} deleted" in deleted.output
    assert client.job(job_id).raw["deleted_at"]
    refused = hydra(stack, "job", "pause", job_id)
    assert refused.exit_code == 3 and "deleted" in refused.output


def test_runs_are_shown_retried_cancelled_and_dead_letters_listed(client, stack):
    made = client.submit("exit 3", retries=1, backoff={"base": 0.2, "factor": 1, "cap": 0.2, "jitter": 0})
    letter = wait_until(
        lambda: next((r for r in client.runs(made.job_id) if r.status == "dead_letter"), None),
        30,
        message="the second attempt dead-lettered",
    )
    shown = answer(hydra(stack, "run", "show", letter.id))
    assert (shown["id"], shown["returncode"], shown["attempt"]) == (letter.id, 3, 2)
    listed = answer(hydra(stack, "dead-letters", "--job", made.job_id))
    assert [r["id"] for r in listed] == [letter.id]
    assert [r.id for r in client.dead_letters(job_id=made.job_id)] == [letter.id]

    retried = answer(hydra(stack, "run", "retry", letter.id))
    assert retried["job_id"] == made.job_id and retried["run_id"] != letter.id
    wait_run(retried["run_id"])
    assert letter.id not in {r.id for r in client.dead_letters(job_id=made.job_id)}  # retried: no longer listed
    assert letter.id in {r.id for r in client.dead_letters(job_id=made.job_id, include_retried=True)}
    with pytest.raises(Conflict):
        client.retry(letter.id)  # retried already

    pending = client.submit("echo never", tags=["no-such-tag"])
    cancelled = answer(hydra(stack, "run", "cancel", pending.run_id))
    assert cancelled["status"] == "cancelled"
    with pytest.raises(NotFound):
        client.run("no-such-run")


def test_submit_at_a_time_as_an_argument_list(client, stack):
    at = (datetime.now(UTC) + timedelta(seconds=3)).isoformat()
    made = answer(hydra(stack, "submit", "--at", at, "--args", "--", "printf", "%s|", "a b", "$HOME"))
    assert made["status"] == "scheduled" and made["scheduled_at"]
    run = wait_run(made["run_id"], timeout=40)
    assert run.stdout == "a b|$HOME|"  # no shell: each word is one argument, nothing expanded
    started = run.started_at if run.started_at.tzinfo else run.started_at.replace(tzinfo=UTC)
    assert started >= datetime.fromisoformat(at) - timedelta(seconds=1)  # not before its time
    relative = answer(hydra(stack, "submit", "--at", "+1h", "--", "true"))
    assert relative["status"] == "scheduled"
    client.cancel(relative["run_id"])


def test_submit_http_calls_the_webhook(client, stack, hook_server):  # noqa: F811
    base, seen = hook_server
    made = answer(
        hydra(stack, "submit", "--http", f"{base}/hook", "--header", "X-Key: k1", "--body", "hello", "--timeout", "5")
    )
    run = wait_run(made["run_id"])
    assert (run.status, run.executor, run.returncode) == ("succeeded", "http", 200)
    assert seen[0]["method"] == "POST" and seen[0]["path"] == "/hook" and seen[0]["body"] == "hello"


def test_submit_with_an_idempotency_key_twice_makes_one_job(client, stack):
    key = unique("key")
    first = answer(hydra(stack, "submit", "--idempotency-key", key, "--", "echo idem"))
    again = client.submit("echo idem", idempotency_key=key)  # the same body: the name is made the same way
    assert (again.job_id, again.run_id, again.replayed) == (first["job_id"], first["run_id"], True)
    repeat = hydra(stack, "submit", "--idempotency-key", key, "--", "echo idem", json_out=False)
    assert repeat.exit_code == 0 and first["job_id"] in repeat.output and "replayed" in repeat.output


def test_schedule_health_and_metrics(client, stack):
    task = answer(hydra(stack, "schedule", "add", "--", "echo task"))
    wait_run(client.task(task["id"]).run_id or wait_until(lambda: client.task(task["id"]).run_id, 10))
    shown = answer(hydra(stack, "schedule", "show", task["id"]))
    assert (shown["status"], shown["stdout"]) == ("succeeded", "task\n")
    assert answer(hydra(stack, "health"))["status"] == "ok"
    metrics = hydra(stack, "metrics", json_out=False)
    assert metrics.exit_code == 0 and "hydra_" in metrics.output


def _wait_then_interrupt(stack, *flags: str):
    env = {**os.environ, "HYDRA_API_URL": stack.api_url}
    proc = subprocess.Popen(
        [str(venv_bin() / "hydra"), "submit", "--wait", *flags, "--", "echo started; sleep 30"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
        # As from a terminal: a suite started in the background by a shell without job
        # control inherits SIGINT ignored, and so would the CLI (it then never sees Ctrl-C).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        out, err = _lines(proc.stdout), _lines(proc.stderr)
        run_id = err.get(timeout=30).split("run ")[1].split(":")[0]
        assert out.get(timeout=30) == "started\n"  # the command runs
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
        said = []
        while (line := err.get(timeout=5)) is not None:
            said.append(line)
        return run_id, code, "".join(said)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_ctrl_c_during_wait_says_the_run_goes_on_and_how_to_cancel_it(client, stack):
    run_id, code, said = _wait_then_interrupt(stack)
    assert code == 130 and "Aborted!" not in said
    assert f"run {run_id} goes on" in said and f"hydra run cancel {run_id}" in said
    assert RunStore().get(run_id).status == "running"
    client.cancel(run_id)
    wait_run(run_id)


def test_cancel_on_interrupt_cancels_the_run(client, stack):
    run_id, code, said = _wait_then_interrupt(stack, "--cancel-on-interrupt")
    assert code == 130 and f"run {run_id}" in said and "cancel" in said
    assert wait_run(run_id, timeout=10).status == "cancelled"

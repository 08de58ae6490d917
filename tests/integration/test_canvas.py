"""Celery's canvas through Hydra on the real stack: ``link``, ``link_error``, ``chain``,
``group`` and ``chord`` of ``hydra.run_command`` signatures sent with Celery's own API.

Every step is pre-signed when it is published; what follows a run is kept with its record and
started, as signed, by whoever records the run's final end - a worker holding no private key,
or the controller - after retries and failovers; what a failure leaves not run is recorded
``cancelled`` with the reason; ``AsyncResult.get()`` reads the last step's outcome.
"""

from __future__ import annotations

import os
import signal

import pytest
from celery import chain, chord, group

from hydra.errors import CommandCancelled, CommandFailed, InvalidJob
from hydra.store.flows import FlowStore
from hydra.store.runs import RunStore
from tests.helpers import submit, unique, wait_run, wait_ticks, wait_until


def step(command: str, **body) -> dict:
    return {"command": command, "user": "tester", "name": unique("step"), **body}


def test_linked_steps_start_after_their_task_succeeded(api, stack, shared):
    from hydra import run_command

    ledger = shared / "ledger"
    after_id = "after-" + unique()
    after = run_command.si(**step(f"echo after $HYDRA_UPSTREAM_RUN_ID >> {ledger}")).set(task_id=after_id)
    result = run_command.apply_async(kwargs=step(f"echo first >> {ledger}"), link=after)
    assert wait_run(result.id).status == "succeeded"
    linked = wait_run(after_id, timeout=30)
    assert linked.status == "succeeded" and ledger.read_text() == f"first\nafter {result.id}\n"
    assert api.get(f"/jobs/{linked.job_id}").json["source"] == "python"

    # two of them: each starts once
    both = shared / "both"
    ids = ["a-" + unique(), "b-" + unique()]
    links = [run_command.si(**step(f"echo {i} >> {both}")).set(task_id=i) for i in ids]
    run_command.apply_async(kwargs=step("true"), link=links)
    assert [wait_run(i, timeout=30).status for i in ids] == ["succeeded", "succeeded"]
    assert sorted(both.read_text().split()) == sorted(ids)


def test_a_chain_runs_in_order_and_its_result_is_its_last_steps(api, stack, shared):
    from hydra import run_command

    ledger = shared / "ledger"
    result = chain(
        run_command.si(**step(f"echo one >> {ledger}")),
        run_command.si(**step(f"echo two $HYDRA_UPSTREAM_STATUS >> {ledger}")),
        run_command.si(**step(f"echo three; echo three >> {ledger}")),
    ).apply_async()
    outcome = result.get(timeout=60)
    assert outcome["status"] == "succeeded" and outcome["stdout"] == "three\n"
    assert ledger.read_text() == "one\ntwo succeeded\nthree\n"
    second = RunStore().get(result.parent.id)
    assert FlowStore().get(second.id).started_by.runs == (result.parent.parent.id,)


def test_a_failed_step_ends_the_chain_and_each_step_not_run_is_recorded(api, stack, shared):
    from hydra import run_command

    stopped = shared / "stopped"
    broken = chain(
        run_command.si(**step(f"echo one >> {stopped}; exit 3")),
        run_command.si(**step(f"echo two >> {stopped}")),
        run_command.si(**step(f"echo three >> {stopped}")),
    ).apply_async()
    first, second = broken.parent.parent.id, broken.parent.id
    assert wait_run(first).status == "failed"
    for run_id in (second, broken.id):
        run = wait_run(run_id, timeout=20)
        assert run.status == "cancelled" and run.error == f"not started: run {first} before it ended failed"
        assert run.started_at is None and api.get(f"/jobs/{run.job_id}").json["status"] == "cancelled"
    with pytest.raises(CommandFailed):  # Celery's chain: the failing step's error
        broken.get(timeout=10)
    assert stopped.read_text() == "one\n"


def test_a_chain_goes_on_after_a_retried_step_succeeds(api, stack, shared):
    from hydra import run_command

    once, ledger = shared / "once", shared / "ledger"
    flaky = f"if [ -e {once} ]; then echo second >> {ledger}; else touch {once}; exit 1; fi"
    retried = step(flaky, retries=1, backoff={"base": 0.5, "jitter": 0})
    result = chain(run_command.si(**retried), run_command.si(**step(f"echo next >> {ledger}"))).apply_async()
    assert result.get(timeout=60)["status"] == "succeeded"
    assert ledger.read_text() == "second\nnext\n"
    first = RunStore().get(result.parent.id)
    assert first.status == "retrying"
    assert result.parent.get(timeout=10)["attempt"] == 2  # Celery's view of the step: its last attempt


def test_an_errback_starts_once_after_the_last_retry_failed(api, stack, shared):
    from hydra import run_command

    ledger = shared / "ledger"
    errback_id = "errback-" + unique()
    result = run_command.apply_async(
        kwargs=step(f"echo failing >> {ledger}; exit 2", retries=1, backoff={"base": 0.5, "jitter": 0}),
        link_error=run_command.si(**step(f"echo cleanup $HYDRA_UPSTREAM_STATUS >> {ledger}")).set(task_id=errback_id),
    )
    errback = wait_run(errback_id, timeout=60)
    assert errback.status == "succeeded"
    assert ledger.read_text() == "failing\nfailing\ncleanup dead_letter\n"
    with pytest.raises(CommandFailed):
        result.get(timeout=10)


def test_a_group_runs_its_members_and_gets_their_results(api, stack):
    from hydra import run_command

    result = group(run_command.si(**step(f"echo {n}")) for n in range(3)).apply_async()
    outcomes = result.get(timeout=60)
    assert [o["stdout"] for o in outcomes] == ["0\n", "1\n", "2\n"]


def test_a_chord_body_starts_once_its_header_succeeded_with_the_header_runs(api, stack, shared):
    from hydra import run_command

    header = [run_command.si(**step(f"echo {n} > {shared}/part{n}")) for n in range(2)]
    body = run_command.si(**step(f'cat {shared}/part*; echo "$HYDRA_UPSTREAM_RUN_ID $HYDRA_UPSTREAM_STATUS"'))
    result = chord(header, body).apply_async()
    outcome = result.get(timeout=60)
    parts = [r.id for r in result.parent.results]
    assert outcome["stdout"] == f"0\n1\n{','.join(parts)} succeeded,succeeded\n"


def test_a_chord_whose_header_failed_records_its_body_as_not_run(api, stack, shared):
    from hydra import run_command

    header = [run_command.si(**step("exit 4")), run_command.si(**step("true"))]
    result = chord(header, run_command.si(**step(f"touch {shared}/body"))).apply_async()
    # The body's own end (follow_parents=False): otherwise Celery's get() raises the header's
    # CommandFailed instead whenever the header has ended by the time get() looks at it.
    with pytest.raises(CommandCancelled, match="of chord"):
        result.get(timeout=60, follow_parents=False)
    assert not (shared / "body").exists()


@pytest.mark.parametrize(
    "option, make",
    [
        ("link", lambda rc: {"link": rc.app.signature("celery.accumulate", args=(1,))}),
        ("link_error", lambda rc: {"link_error": rc.app.signature("tasks.cleanup")}),
        ("link", lambda rc: {"link": rc.si(**step("echo late")).set(countdown=5)}),
        ("link", lambda rc: {"link": chord([chord([rc.si(**step("a"))], rc.si(**step("b")))], rc.si(**step("c")))}),
        ("chord", lambda rc: {"chord": rc.si(**step("echo body"))}),  # no chord published with it
    ],
)
def test_what_cannot_be_presigned_is_refused_before_anything_is_stored(api, stack, option, make):
    from hydra import run_command

    name = unique("refused")
    task_id = "refused-" + unique()
    with pytest.raises(InvalidJob) as info:
        run_command.apply_async(kwargs=step("echo never", name=name), task_id=task_id, **make(run_command))
    assert option in info.value.errors, info.value.errors
    assert RunStore().find(task_id) is None
    assert not [j for j in api.get("/jobs/", query_string={"limit": 200}).json if j["name"] == name]


class Died(BaseException):
    """The publishing process dying between recording a run and sending its message."""


def test_a_run_whose_publisher_died_mid_send_is_published_again_within_the_bound(api, stack, shared, monkeypatch):
    from hydra import run_command
    from hydra.celery.app import app

    def dies(*_args, **_kwargs):
        raise Died()

    monkeypatch.setattr(app, "publish", dies)
    task_id = "died-" + unique()
    with pytest.raises(Died):
        run_command.apply_async(kwargs=step(f"touch {shared}/ran"), task_id=task_id)
    monkeypatch.undo()
    assert RunStore().get(task_id).status == "queued"  # recorded, never sent
    run = wait_run(task_id, timeout=30)  # HYDRA_QUEUED_BOUND is 3 s here
    assert run.status == "succeeded" and run.revived == 1 and (shared / "ran").exists()


def test_a_send_that_fails_past_the_broker_ends_its_run_with_the_reason(api, stack, monkeypatch):
    from hydra import run_command
    from hydra.celery.app import app

    def broken(*_args, **_kwargs):
        raise TypeError("send() got multiple values for argument 'chain'")

    monkeypatch.setattr(app, "publish", broken)
    task_id = "broken-" + unique()
    with pytest.raises(TypeError):
        run_command.apply_async(kwargs=step("echo never"), task_id=task_id)
    run = RunStore().get(task_id)
    assert run.status == "failed" and "could not be published: TypeError" in run.error


def test_apply_async_submissions_are_audited_with_the_signing_key(api, stack):
    from hydra import run_command
    from hydra.dispatch import signing

    linked = "audited-link-" + unique()
    result = run_command.apply_async(kwargs=step("true"), link=run_command.si(**step("true")).set(task_id=linked))
    events = api.get("/audit/", query_string={"limit": 50}).json
    mine = {e["details"].get("run"): e for e in events if e["details"].get("run") in (result.id, linked)}
    assert set(mine) == {result.id, linked}
    assert {e["actor"] for e in mine.values()} == {f"signing-key:{signing.keyring_id()}"}
    assert mine[linked]["details"]["step_of"] == result.id and mine[result.id]["action"] == "job.submit"


def test_a_failover_a_worker_decides_is_published_by_the_controller(api, stack, worker_factory, shared):
    """The worker's main process ends an attempt whose pool process died (lost); it holds no
    private key, so the next attempt is recorded as a delayed run due now, which the leading
    controller signs and publishes."""
    from hydrastack import WorkerSpec

    tag = unique("lost").lower()
    worker = worker_factory(WorkerSpec(unique("lost"), f"os.linux,tag.{tag}", concurrency=1))
    once = shared / "once"
    command = f"if [ -e {once} ]; then echo second; else touch {once}; sleep 30; fi"
    created = submit(api, command, affinity={"os": ["linux"], "tags": [tag]}, max_lost=2)
    wait_until(once.exists, 30, message="attempt 1 running its command")
    os.kill(RunStore().start_of(created["run_id"]).pid, signal.SIGKILL)
    first = wait_run(created["run_id"], timeout=30)
    assert first.status == "lost" and first.ended_by == worker.node
    second = wait_until(
        lambda: next((r for r in RunStore().for_job(created["job_id"]) if r.attempt == 2), None),
        20,
        message="the failover attempt recorded",
    )
    assert second.retry_of == first.id and second.not_before is not None  # recorded for the controller
    second = wait_run(second.id, timeout=40)
    assert second.status == "succeeded" and second.stdout == "second\n"
    wait_ticks(1)


REMOTE_PROGRAM = """
import json, sys
from celery import chain
from hydra import run_command
from hydra.errors import Forbidden, InvalidJob

out = {}
result = chain(run_command.si(command="echo one", name="remote-1"), run_command.si(command="echo two")).apply_async()
out["outcome"] = result.get(timeout=60)
out["ids"] = [result.parent.id, result.id]
try:
    run_command.apply_async(kwargs={"command": "id", "namespace": "default"})
except Forbidden as exc:
    out["forbidden"] = str(exc)
try:
    run_command.apply_async(kwargs={"command": "x"}, link=run_command.app.signature("celery.accumulate", args=(1,)))
except InvalidJob as exc:
    out["invalid"] = exc.errors
print(json.dumps(out))
"""


def test_a_process_with_an_api_token_only_submits_its_canvas_through_the_api(api, stack):
    """No signing key, no broker or store credentials: apply_async and AsyncResult.get() go
    through the API, as the token's principal - its namespaces and roles - and are audited so."""
    import json
    import subprocess

    stack.start_api()
    user, namespace = unique("remy"), unique("remote").lower()
    token = api.post("/tokens/", json={"name": unique("r"), "user": user, "roles": {namespace: "operator"}}).json
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/root"),
        "HYDRA_API_URL": stack.api_url,
        "HYDRA_TOKEN": token["token"],
        "HYDRA_BROKER_URL": "redis://127.0.0.1:1/0",  # nothing there: the program never needs the broker
        "HYDRA_MONGO_URL": "mongodb://127.0.0.1:1/",  # nor the store
    }
    done = subprocess.run(
        [str(stack.bin / "python"), "-c", REMOTE_PROGRAM],
        env=env,
        cwd=stack.repo,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["outcome"]["status"] == "succeeded" and out["outcome"]["stdout"] == "two\n"
    assert "may not submit in namespace 'default'" in out["forbidden"]
    assert "link" in out["invalid"]
    first = RunStore().get(out["ids"][0])
    assert (first.user, first.namespace) == (user, namespace)  # the token's user and only namespace
    events = api.get("/audit/", query_string={"actor": user, "limit": 50}).json
    audited = {e["details"]["run"]: e for e in events if e["action"] == "job.submit"}
    assert set(out["ids"]) <= set(audited) and audited[out["ids"][0]]["via"].endswith("apply_async")

"""Workers run only what Hydra's publish path produced, and say so when they refuse.

On the real stack (Redis, FerretDB, the controller, real worker processes): messages sent
with plain Celery, tampered with in Redis, replayed, injected through ``apply_async``,
signed but disagreeing with their run record, pickled into a worker queue or into
``hydra.pending``, and a run whose message vanished. Each refusal is asserted together with
its record (``GET /runs/<id>``) and with the proof that nothing ran: commands write markers
into a directory the jobs' OS user can write (``shared``), and a control job shows the
marker would appear if the command ran.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from pathlib import Path

import pytest
from celery import Celery

from hydra import names
from hydra.broker.redis import get_redis
from hydra.dispatch import signing
from hydra.dispatch.envelope import seal
from hydra.errors import InvalidJob
from hydra.model.priority import level_keys
from hydra.model.records import Chain
from hydra.store.runs import RunStore
from tests.conftest import CPU
from tests.helpers import submit, unique, wait_run, wait_ticks, wait_until


@pytest.fixture(scope="module")
def outsider(stack):
    """A plain Celery app on the same broker: no Hydra code, JSON by default."""
    app = Celery("outsider", broker=stack.broker_url)
    app.conf.update(task_serializer="json", accept_content=["json", "pickle"], broker_connection_retry=False)
    yield app
    app.close()


def _run_via_api(api, run_id: str) -> dict:
    def recorded():
        response = api.get(f"/runs/{run_id}")
        return response.json if response.status_code == 200 and response.json["status"] not in ("queued",) else None

    return wait_until(recorded, 30, message=f"run {run_id} recorded")


def _raw_message(queue: str, run_id: str) -> tuple[str, str]:
    """(Redis list, raw kombu message) of ``run_id``'s message waiting in ``queue``."""
    redis = get_redis()

    def find():
        for key in level_keys(queue):
            for raw in redis.lrange(key, 0, -1):
                if json.loads(raw)["headers"].get("id") == run_id:
                    return key, raw
        return None

    return wait_until(find, 20, interval=0.05, message=f"the message of {run_id} in {queue}")


def _rewrite(raw: str, *, run_id: str | None = None, **kwargs_changes) -> str:
    """A kombu message with its task id and kwargs changed (what someone with broker access can do)."""
    message = json.loads(raw)
    args, kwargs, embed = json.loads(base64.b64decode(message["body"]))
    kwargs.update(kwargs_changes)
    message["body"] = base64.b64encode(json.dumps([args, kwargs, embed]).encode()).decode()
    if run_id:
        message["headers"]["id"] = message["properties"]["correlation_id"] = run_id
    return json.dumps(message)


def test_a_control_job_writes_its_marker(api, stack, shared):
    """The proof the markers below would exist had the refused commands run."""
    marker = shared / "ran"
    run = wait_run(submit(api, f"touch {marker}")["run_id"])
    assert run.status == "succeeded" and marker.exists()


def test_a_message_sent_with_plain_celery_is_refused_and_recorded(api, stack, shared, outsider):
    marker = shared / "ran"
    run_id = str(uuid.uuid4())
    outsider.send_task(
        names.TASK_RUN_COMMAND,
        kwargs={
            "name": "forged",
            "user": "evil user!",
            "command": f"touch {marker}",
            "timeout": -5,
            "priority": 999,
            "attempt": 0,
            "surprise": True,
        },
        queue=names.worker_queue(CPU.node),
        task_id=run_id,
    )
    run = _run_via_api(api, run_id)
    assert run["status"] == "failed" and run["decision"] == "refused"
    assert f"refused by {CPU.node}" in run["error"] and "not signed" in run["error"]
    assert run["started_at"] is None and run["ended_by"] == CPU.node
    assert RunStore().start_of(run_id).worker_id is None  # held by the refusal: never claimed, never executed
    wait_ticks(2)
    assert not marker.exists()


def test_a_tampered_message_is_refused_and_a_replayed_one_runs_nothing(api, stack, shared, worker_factory):
    from hydrastack import WorkerSpec

    tag = unique("auth").lower()
    ledger = shared / "ledger"
    created = submit(api, f"echo ran >> {ledger}", affinity={"os": ["linux"], "tags": [tag]})
    assert created["status"] == "pending"  # no worker has the tag: its message waits in hydra.pending
    _key, original = _raw_message(names.PENDING_QUEUE, created["run_id"])

    # Tampered: someone with broker access changes the command (and the id) and pushes it to a worker.
    forged_id = str(uuid.uuid4())
    evil = _rewrite(original, run_id=forged_id, command=f"echo evil >> {ledger}", affinity={"os": [], "tags": []})
    get_redis().lpush(names.worker_queue(CPU.node), evil)
    forged = _run_via_api(api, forged_id)
    assert forged["status"] == "failed" and "tampered" in forged["error"] and forged["started_at"] is None
    assert forged["job_id"] == "" and created["job_id"] in forged["refusals"][0]["reason"]  # named, not attached
    job = api.get(f"/jobs/{created['job_id']}").json
    assert job["last_run_id"] == created["run_id"] and job["status"] == "pending"  # the job is untouched

    # Tampered in place: same id, other command -> refused, and the real run is not ended by it.
    get_redis().lpush(names.worker_queue(CPU.node), _rewrite(original, command=f"echo evil >> {ledger}"))
    noted = wait_until(
        lambda: (r := RunStore().get(created["run_id"])).refusals and r, 20, message="the refusal noted on the run"
    )
    assert noted.status == "pending" and "tampered" in noted.refusals[0]["reason"]

    # The real message runs once a worker can take it ...
    worker = worker_factory(WorkerSpec(unique("auth"), f"os.linux,tag.{tag}", concurrency=1))
    run = wait_run(created["run_id"], timeout=40)
    assert run.status == "succeeded" and run.worker_id == worker.node
    # ... and its replay (the very bytes, pushed again) runs nothing; the refusal is noted on the run.
    get_redis().lpush(names.worker_queue(worker.node), original)
    replayed = wait_until(
        lambda: (r := RunStore().get(created["run_id"])) and len(r.refusals) >= 2 and r,
        20,
        message="the replay noted on the run",
    )
    assert "not run again" in replayed.refusals[-1]["reason"] and replayed.status == "succeeded"
    assert api.get(f"/runs/{created['run_id']}").json["refusals"][-1]["by"] == worker.node
    assert ledger.read_text() == "ran\n"  # once, and nothing evil


def test_apply_async_cannot_inject_a_command_into_a_stored_job(api, stack, shared):
    from hydra import run_command

    marker = shared / "injected"
    job = submit(api, "echo alice")
    wait_run(job["run_id"])
    with pytest.raises(InvalidJob) as info:
        run_command.apply_async(
            kwargs={"job_id": job["job_id"], "user": "tester", "command": f"touch {marker}"}, task_id="inj-" + unique()
        )
    assert "differs from stored job" in info.value.errors["command"][0]
    runs = api.get(f"/jobs/{job['job_id']}/runs").json
    assert [r["id"] for r in runs] == [job["run_id"]] and runs[0]["command"] == "echo alice"
    wait_ticks(2)
    assert not marker.exists()


def test_a_signed_message_that_disagrees_with_its_run_record_is_refused(api, stack, shared):
    from hydra.celery.app import app

    marker = shared / "ran"
    tag = unique("nobody").lower()
    created = submit(api, "echo recorded", affinity={"os": ["linux"], "tags": [tag]})
    run_id = created["run_id"]
    recorded = RunStore().get(run_id)
    assert recorded.spec_digest
    kwargs = {
        "name": recorded.job_name,
        "user": "tester",
        "command": f"touch {marker}",
        "job_id": created["job_id"],
        "attempt": 1,
    }
    # Signed with the real key: as a publisher with the key but a command of its own would.
    app.publish(
        names.TASK_RUN_COMMAND,
        kwargs,
        task_id=run_id,
        queue=names.worker_queue(CPU.node),
        headers={**Chain().headers(), signing.HEADER: seal(run_id, kwargs, Chain(), {}).signature},
    )
    run = wait_run(run_id, timeout=30)
    assert run.status == "failed" and "disagrees with its run record" in run.error and run.started_at is None
    wait_ticks(2)
    assert not marker.exists()


def test_apply_async_with_pickle_is_refused_up_front(api, stack):
    from hydra import run_command

    task_id = "pickle-" + unique()
    with pytest.raises(InvalidJob) as info:
        run_command.apply_async(kwargs={"command": "echo", "user": "tester"}, serializer="pickle", task_id=task_id)
    assert "serializer" in info.value.errors
    assert api.get(f"/runs/{task_id}").status_code == 404  # nothing accepted, so nothing left hanging


def test_a_pickle_in_a_worker_queue_is_dead_lettered_with_a_record(api, stack, shared, outsider):
    marker = shared / "ran"
    run_id = str(uuid.uuid4())
    outsider.send_task(
        names.TASK_RUN_COMMAND,
        kwargs={"name": "p", "user": "tester", "command": f"touch {marker}"},
        queue=names.worker_queue(CPU.node),
        task_id=run_id,
        serializer="pickle",
    )
    run = _run_via_api(api, run_id)
    assert run["status"] in ("dead_letter", "failed") and run["started_at"] is None
    assert "pickle" in run["error"] or "not signed" in run["error"], run["error"]
    assert not marker.exists()
    # the worker goes on
    assert wait_run(submit(api, "echo after")["run_id"]).status == "succeeded"


def test_a_pickle_in_pending_is_dead_lettered_and_placement_goes_on(api, stack, shared, outsider, worker_factory):
    from hydrastack import WorkerSpec

    run_id = str(uuid.uuid4())
    outsider.send_task(
        names.TASK_RUN_COMMAND,
        kwargs={"name": "p", "user": "tester", "command": "echo pickled"},
        queue=names.PENDING_QUEUE,
        task_id=run_id,
        serializer="pickle",
    )
    tag = unique("after").lower()
    waiting = submit(api, "echo placed", affinity={"os": ["linux"], "tags": [tag]})
    dead = _run_via_api(api, run_id)
    assert dead["status"] == "dead_letter" and "undecodable" in dead["error"] and dead["ended_by"] == "controller"
    worker = worker_factory(WorkerSpec(unique("after"), f"os.linux,tag.{tag}", concurrency=1))
    placed = wait_run(waiting["run_id"], timeout=40)
    assert placed.status == "succeeded" and placed.worker_id == worker.node


def test_a_run_whose_message_vanished_is_published_again(api, stack, worker_factory):
    from hydrastack import WorkerSpec

    tag = unique("gone").lower()
    affinity = {"os": ["linux"], "tags": [tag]}
    worker = worker_factory(WorkerSpec(unique("gone"), f"os.linux,tag.{tag}", concurrency=1))
    busy = submit(api, "sleep 6", affinity=affinity)
    wait_run(busy["run_id"], statuses=["running"], timeout=20)
    behind = submit(api, "echo revived", affinity=affinity)
    key, raw = _raw_message(names.worker_queue(worker.node), behind["run_id"])
    assert get_redis().lrem(key, 1, raw) == 1  # the message vanishes; the run stays recorded queued
    run = wait_run(behind["run_id"], timeout=60)
    assert run.status == "succeeded" and run.stdout == "revived\n" and run.revived == 1
    assert "vanished" in run.refusals[0]["reason"]


def _launder(marker, namespace: str) -> dict:
    """A hydra.run_command signature nobody signed: what a built-in task would apply."""
    return {
        "task": names.TASK_RUN_COMMAND,
        "args": [],
        "kwargs": {"name": "l", "command": f"touch {marker}", "user": "nobody-authorised", "namespace": namespace},
        "options": {},
        "subtask_type": None,
        "immutable": True,
    }


def test_celery_group_cannot_launder_a_command_through_a_worker(api, stack, shared, outsider):
    """An unsigned ``celery.group`` pushed to a worker's queue, carrying a hydra.run_command
    signature, must not make the worker publish (and sign) that command."""
    marker = shared / "laundered"
    namespace = unique("laundered").lower()
    group_id = str(uuid.uuid4())
    outsider.send_task(
        "celery.group",
        kwargs={
            "tasks": [_launder(marker, namespace)],
            "result": [[group_id, None], None],
            "group_id": group_id,
            "partial_args": [],
        },
        queue=names.worker_queue(CPU.node),
        task_id=group_id,
    )
    run = _run_via_api(api, group_id)
    assert run["status"] in ("dead_letter", "failed") and run["started_at"] is None
    assert "celery.group" in run["error"], run["error"]
    assert wait_run(submit(api, "echo after")["run_id"]).status == "succeeded"  # the worker goes on
    wait_ticks(2)
    assert not marker.exists()
    assert api.get("/jobs/", query_string={"namespace": namespace}).json == []


def test_every_celery_builtin_and_any_other_task_name_is_refused_and_recorded(api, stack, shared, outsider):
    marker = shared / "laundered"
    namespace = unique("laundered").lower()
    step = _launder(marker, namespace)
    messages = {
        "celery.chord": {"kwargs": {"header": [step], "body": step, "partial_args": []}},
        "celery.chord_unlock": {"kwargs": {"group_id": "g", "callback": step, "result": [["r", None]]}},
        "celery.map": {"kwargs": {"task": step, "it": [[]]}},
        "celery.starmap": {"kwargs": {"task": step, "it": [[]]}},
        "celery.chunks": {"kwargs": {"task": step, "it": [[]], "n": 1}},
        "celery.accumulate": {"args": [step]},
        "celery.chain": {"args": [step]},
        "celery.backend_cleanup": {},
        "hydra.other": {"kwargs": {"command": f"touch {marker}"}},
        "os.system": {"args": [f"touch {marker}"]},
    }
    sent = {}
    for name, body in messages.items():
        sent[name] = str(uuid.uuid4())
        outsider.send_task(name, queue=names.worker_queue(CPU.node), task_id=sent[name], **body)
    for name, run_id in sent.items():
        run = _run_via_api(api, run_id)
        assert run["status"] == "dead_letter" and run["started_at"] is None, (name, run)
        assert f"not {name!r}" in run["error"] and run["ended_by"] == CPU.node, (name, run["error"])
    assert wait_run(submit(api, "echo after")["run_id"]).status == "succeeded"  # the worker goes on
    wait_ticks(2)
    assert not marker.exists()
    assert api.get("/jobs/", query_string={"namespace": namespace}).json == []


def _with_embed(raw: str, **embed) -> str:
    """A kombu message with steps added to its embed (its signature left as it was)."""
    message = json.loads(raw)
    args, kwargs, old = json.loads(base64.b64decode(message["body"]))
    message["body"] = base64.b64encode(json.dumps([args, kwargs, {**old, **embed}]).encode()).decode()
    return json.dumps(message)


def test_steps_added_to_a_signed_message_are_refused_and_its_run_still_runs_once(api, stack, shared, worker_factory):
    """An unsigned callback, errback, chain entry or chord added to a genuine message that has
    not started: each copy is refused before anything runs, none ends the genuine run, and the
    genuine message still runs, once, and starts nothing of what was added."""
    from hydrastack import WorkerSpec

    marker = shared / "laundered"
    namespace = unique("laundered").lower()
    step = _launder(marker, namespace)
    tag = unique("embed").lower()
    ledger = shared / "ledger"
    created = submit(api, f"echo ran >> {ledger}", affinity={"os": ["linux"], "tags": [tag]})
    _key, original = _raw_message(names.PENDING_QUEUE, created["run_id"])
    forged = {
        "callbacks": {"callbacks": [step]},
        "errbacks": {"errbacks": [step]},
        "chain": {"chain": [step]},
        "chord": {"chord": {**step, "options": {"task_id": str(uuid.uuid4())}}},
    }
    for embed in forged.values():
        get_redis().lpush(names.worker_queue(CPU.node), _with_embed(original, **embed))
    noted = wait_until(
        lambda: (r := RunStore().get(created["run_id"])) and len(r.refusals) >= len(forged) and r,
        30,
        message="every forged copy refused",
    )
    assert noted.status == "pending" and all("tampered" in note["reason"] for note in noted.refusals)
    worker = worker_factory(WorkerSpec(unique("embed"), f"os.linux,tag.{tag}", concurrency=1))
    run = wait_run(created["run_id"], timeout=40)
    assert run.status == "succeeded" and run.worker_id == worker.node
    wait_ticks(2)
    assert ledger.read_text() == "ran\n" and not marker.exists()
    assert api.get("/jobs/", query_string={"namespace": namespace}).json == []


def test_a_worker_holds_no_private_key_and_cannot_publish(stack):
    """The worker's process environment has the public key only; Python run with exactly that
    environment cannot publish a hydra.run_command (nothing is recorded either)."""
    import subprocess

    pid = stack.pid(CPU.process_name)
    raw = Path(f"/proc/{pid}/environ").read_bytes().decode()
    environ = dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)
    assert "HYDRA_SIGNING_KEY_FILE" not in environ and "HYDRA_SIGNING_KEY" not in environ
    assert environ["HYDRA_VERIFY_KEYS"] == stack.verify_keys
    run_id = "from-a-worker-" + unique()
    script = (
        "from hydra import run_command\n"
        f"run_command.apply_async(kwargs={{'command': 'id', 'user': 'tester'}}, task_id={run_id!r})\n"
    )
    done = subprocess.run(
        [str(stack.bin / "python"), "-c", script],
        env=environ,
        cwd=stack.repo,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0 and "SigningKeyMissing: no signing key" in done.stderr, done.stderr[-2000:]
    assert RunStore().find(run_id) is None


def test_a_worker_without_a_verify_key_does_not_start(stack):
    import subprocess

    environ = {key: value for key, value in stack.process_env(publisher=False).items() if value is not None}
    environ.pop("HYDRA_VERIFY_KEYS")
    env = {key: value for key, value in os.environ.items() if not key.startswith("HYDRA_")}
    done = subprocess.run(
        [str(stack.bin / "celery"), "-A", "hydra", "worker", "-Q", "os.linux", "-n", f"{unique('nokey')}@%h"],
        env={**env, **environ},
        cwd=stack.repo,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "hydra: no key to verify task messages with: set HYDRA_VERIFY_KEYS" in done.stdout + done.stderr

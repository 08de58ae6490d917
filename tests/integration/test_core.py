"""The core path on the real stack: submit -> affinity-routed per-worker queue -> run -> record."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from datetime import timedelta

import psutil
import pytest

from hydra import names
from hydra.broker.registry import Registry
from hydra.celery.app import app as celery_app
from hydra.store.runs import RunStore
from hydrastack import WorkerSpec
from tests.conftest import CPU, GPU
from tests.helpers import job_body, submit, unique, wait_run, wait_ticks, wait_until

SEED_BODY = {
    "name": "test-echo",
    "user": "rich",
    "affinity": {"os": ["linux"], "tags": [], "allowed_users": ["rich"]},
    "command": "echo 'hello world'",
    "shell": "bash",
    "retries": 0,
    "timeout": 10,
}


def test_the_example_body_round_trip(api, stack):
    created = api.post("/jobs/", json=SEED_BODY)
    assert created.status_code == 201
    job_id = created.json["job_id"]
    assert created.json["id"] == job_id and created.json["status"] == "queued"
    run = wait_run(created.json["run_id"])
    assert run.status == "succeeded" and run.stdout == "hello world\n"

    # The job's own status follows the run's end (the pool writes the run's record, then the job's).
    job = wait_until(
        lambda: (j := api.get(f"/jobs/{job_id}").json)["status"] not in ("queued", "running") and j,
        10,
        message="job ended",
    )
    assert job["name"] == "test-echo" and job["user"] == "rich" and job["status"] == "succeeded"
    assert job["affinity"] == SEED_BODY["affinity"]

    runs = api.get(f"/jobs/{job_id}/runs").json
    assert len(runs) == 1
    (record,) = runs
    assert record["status"] == "succeeded" and record["returncode"] == 0
    assert record["stdout"] == "hello world\n" and record["stderr"] == ""
    assert record["worker_id"] in (GPU.node, CPU.node) and record["attempt"] == 1
    for stamp in ("queued_at", "started_at", "finished_at"):
        assert record[stamp]
    assert record["queued_at"] <= record["started_at"] <= record["finished_at"]


def test_trailing_slash_is_optional(api, stack):
    response = api.post("/jobs", json=dict(SEED_BODY, name=unique("noslash")))
    assert response.status_code == 201
    assert api.get("/workers").status_code == 200 and api.get("/health/").status_code == 200


def test_the_curl_example_verbatim(stack):
    """The documented curl lines against the API under gunicorn (the port is the test stack's),
    with nothing added but the Authorization header."""
    stack.start_api()
    body = json.dumps(SEED_BODY)
    auth = f"Authorization: Bearer {stack.admin_token}"
    refused = subprocess.run(
        [
            "curl",
            "-s",
            "-w",
            "\n%{http_code}",
            "-X",
            "POST",
            f"{stack.api_url}/jobs/",
            "-H",
            "Content-Type: application/json",
            "-d",
            body,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert refused.rsplit("\n", 1)[1] == "401"
    out = subprocess.run(
        [
            "curl",
            "-s",
            "-X",
            "POST",
            f"{stack.api_url}/jobs/",
            "-H",
            auth,
            "-H",
            "Content-Type: application/json",
            "-d",
            body,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    created = json.loads(out.stdout)
    assert created["job_id"]
    run = wait_run(created["run_id"])
    assert run.stdout == "hello world\n"
    for path in ("/health", "/workers/", f"/jobs/{created['job_id']}", f"/jobs/{created['job_id']}/runs"):
        answer = subprocess.run(
            ["curl", "-s", "-w", "\n%{http_code}", "-H", auth, f"{stack.api_url}{path}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
        assert answer.rsplit("\n", 1)[1] == "200", (path, answer)
    workers = json.loads(
        subprocess.run(
            ["curl", "-s", "-H", auth, f"{stack.api_url}/workers/"], capture_output=True, text=True, check=True
        ).stdout
    )
    assert {GPU.node, CPU.node} <= {w["id"] for w in workers}


def test_gpu_jobs_land_only_on_the_gpu_worker(api, stack):
    gpu_runs = [submit(api, "echo gpu", affinity={"os": ["linux"], "tags": ["gpu"]})["run_id"] for _ in range(6)]
    for run_id in gpu_runs:
        assert wait_run(run_id).worker_id == GPU.node


def test_twenty_gated_jobs_spread_over_two_equal_workers(api, stack, worker_factory, shared):
    """The least-loaded rule, checked without depending on how fast the machine is: two
    workers of their own (a tag and a namespace no other test uses, so nothing else lands on
    them), and commands that wait for a gate the test opens only after all 20 are placed. No
    run ends while the others are being placed, so each placement sees the loads the earlier
    ones left, and the rule (lowest load ratio, ties by fewer in flight, then id) can only
    give 10 and 10. Then the gate opens: all succeed, never more than 2 at once per worker."""
    tag, namespace = unique("spread").lower(), unique("spread").lower()
    specs = [
        worker_factory(
            WorkerSpec(unique(f"spread{i}"), f"os.linux,tag.{tag}", concurrency=2, env={"HYDRA_NAMESPACES": namespace})
        )
        for i in range(2)
    ]
    # The API's router reuses the roster it read for HYDRA_ROUTER_CACHE seconds: place nothing
    # until the one this process routes with has both workers (else the first runs see one).
    router = celery_app.pipeline.router
    wait_until(
        lambda: {s.node for s in specs} <= {w.id for w in router.registry.roster().workers},
        20,
        message="the router's roster to hold both workers",
    )
    gate = shared / "open"
    command = f"while [ ! -e {gate} ]; do sleep 0.05; done"
    affinity = {"os": ["linux"], "tags": [tag]}
    created = [submit(api, command, affinity=affinity, namespace=namespace, timeout=120) for _ in range(20)]
    assert {c["worker_id"] for c in created} == {s.node for s in specs}
    per_worker = {s.node: sum(c["worker_id"] == s.node for c in created) for s in specs}
    assert per_worker == {s.node: 10 for s in specs}

    gate.touch()
    runs = [wait_run(c["run_id"], timeout=90) for c in created]
    assert all(r.status == "succeeded" for r in runs), [(r.id, r.status, r.error) for r in runs]
    assert {r.worker_id for r in runs} == {s.node for s in specs}
    for spec in specs:
        worker_runs = [r for r in runs if r.worker_id == spec.node]
        # the most runs executing at any instant never exceeds max_concurrency (2)
        edges = sorted(
            [(r.started_at, 1) for r in worker_runs] + [(r.finished_at, -1) for r in worker_runs],
            key=lambda e: (e[0], e[1]),
        )
        running = peak = 0
        for _, delta in edges:
            running += delta
            peak = max(peak, running)
        assert peak <= 2, spec.node


def test_pending_job_is_placed_when_a_matching_worker_starts(api, stack, worker_factory):
    tag = unique("fresh").lower()
    created = submit(api, "echo placed", affinity={"os": ["linux"], "tags": [tag]})
    assert created["status"] == "pending"
    assert f"lacks tag {tag}" in created["pending_reason"]
    wait_ticks(4)
    assert RunStore().get(created["run_id"]).status == "pending"  # waits, is not dropped

    spec = worker_factory(WorkerSpec(unique("late"), f"os.linux,tag.{tag}", concurrency=1), online=False)
    run = wait_run(created["run_id"], timeout=40)
    assert run.status == "succeeded" and run.worker_id == spec.node and run.stdout == "placed\n"


def test_a_waiting_job_of_higher_priority_does_not_hide_the_ones_behind_it(api, stack, worker_factory):
    # kombu hands out the highest priority first: a message put back at once would come
    # straight back, again and again, and the placeable one behind it would never be seen.
    nobody = submit(api, "true", priority=100, affinity={"os": ["linux"], "tags": [unique("nobody").lower()]})
    tag = unique("behind").lower()
    behind = submit(api, "echo behind", priority=0, affinity={"os": ["linux"], "tags": [tag]})
    assert nobody["status"] == behind["status"] == "pending"

    worker_factory(WorkerSpec(unique("late"), f"os.linux,tag.{tag}", concurrency=1), online=False)
    assert wait_run(behind["run_id"], timeout=40).status == "succeeded"
    assert RunStore().get(nobody["run_id"]).status == "pending"


def test_a_disallowed_users_job_never_runs(api, stack, worker_factory, shared):
    tag = unique("private").lower()
    worker = worker_factory(
        WorkerSpec(unique("priv"), f"os.linux,tag.{tag}", concurrency=1, extra_args=["--allowed-users", "alice"])
    )
    marker = shared / "ran"
    affinity = {"os": ["linux"], "tags": [tag]}

    allowed = submit(api, "echo ok", user="alice", affinity=affinity)
    assert wait_run(allowed["run_id"]).worker_id == worker.node

    denied = submit(api, f"touch {marker}", user="mallory", affinity=affinity)
    assert denied["status"] == "pending" and "does not accept user 'mallory'" in denied["pending_reason"]

    # Published straight to the worker's queue, bypassing the router: refused on the worker.
    from hydra import run_command

    direct = run_command.apply_async(
        kwargs={"command": f"touch {marker}", "user": "mallory", "affinity": affinity},
        queue=names.worker_queue(worker.node),
    )
    run = wait_run(direct.id)
    assert run.status == "failed" and "does not accept user 'mallory'" in run.error
    wait_ticks(4)
    assert not marker.exists()
    assert RunStore().get(denied["run_id"]).status == "pending"


def _marked(marker: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if marker in " ".join(proc.info["cmdline"] or []):
            found.append(proc)
    return found


def test_timeout_kills_the_whole_process_tree(api, stack):
    marker = f"{os.getpid() % 1000}.{int(time.time()) % 100000}"
    command = f"sleep 3{marker} & (setsid sleep 3{marker} &) ; bash -c 'sleep 3{marker}' & sleep 3{marker}"
    created = submit(api, command, timeout=1)
    run = wait_run(created["run_id"], timeout=30)
    assert run.status == "timed_out" and "timed out after 1s" in run.error
    assert run.finished_at - run.started_at < timedelta(seconds=10)
    wait_until(lambda: not _marked(f"sleep 3{marker}"), 5, message="no survivor of the timed-out job")


def test_output_is_capped_and_the_cut_is_marked(api, stack):
    created = submit(api, "head -c 1048576 /dev/zero | tr '\\0' 'x'; echo done >&2")
    run = wait_run(created["run_id"])
    assert run.status == "succeeded"
    assert run.stdout_truncated is True and run.stdout_bytes == 1048576
    assert len(run.stdout) < 256 * 1024 + 200
    assert "bytes omitted" in run.stdout
    assert run.stderr == "done\n" and run.stderr_truncated is False


def test_failures_record_exit_code_and_stderr(api, stack):
    run = wait_run(submit(api, "echo bad >&2; exit 7")["run_id"])
    assert (run.status, run.returncode, run.stderr) == ("failed", 7, "bad\n")
    missing = wait_run(submit(api, "/no/such/program", args=["--flag"], shell=None)["run_id"])
    assert missing.status == "failed" and "/no/such/program" in missing.error


def test_apply_async_is_routed_and_recorded_like_rest(api, stack):
    from hydra import run_command

    result = run_command.apply_async(
        kwargs={"command": "echo from-python", "user": "pyuser", "affinity": {"os": ["linux"], "tags": ["gpu"]}}
    )
    outcome = result.get(timeout=30)
    assert outcome["status"] == "succeeded" and outcome["stdout"] == "from-python\n"
    run = RunStore().get(result.id)
    assert run.worker_id == GPU.node
    job = api.get(f"/jobs/{run.job_id}").json
    assert job["source"] == "python" and job["user"] == "pyuser" and job["name"] == "echo from-python"
    assert api.get(f"/jobs/{run.job_id}/runs").json[0]["id"] == result.id


def test_invalid_apply_async_is_never_published(stack):
    from hydra import run_command
    from hydra.errors import InvalidJob

    with pytest.raises(InvalidJob) as info:
        run_command.apply_async(kwargs={"command": "echo x", "user": "bad user"})
    assert "user" in info.value.errors


def test_a_stopped_worker_shows_offline_within_three_heartbeats(api, stack, worker_factory):
    spec = worker_factory(WorkerSpec(unique("mortal"), "os.linux", concurrency=1))
    pid = stack.pid(spec.process_name)
    os.kill(pid, signal.SIGSTOP)  # alive but silent
    stopped = time.monotonic()
    try:

        def offline():
            worker = next((w for w in api.get("/workers/").json if w["id"] == spec.node), None)
            return worker and worker["status"] == "offline"

        wait_until(offline, timeout=15, message="worker offline")
        assert time.monotonic() - stopped <= 3 * 2.0 + 0.5  # 3 heartbeat intervals of 2 s
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_until(lambda: Registry().get(spec.node).status == "online", 15, message="worker back online")


BAD_BODIES = [
    ("not json", "{bad", 400, None),
    ("list", json.dumps([1, 2]), 422, "_schema"),
    ("empty", "{}", 422, "name"),
    ("bad shell", json.dumps(job_body("x", shell="zsh")), 422, "shell"),
    ("negative timeout", json.dumps(job_body("x", timeout=-1)), 422, "timeout"),
    ("string retries", json.dumps(job_body("x", retries="3")), 422, "retries"),
    ("unknown os", json.dumps(job_body("x", affinity={"os": ["beos"]})), 422, "affinity"),
    ("null body field", json.dumps(job_body("x", name=None)), 422, "name"),
    ("huge number", json.dumps(job_body("x", priority=10**30)), 422, "priority"),
    ("nan", '{"name":"a","user":"b","command":"c","timeout":NaN}', 422, "timeout"),
]


@pytest.mark.parametrize("label,raw,code,field", BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_bad_input_gets_a_json_error_naming_the_field(api, stack, label, raw, code, field):
    before = stack_job_count()
    response = api.post("/jobs/", data=raw, content_type="application/json")
    assert response.status_code == code, response.data
    assert response.is_json and response.json["code"] == code
    if field:
        assert field in response.json["errors"]["json"]
    assert stack_job_count() == before  # nothing half-written


def stack_job_count() -> int:
    from hydra.store.jobs import JobStore

    return JobStore().count()


def test_unknown_ids_get_404_json(api, stack):
    for path in ("/jobs/nope", "/jobs/nope/runs"):
        response = api.get(path)
        assert response.status_code == 404 and response.json["message"] == "job 'nope' not found"
    assert api.get("/no/such/route").status_code == 404 and api.get("/no/such/route").is_json


def test_health_names_what_is_down(api, stack):
    assert api.get("/health").json["status"] == "ok"
    stack.stop("controller")
    try:

        def down():
            response = api.get("/health")
            return response if response.status_code == 503 else None

        response = wait_until(down, 15, message="health 503")
        assert response.json["down"] == ["controller"] and "controller" in response.json["message"]
    finally:
        stack.start_controller()
    wait_until(lambda: api.get("/health").status_code == 200, 15, message="health back")


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_flower_shows_workers_and_readable_tasks(api, stack):
    stack.start_flower()
    auth = stack.flower_auth

    def get(path):
        out = subprocess.run(
            ["curl", "-s", "-u", auth, f"{stack.flower_url}{path}"], capture_output=True, text=True, timeout=30
        ).stdout
        return json.loads(out) if out.strip().startswith(("{", "[")) else None

    # Flower answers HTTP before its event consumer runs; once it lists the workers from
    # their heartbeats, it is following the event stream.
    wait_until(
        lambda: {GPU.node, CPU.node} <= set(get("/api/workers?status=true") or {}),
        30,
        interval=0.5,
        message="flower lists both workers",
    )
    assert (
        subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", f"{stack.flower_url}/api/workers"],
            capture_output=True,
            text=True,
        ).stdout
        == "401"
    )  # basic auth is on
    run_id = submit(api, "echo flower", name="flower-visible")["run_id"]
    wait_run(run_id)
    task = wait_until(
        lambda: (t := get(f"/api/task/info/{run_id}")) and t.get("state") == "SUCCESS" and t,
        30,
        interval=0.5,
        message="flower saw the task",
    )
    # Flower's task list shows the attempt's shadow name (the real task name routes it).
    assert task["name"] == "hydra: flower-visible #1"
    listed = get("/api/tasks?limit=100") or {}
    assert listed.get(run_id, {}).get("name") == "hydra: flower-visible #1"
    assert "flower-visible" in task["kwargs"] and "echo flower" in task["kwargs"]
    assert task["worker"] in (GPU.node, CPU.node)

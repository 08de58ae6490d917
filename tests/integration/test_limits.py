"""Resource limits and per-job concurrency on the real stack: root workers put each run in its
cgroup with the job's memory and cpu limits (cgroup v1 here), a run over its memory ends
``failed: out of memory``, a busy loop is held to its share of a core (measured from the
cgroup's own cpu accounting), and ``max_concurrent`` keeps runs from every source in line."""

from __future__ import annotations

import glob
import os
import time
from pathlib import Path

import pytest

from hydra.execution import cgroups
from hydrastack import WorkerSpec
from tests.conftest import CPU, GPU
from tests.helpers import submit, unique, wait_run, wait_until


def _limits_here() -> str | None:
    """Why this machine cannot run these tests (None: it can)."""
    if os.geteuid() != 0:
        return "cgroups are made by root workers only: run the tests as root"
    kind = cgroups.detect("auto")
    if kind is None or not kind.can_limit:
        return "no writable memory and cpu cgroup controllers on this machine"
    return None


LIMITS = pytest.mark.skipif(_limits_here() is not None, reason=str(_limits_here()))


def _cgroup_file(root: str, run_id: str, name: str) -> Path | None:
    """A file of a running run's cgroup (``<root>/hydra/<slot>/<run>/<name>``)."""
    found = glob.glob(f"{root}/hydra/*/{run_id}/{name}")
    return Path(found[0]) if found else None


def _cpu_files(run_id: str) -> tuple[Path, str, Path, float] | None:
    """(quota file, its text at cpu 0.5, cpu usage file, seconds per unit of it) of a run."""
    kind = cgroups.detect("auto")
    if isinstance(kind, cgroups.V1):
        quota = _cgroup_file(str(kind.limit_mounts["cpu"]), run_id, "cpu.cfs_quota_us")
        usage = _cgroup_file(str(kind.limit_mounts["cpuacct"]), run_id, "cpuacct.usage")
        return (quota, "50000", usage, 1e-9) if quota and usage else None
    assert isinstance(kind, cgroups.V2)
    quota = _cgroup_file(str(kind.mount), run_id, "cpu.max")
    usage = _cgroup_file(str(kind.mount), run_id, "cpu.stat")
    return (quota, "50000 100000", usage, 1e-6) if quota and usage else None


def _cpu_seconds(usage: Path, unit: float) -> float:
    text = usage.read_text().split()
    value = text[0] if usage.name == "cpuacct.usage" else text[text.index("usage_usec") + 1]
    return int(value) * unit


@LIMITS
def test_workers_say_they_can_enforce_limits(api, stack):
    workers = {w["id"]: w for w in api.get("/workers/").json}
    assert workers[CPU.node]["resource_limits"] and workers[GPU.node]["resource_limits"]


@LIMITS
def test_a_run_over_its_memory_limit_fails_out_of_memory(api, stack):
    hog = "python3 -c \"b = 'x' * (200 * 1024 * 1024); print('allocated', len(b))\""
    accepted = submit(api, hog, resources={"memory_mb": 64})
    assert api.get(f"/jobs/{accepted['job_id']}").json["resources"] == {"memory_mb": 64}
    run = wait_run(accepted["run_id"], timeout=60)
    assert run.status == "failed"
    assert run.error == "out of memory (limit 64 MB)"
    assert "allocated" not in (run.stdout or "")
    # under the limit the same kind of command runs as usual
    fits = wait_run(submit(api, hog.replace("200", "8"), resources={"memory_mb": 64})["run_id"], timeout=60)
    assert fits.status == "succeeded", fits.error


@LIMITS
def test_a_busy_loop_is_held_to_half_a_core(api, stack):
    loop = 'python3 -c "import time\nt = time.time()\nwhile time.time() - t < 8: pass"'
    run_id = submit(api, loop, resources={"cpu": 0.5}, timeout=60)["run_id"]
    wait_run(run_id, statuses=["running"], timeout=60)
    quota, expected, usage, unit = wait_until(lambda: _cpu_files(run_id), 20, message="the run's cpu cgroup")
    assert quota.read_text().strip() == expected
    first, since = _cpu_seconds(usage, unit), time.monotonic()
    time.sleep(3)
    used, wall = _cpu_seconds(usage, unit) - first, time.monotonic() - since
    cores = used / wall
    assert 0 < cores <= 0.65, f"{cores:.2f} cores"
    assert wait_run(run_id, timeout=60).status == "succeeded"


@LIMITS
def test_a_job_asking_for_limits_waits_when_no_worker_can_enforce_them(api, stack, worker_factory):
    """A worker without cgroups (``HYDRA_CGROUP=none``) says it cannot enforce limits: a job
    asking for them waits, and the placement explanation says why; one without runs there."""
    tag = unique("nocg").lower()
    spec = WorkerSpec(unique("nocg"), f"os.linux,tag.{tag}", concurrency=1, env={"HYDRA_CGROUP": "none"})
    worker_factory(spec)
    here = {"os": ["linux"], "tags": [tag]}
    wait_until(
        lambda: any(w["id"] == spec.node and w["status"] == "online" for w in api.get("/workers/").json),
        30,
        message="the worker without cgroups is online",
    )
    assert next(w for w in api.get("/workers/").json if w["id"] == spec.node)["resource_limits"] is False
    limited = submit(api, "true", resources={"cpu": 0.5}, affinity=here)
    assert limited["status"] == "pending"
    assert f"{spec.node} cannot enforce resource limits" in limited["pending_reason"]
    assert wait_run(submit(api, "true", affinity=here)["run_id"], timeout=60).status == "succeeded"
    assert wait_run(limited["run_id"], statuses=["pending"]).status == "pending"  # still waiting
    assert api.post(f"/runs/{limited['run_id']}/cancel").status_code == 200  # ended at once: it never ran


def test_over_a_namespace_maximum_is_a_422_naming_the_field(api, stack):
    namespace = unique("lim")
    assert api.put(f"/namespaces/{namespace}", json={"max_memory_mb": 128, "default_cpu": 0.5}).status_code == 200
    try:
        bad = api.post(
            "/jobs/", json={"name": "big", "command": "true", "namespace": namespace, "resources": {"memory_mb": 512}}
        )
        assert bad.status_code == 422
        assert "memory_mb" in bad.json["errors"]["json"]["resources"]
        assert "maximum 128" in bad.json["errors"]["json"]["resources"]["memory_mb"][0]
        good = api.post("/jobs/", json={"name": "small", "command": "true", "namespace": namespace})
        assert good.status_code == 201, good.json
        assert api.get(f"/jobs/{good.json['job_id']}").json["resources"] == {"memory_mb": 128, "cpu": 0.5}
        assert wait_run(good.json["run_id"], timeout=60).status == "succeeded"
    finally:
        api.delete(f"/namespaces/{namespace}")


def test_max_concurrent_2_of_5_triggers_never_runs_more_than_2(api, stack):
    accepted = submit(api, "sleep 3", max_concurrent=2)
    job_id = accepted["job_id"]
    run_ids = [accepted["run_id"]]
    answers = []
    for _ in range(4):
        answer = api.post(f"/jobs/{job_id}/trigger")
        assert answer.status_code == 201, answer.json
        answers.append(answer.json)
        run_ids.append(answer.json["run_id"])
    held = [a for a in answers if a["status"] == "pending"]
    assert held and all("max_concurrent 2" in (a.get("pending_reason") or "") for a in held)
    runs = [wait_run(run_id, timeout=120) for run_id in run_ids]
    assert [r.status for r in runs] == ["succeeded"] * 5
    spans = sorted((r.started_at, r.finished_at) for r in runs)
    for start, _end in spans:  # at every start, how many runs were running (itself included)
        assert sum(1 for s, e in spans if s <= start < e) <= 2, spans


# -- the same limit from every way in: gRPC, apply_async, the CLI --------------------------------


@pytest.fixture(scope="module")
def grpc_hydra(stack):
    import grpc

    from hydra.v1 import hydra_pb2_grpc

    stack.start_grpc()
    with grpc.insecure_channel(stack.grpc_address) as channel:
        yield hydra_pb2_grpc.HydraStub(channel), (("authorization", f"Bearer {stack.admin_token}"),)


def test_grpc_submits_limits_and_its_triggers_wait_for_max_concurrent(stack, grpc_hydra):
    import grpc
    from google.protobuf import json_format

    from hydra.v1 import hydra_pb2

    hydra, admin = grpc_hydra

    def spec(**fields):
        values = {"name": unique("grpc"), "command": "sleep 2", "shell": "bash", "affinity": {"os": ["linux"]}}
        return json_format.ParseDict({**values, **fields}, hydra_pb2.JobSpec())

    with pytest.raises(grpc.RpcError) as caught:
        hydra.SubmitJob(hydra_pb2.SubmitJobRequest(job=spec(resources={"memory_mb": 0})), metadata=admin, timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "resources" in caught.value.details() and "memory_mb" in caught.value.details()
    first = hydra.SubmitJob(
        hydra_pb2.SubmitJobRequest(job=spec(max_concurrent=1, resources={"cpu": 1.5})), metadata=admin, timeout=30
    )
    job = hydra.GetJob(hydra_pb2.GetJobRequest(job_id=first.job_id), metadata=admin, timeout=30)
    assert job.max_concurrent == 1 and job.resources.cpu == 1.5
    second = hydra.TriggerJob(hydra_pb2.TriggerJobRequest(job_id=first.job_id), metadata=admin, timeout=30)
    if wait_run(first.run_id, statuses=["queued", "running", "succeeded"]).status != "succeeded":
        assert second.status == "pending" and "max_concurrent 1" in second.pending_reason
    runs = [wait_run(first.run_id, timeout=90), wait_run(second.run_id, timeout=90)]
    assert [r.status for r in runs] == ["succeeded", "succeeded"]
    assert runs[0].finished_at <= runs[1].started_at or runs[1].finished_at <= runs[0].started_at


def test_apply_async_of_a_stored_job_waits_for_its_max_concurrent(api, stack):
    from hydra import run_command
    from hydra.store.runs import RunStore

    accepted = submit(api, "sleep 2", max_concurrent=1)
    result = run_command.apply_async(kwargs={"job_id": accepted["job_id"]})
    second = RunStore().find(result.id)
    first = RunStore().find(accepted["run_id"])
    if first is not None and first.status in ("queued", "running"):
        assert second.status == "pending" and "max_concurrent 1" in (second.pending_reason or "")
    runs = [wait_run(accepted["run_id"], timeout=90), wait_run(result.id, timeout=90)]
    assert [r.status for r in runs] == ["succeeded", "succeeded"]
    assert runs[0].finished_at <= runs[1].started_at


def test_the_cli_submits_limits(stack):
    from click.testing import CliRunner

    from hydra.cli import main
    from hydra.client import Client

    stack.start_api()
    argv = ["submit", "--api-url", stack.api_url, "--json", "--memory-mb", "64", "--cpu", "0.5"]
    result = CliRunner().invoke(main, [*argv, "--max-concurrent", "2", "--", "echo", "limited"])
    assert result.exit_code == 0, result.output
    import json

    job_id = json.loads(result.stdout)["job_id"]
    with Client(stack.api_url) as client:
        job = client.job(job_id)
        assert (job.resources, job.max_concurrent) == ({"memory_mb": 64, "cpu": 0.5}, 2)
        shown = CliRunner().invoke(main, ["job", "show", "--api-url", stack.api_url, job_id])
        assert "64 MiB memory, 0.5 cpu (each run)" in shown.output and "max concurrent" in shown.output
        refused = CliRunner().invoke(main, [*argv[:4], "--cpu", "0", "--", "true"])
        assert refused.exit_code != 0 and "--cpu" in refused.output


def test_a_namespace_default_over_its_maximum_is_refused(api, stack):
    answer = api.put(f"/namespaces/{unique('lim')}", json={"default_cpu": 4, "max_cpu": 2})
    assert answer.status_code == 422
    assert answer.json["errors"]["json"] == {"default_cpu": ["is over max_cpu (2.0)"]}

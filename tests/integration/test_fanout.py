"""Fan-out on the real stack: ``hydra submit --all --wait`` on three workers, one of them killed
mid-run (its run ends lost for it and is not moved; the others succeed; --wait exits 1 naming
it; the summary says so in REST, gRPC and the CLI), and max_parallel with stop_on_failure."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import grpc
from click.testing import CliRunner

from hydra.cli import main
from hydra.store.runs import RunStore
from hydra.v1 import hydra_pb2, hydra_pb2_grpc
from hydrastack import WorkerSpec
from tests.helpers import submit, unique, wait_run, wait_until
from tests.integration.test_failover import signal_tree

HYDRA = str(Path(sys.executable).parent / "hydra")


def tagged(worker_factory, tag: str) -> WorkerSpec:
    return worker_factory(WorkerSpec(unique("fan"), f"os.linux,tag.{tag}", concurrency=1))


def test_a_fanout_runs_everywhere_and_a_killed_workers_run_is_lost_not_moved(
    api, stack, worker_factory, shared, tmp_path
):
    stack.start_api()
    tag = unique("fan").lower()
    workers = sorted((tagged(worker_factory, tag) for _ in range(3)), key=lambda w: w.node)
    victim = workers[1]
    hold = f"while [ ! -e {shared}/go ]; do sleep 0.2; done; echo done"
    env = {**os.environ, "HYDRA_API_URL": stack.api_url, "HYDRA_TOKEN": stack.admin_token}
    err = tmp_path / "stderr"
    argv = [HYDRA, "submit", "--all", "--os", "linux", "--tag", tag, "--timeout", "300", "--wait"]
    with err.open("w") as stderr:
        waiting = subprocess.Popen(
            [*argv, "--", "bash", "-c", hold], env=env, stdout=subprocess.PIPE, stderr=stderr, text=True
        )
    try:
        found = wait_until(lambda: re.search(r"job (\S+): fanned out", err.read_text()), 60, message="the submission")
        job_id = found.group(1)
        fan = api.get(f"/jobs/{job_id}/fanout").json
        assert [w["worker"] for w in fan["workers"]] == [w.node for w in workers]  # gpu1, cpu1 lack the tag
        runs = {w["worker"]: w["run_id"] for w in fan["workers"]}
        for run_id in runs.values():
            wait_run(run_id, statuses=["running"], timeout=60)

        signal_tree(stack.pid(victim.process_name), signal.SIGKILL)
        lost = wait_run(runs[victim.node], statuses=["lost"], timeout=60)
        assert lost.worker_id == victim.node and "stays with its worker" in lost.decision
        (shared / "go").touch()
        out, _ = waiting.communicate(timeout=120)
    finally:
        if waiting.poll() is None:
            waiting.kill()
    assert waiting.returncode == 1, (out, err.read_text())
    assert f"hydra: fan-out lost on {victim.node}" in err.read_text()
    assert f"{victim.node}: lost" in out

    fan = api.get(f"/jobs/{job_id}/fanout").json
    others = [w.node for w in workers if w is not victim]
    assert (fan["done"], fan["ok"], fan["succeeded"], fan["lost"], fan["failed"]) == (
        True,
        False,
        others,
        [victim.node],
        [],
    )
    for worker in others:
        ended = RunStore().get(runs[worker])
        assert (ended.status, ended.worker_id, ended.bound_worker, ended.stdout) == (
            "succeeded",
            worker,
            worker,
            "done\n",
        )
    all_runs = api.get(f"/jobs/{job_id}/runs").json
    assert sorted(r["id"] for r in all_runs) == sorted(runs.values())  # nothing moved to another worker

    stack.start_grpc()
    with grpc.insecure_channel(stack.grpc_address) as channel:
        answer = hydra_pb2_grpc.HydraStub(channel).GetJobFanout(
            hydra_pb2.GetJobFanoutRequest(job_id=job_id),
            metadata=(("authorization", f"Bearer {stack.admin_token}"),),
        )
    assert list(answer.lost) == [victim.node] and list(answer.succeeded) == others and answer.done


def test_max_parallel_and_stop_on_failure_leave_the_rest_not_reached(api, stack, worker_factory):
    stack.start_api()
    tag = unique("fan").lower()
    first, second = sorted((tagged(worker_factory, tag) for _ in range(2)), key=lambda w: w.node)
    placement = {"mode": "all", "max_parallel": 1, "stop_on_failure": True}
    created = submit(api, "exit 3", affinity={"os": ["linux"], "tags": [tag]}, placement=placement)
    assert api.get(f"/jobs/{created['job_id']}").json["placement"] == placement
    wait_until(lambda: api.get(f"/jobs/{created['job_id']}/fanout").json["done"], 60, message="the fan-out ended")
    fan = api.get(f"/jobs/{created['job_id']}/fanout").json
    assert (fan["failed"], fan["not_reached"], fan["succeeded"]) == ([first.node], [second.node], [])
    assert "stop_on_failure" in fan["workers"][1]["reason"]
    assert len(api.get(f"/jobs/{created['job_id']}/runs").json) == 1  # the second was never started

    env = {"HYDRA_TOKEN": stack.admin_token, "HYDRA_API_URL": stack.api_url}
    shown = CliRunner(env=env).invoke(main, ["job", "fanout", created["job_id"]])
    assert shown.exit_code == 1 and "skipped" in shown.output
    assert f"failed on {first.node}; not reached on {second.node}" in shown.output

    bad = api.post("/jobs/", json={"name": "x", "command": "true", "placement": {"mode": "one", "max_parallel": 2}})
    assert bad.status_code == 422 and "max_parallel" in bad.json["errors"]["json"]["placement"]


def test_the_console_submits_a_fanout_and_shows_it_worker_by_worker(api, stack, worker_factory):
    from tests.integration.test_console import browser, csrf

    tag = unique("fan").lower()
    workers = sorted((tagged(worker_factory, tag) for _ in range(2)), key=lambda w: w.node)
    client = browser(stack.admin_token)
    token = csrf(client.get("/ui/submit"))
    form = {"csrf_token": token, "name": unique("fan"), "command": "echo hi", "os": "linux", "tags": tag}
    bad = client.post("/ui/submit", data={**form, "max_parallel": "2"})  # mode one: refused, naming the field
    assert bad.status_code == 422 and b"only with mode all" in bad.data
    answer = client.post("/ui/submit", data={**form, "placement_mode": "all", "max_parallel": "1"})
    assert answer.status_code == 302, answer.data[:500]
    job_id = RunStore().get(answer.headers["Location"].rstrip("/").split("/")[-1]).job_id  # the first worker's run
    assert api.get(f"/jobs/{job_id}").json["placement"]["max_parallel"] == 1
    wait_until(lambda: api.get(f"/jobs/{job_id}/fanout").json["done"], 60, message="the fan-out ended")
    page = client.get(f"/ui/jobs/{job_id}")
    assert b"Latest fan-out" in page.data and b"2 succeeded" in page.data
    for worker in workers:
        assert f'data-worker="{worker.node}"'.encode() in page.data

"""Flower (a real ``celery flower`` process on the test stack) names every attempt
``hydra: <job> #<attempt>``, however it was submitted - REST, gRPC, the CLI with a tag, a
Python user's ``apply_async`` - and a run cancelled before any worker took it, of which Flower
sees only the publisher's ``task-sent`` event."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import grpc
import pytest
from google.protobuf import json_format

from hydra.celery.app import run_command
from hydra.v1 import hydra_pb2, hydra_pb2_grpc
from hydrastack import REPO, venv_bin
from tests.conftest import CPU, GPU
from tests.helpers import job_body, unique, wait_run, wait_until

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")


def flower_get(stack, path: str):
    out = subprocess.run(
        ["curl", "-s", "-u", stack.flower_auth, f"{stack.flower_url}{path}"], capture_output=True, text=True, timeout=30
    ).stdout
    return json.loads(out) if out.strip().startswith(("{", "[")) else None


def test_flower_names_every_attempt_whatever_submitted_it(api, stack):
    stack.start_flower()
    stack.start_api()
    stack.start_grpc()
    wait_until(
        lambda: {GPU.node, CPU.node} <= set(flower_get(stack, "/api/workers?status=true") or {}),
        30,
        interval=0.5,
        message="flower follows the events",
    )
    names: dict[str, str] = {}  # run id -> the job's name

    rest = unique("fl-rest")
    names[api.post("/jobs/", json=job_body("true", name=rest)).json["run_id"]] = rest

    over_grpc = unique("fl-grpc")
    with grpc.insecure_channel(stack.grpc_address) as channel:
        spec = json_format.ParseDict(
            {"name": over_grpc, "command": "true", "shell": "bash", "affinity": {"os": ["linux"]}}, hydra_pb2.JobSpec()
        )
        answer = hydra_pb2_grpc.HydraStub(channel).SubmitJob(
            hydra_pb2.SubmitJobRequest(job=spec),
            metadata=(("authorization", f"Bearer {stack.admin_token}"),),
            timeout=30,
        )
    names[answer.run_id] = over_grpc

    by_cli = unique("fl-cli")
    env = {**os.environ, "HYDRA_API_URL": stack.api_url, "HYDRA_TOKEN": stack.admin_token}
    done = subprocess.run(
        [str(venv_bin() / "hydra"), "submit", "--json", "--name", by_cli, "--tag", "gpu", "--os", "linux", "true"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    names[json.loads(done.stdout)["run_id"]] = by_cli

    by_python = unique("fl-py")
    sent = run_command.apply_async(
        kwargs={"name": by_python, "user": "tester", "command": "true", "affinity": {"os": ["linux"]}}
    )
    names[sent.id] = by_python

    # No worker has the tag: the run waits, published to the pending queue, and is cancelled
    # there; Flower gets its task-sent event and nothing from a worker.
    waiting = unique("fl-cancel")
    run_id = api.post("/jobs/", json=job_body("true", name=waiting, affinity={"tags": ["nowhere"]})).json["run_id"]
    assert api.post(f"/runs/{run_id}/cancel").status_code == 200
    names[run_id] = waiting

    for ran in list(names)[:4]:
        assert wait_run(ran, timeout=60).status == "succeeded"
    assert wait_run(run_id).status == "cancelled"

    def listed():
        tasks = flower_get(stack, "/api/tasks?limit=1000") or {}
        return all(r in tasks for r in names) and tasks

    tasks = wait_until(listed, 30, interval=0.5, message="flower lists every attempt")
    assert {r: tasks[r]["name"] for r in names} == {r: f"hydra: {n} #1" for r, n in names.items()}

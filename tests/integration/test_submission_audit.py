"""apply_async submissions are audited like REST and gRPC ones, on the real stack: one
``job.submit`` event per run with the same fields - the job as target, its namespace, the user
it runs as, its name and the names (never the values) of its environment - and as actor the
principal the credentials stand for: ``signing-key:<key id>`` for a process holding the key, the
token's user for one going through the API (tests/integration/test_canvas.py covers that path
with its canvas)."""

from __future__ import annotations

import grpc
from google.protobuf import json_format

from hydra.dispatch import signing
from hydra.v1 import hydra_pb2, hydra_pb2_grpc
from tests.helpers import unique, wait_run


def event_of(api, run_id: str) -> dict:
    job_id = api.get(f"/runs/{run_id}").json["job_id"]
    events = api.get("/audit/", query_string={"target": job_id}).json
    found = [e for e in events if e["action"] == "job.submit"]
    assert len(found) == 1, (run_id, events)  # one event per submission, never two
    assert found[0]["details"]["run"] == run_id
    return found[0]


def shape(event: dict) -> tuple:
    """What any submission's event says, whichever way it came in."""
    return (event["action"], event["namespace"], sorted(event["details"]))


def test_apply_async_rest_and_grpc_submissions_leave_the_same_event_with_their_principal(api, stack):
    from hydra import run_command

    body = {"user": "tester", "command": "true", "env": {"SECRET_TOKEN": "s3cr3t-value"}}
    rest = api.post("/jobs/", json={**body, "name": unique("rest")}).json
    stack.start_grpc()
    with grpc.insecure_channel(stack.grpc_address) as channel:
        stub = hydra_pb2_grpc.HydraStub(channel)
        admin = (("authorization", f"Bearer {stack.admin_token}"),)
        spec = json_format.ParseDict({**body, "name": unique("grpc")}, hydra_pb2.JobSpec())
        over_grpc = stub.SubmitJob(hydra_pb2.SubmitJobRequest(job=spec), metadata=admin)
    name = unique("python")
    result = run_command.apply_async(kwargs={**body, "name": name})
    for run_id in (rest["run_id"], over_grpc.run_id, result.id):
        wait_run(run_id)

    from_rest, from_grpc, from_python = (event_of(api, r) for r in (rest["run_id"], over_grpc.run_id, result.id))
    assert shape(from_python) == shape(from_rest) == shape(from_grpc)
    assert from_python["actor"] == f"signing-key:{signing.keyring_id()}" and from_python["via"] == "apply_async"
    assert from_rest["actor"] == from_grpc["actor"] and not from_rest["actor"].startswith("signing-key")
    assert [e["details"]["source"] for e in (from_rest, from_grpc, from_python)] == ["api", "grpc", "python"]
    job_id = api.get(f"/runs/{result.id}").json["job_id"]
    assert from_python["target"] == job_id and from_rest["target"] == rest["job_id"]
    details = from_python["details"]
    assert (details["user"], details["name"], details["env"]) == ("tester", name, ["SECRET_TOKEN"])
    for event in (from_rest, from_grpc, from_python):
        assert "s3cr3t-value" not in str(event)

"""Job dependencies on the real stack: a job's on_success / on_failure / on_completion start
other jobs when its run ends for good - recorded by the worker that ran it (which cannot
sign), published by the controller - with the ending run's id and status in their
environment; bad ones refused with a 422 naming the field; a paused or deleted downstream
job noted on the ending run; the fields through REST, gRPC, the CLI and the console."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import json_format

from hydra.v1 import hydra_pb2, hydra_pb2_grpc
from tests.helpers import job_body, submit, unique, wait_run, wait_until
from tests.integration.test_cli_operations import answer, hydra
from tests.integration.test_console import browser


def downstream(api, shared, name: str, **extra) -> str:
    """A job that writes its upstream variables to ``shared/<name>`` (cron, so it has no run of its own)."""
    out = shared / name
    command = f'echo "$HYDRA_UPSTREAM_RUN_ID $HYDRA_UPSTREAM_STATUS $HYDRA_UPSTREAM_JOB_ID $HYDRA_UPSTREAM_VIA" > {out}'
    return submit(api, command, schedule="0 3 1 1 *", **extra)["job_id"]


def started(api, run_id: str) -> dict:
    return wait_until(
        lambda: (flow := api.get(f"/runs/{run_id}/flow").json)["started"] and flow, 30, message="its end noted"
    )


def test_a_success_and_a_failure_start_their_dependants_with_the_upstream_run(api, stack, shared):
    deploy, page, tidy = (downstream(api, shared, name) for name in ("deploy", "page", "tidy"))
    build = submit(api, "echo built", on_success=[deploy], on_failure=[page], on_completion=[tidy])
    job = api.get(f"/jobs/{build['job_id']}").json
    assert (job["on_success"], job["on_failure"], job["on_completion"]) == ([deploy], [page], [tidy])
    assert wait_run(build["run_id"]).status == "succeeded"
    flow = started(api, build["run_id"])
    ran = {e["job_id"]: e["run_id"] for e in flow["started"]}
    assert set(ran) == {deploy, tidy}
    for job_id, via in ((deploy, "on_success"), (tidy, "on_completion")):
        assert wait_run(ran[job_id], timeout=30).status == "succeeded"
        name = "deploy" if job_id == deploy else "tidy"
        assert (shared / name).read_text() == f"{build['run_id']} succeeded {build['job_id']} {via}\n"
        assert api.get(f"/runs/{ran[job_id]}/flow").json["started_by"]["runs"] == [build["run_id"]]
    assert not (shared / "page").exists()

    failing = submit(api, "exit 5", on_failure=[page])
    assert wait_run(failing["run_id"]).status == "failed"
    [paged] = started(api, failing["run_id"])["started"]
    assert wait_run(paged["run_id"], timeout=30).status == "succeeded"
    assert (shared / "page").read_text() == f"{failing['run_id']} failed {failing['job_id']} on_failure\n"
    deps = api.get(f"/jobs/{page}/dependencies").json
    assert {r["id"] for r in deps["upstream"]} == {build["job_id"], failing["job_id"]}


def test_bad_dependencies_get_a_422_naming_the_field(api, stack, shared):
    unknown = api.post("/jobs/", json=job_body("true", on_success=["no-such-job"]))
    assert unknown.status_code == 422 and "on_success" in unknown.json["errors"]["json"]
    later = downstream(api, shared, "later")
    first = submit(api, "true", on_completion=[later])["job_id"]
    cycle = api.patch(f"/jobs/{later}", json={"on_failure": [first]})
    assert cycle.status_code == 422 and "a cycle" in cycle.json["errors"]["json"]["on_failure"][0]
    someone = unique("u")
    other = api.post("/tokens/", json={"name": unique("ns"), "user": someone, "roles": {"deps-elsewhere": "operator"}})
    theirs = api.post(
        "/jobs/",
        json=job_body("true", user=someone, on_success=[later]),
        headers={"Authorization": f"Bearer {other.json['token']}"},
    )
    assert (
        theirs.status_code == 422 and "no such job that you may start" in theirs.json["errors"]["json"]["on_success"][0]
    )


def test_a_paused_or_deleted_downstream_is_not_started_and_the_upstream_run_says_why(api, stack, shared):
    paused, deleted = downstream(api, shared, "paused"), downstream(api, shared, "deleted")
    up = submit(api, "true", on_success=[paused, deleted])
    wait_run(up["run_id"])
    started(api, up["run_id"])
    assert api.post(f"/jobs/{paused}/pause").status_code == 200
    assert api.delete(f"/jobs/{deleted}").status_code == 204
    again = api.post(f"/jobs/{up['job_id']}/trigger").json
    wait_run(again["run_id"])
    notes = {e["job_id"]: e.get("note") for e in started(api, again["run_id"])["started"]}
    assert notes == {paused: "not started: the job is paused", deleted: "not started: the job was deleted"}
    states = {r["id"]: r["state"] for r in api.get(f"/jobs/{up['job_id']}/dependencies").json["downstream"]}
    assert states == {paused: "paused", deleted: "deleted"}


def test_grpc_carries_the_fields_and_the_reads(api, stack, shared):
    stack.start_grpc()
    later = downstream(api, shared, "grpc-later")
    with grpc.insecure_channel(stack.grpc_address) as channel:
        stub = hydra_pb2_grpc.HydraStub(channel)
        admin = (("authorization", f"Bearer {stack.admin_token}"),)
        body = {"name": unique("grpc"), "command": "true", "affinity": {"os": ["linux"]}, "on_success": [later]}
        made = stub.SubmitJob(
            hydra_pb2.SubmitJobRequest(job=json_format.ParseDict(body, hydra_pb2.JobSpec())), metadata=admin
        )
        assert list(stub.GetJob(hydra_pb2.GetJobRequest(job_id=made.job_id), metadata=admin).on_success) == [later]
        wait_run(made.run_id)
        started(api, made.run_id)
        flow = stub.GetRunFlow(hydra_pb2.GetRunRequest(run_id=made.run_id), metadata=admin)
        assert [e.job_id for e in flow.started] == [later] and flow.started[0].via == "on_success"
        deps = stub.GetJobDependencies(hydra_pb2.GetJobRequest(job_id=later), metadata=admin)
        assert made.job_id in [r.id for r in deps.upstream]
        with pytest.raises(grpc.RpcError) as bad:
            stub.SubmitJob(
                hydra_pb2.SubmitJobRequest(
                    job=json_format.ParseDict({**body, "on_success": ["nope"]}, hydra_pb2.JobSpec())
                ),
                metadata=admin,
            )
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "on_success" in bad.value.details()


def test_the_cli_and_the_console_show_both_ends(api, stack, shared):
    stack.start_api()
    later = downstream(api, shared, "cli-later")
    made = answer(hydra(stack, "submit", "--on-success", later, "--", "true"))
    wait_run(made["run_id"])
    flow = started(api, made["run_id"])
    deps = answer(hydra(stack, "job", "deps", later))
    assert made["job_id"] in [r["id"] for r in deps["upstream"]]
    shown = hydra(stack, "run", "flow", made["run_id"], json_out=False)
    assert shown.exit_code == 0 and flow["started"][0]["run_id"] in shown.output

    console = browser(stack.admin_token)
    job_page = console.get(f"/ui/jobs/{later}").data.decode()
    assert f"/ui/jobs/{made['job_id']}" in job_page and "Started by" in job_page
    run_page = console.get(f"/ui/runs/{flow['started'][0]['run_id']}").data.decode()
    assert f"/ui/runs/{made['run_id']}" in run_page  # the run that started it
    up_page = console.get(f"/ui/runs/{made['run_id']}").data.decode()
    assert f"/ui/runs/{flow['started'][0]['run_id']}" in up_page  # the runs it started

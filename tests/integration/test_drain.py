"""Draining a worker on the real stack: what runs there finishes, what waits in its queue goes
to another worker, nothing new lands on it; a job only drained workers fit waits with the
reason "draining" until one is undrained; the drain is MongoDB's, so a controller restarted
after Redis lost its copy keeps it; REST, gRPC, the CLI and /metrics show it."""

from __future__ import annotations

import grpc
import pytest
from click.testing import CliRunner

from hydra import names
from hydra.broker.redis import get_redis
from hydra.broker.registry import Registry
from hydra.celery.app import app as celery_app
from hydra.cli import main
from hydra.store.runs import RunStore
from hydra.v1 import hydra_pb2, hydra_pb2_grpc
from hydrastack import WorkerSpec
from tests.helpers import submit, unique, wait_run, wait_until


def tagged(worker_factory, tag: str) -> WorkerSpec:
    return worker_factory(WorkerSpec(unique("dr"), f"os.linux,tag.{tag}", concurrency=1))


def drained(api) -> dict[str, dict]:
    return {w["id"]: w for w in api.get("/workers/").json if w["drained"]}


@pytest.fixture
def undrain_after(api):
    """Undrain every worker the test drained (the workers are the test's own, but stay listed)."""
    yield
    for worker_id in drained(api):
        api.delete(f"/workers/{worker_id}/drain")


def test_a_drained_worker_finishes_its_run_gives_up_its_queue_and_takes_nothing_new(
    api, stack, worker_factory, shared, undrain_after
):
    tag = unique("drain").lower()
    first, second = sorted([tagged(worker_factory, tag), tagged(worker_factory, tag)], key=lambda w: w.node)
    # The API's router reuses the roster it read for HYDRA_ROUTER_CACHE seconds: place nothing
    # until it holds both workers (else both holds can go to one worker of concurrency 1).
    wait_until(
        lambda: {first.node, second.node} <= {w.id for w in celery_app.pipeline.router.registry.roster().workers},
        20,
        message="the router's roster to hold both workers",
    )
    affinity = {"os": ["linux"], "tags": [tag]}
    hold = f"while [ ! -e {shared}/go ]; do sleep 0.2; done; echo done"
    busy = [submit(api, hold, affinity=affinity, timeout=300) for _ in range(2)]
    running = {wait_run(b["run_id"], statuses=["running"], timeout=60).worker_id: b["run_id"] for b in busy}
    assert set(running) == {first.node, second.node}  # one on each (least loaded)
    waiting = [submit(api, "echo moved", affinity=affinity) for _ in range(2)]
    queued_on = {RunStore().get(w["run_id"]).worker_id: w["run_id"] for w in waiting}
    assert set(queued_on) == {first.node, second.node}  # one waits in each queue

    answer = api.post(f"/workers/{first.node}/drain", json={"reason": "kernel update"})
    assert answer.status_code == 200, answer.json
    assert (answer.json["id"], answer.json["reason"]) == (first.node, "kernel update")
    moved = queued_on[first.node]
    wait_until(lambda: RunStore().get(moved).worker_id == second.node, 30, message="the queued run moved")
    later = submit(api, "echo later", affinity=affinity)
    assert RunStore().get(later["run_id"]).worker_id == second.node  # nothing new on the drained one

    shown = drained(api)[first.node]
    assert shown["drained_by"] and shown["drain_reason"] == "kernel update" and shown["drained_at"]
    (shared / "go").touch()
    finished = wait_run(running[first.node], timeout=60)
    assert (finished.status, finished.worker_id) == ("succeeded", first.node)  # its running work finished
    for run_id in (moved, queued_on[second.node], later["run_id"]):
        ended = wait_run(run_id, timeout=60)
        assert (ended.status, ended.worker_id) == ("succeeded", second.node)
    metrics = api.get("/metrics").get_data(as_text=True)
    assert f'hydra_worker_drained{{worker="{first.node}"}} 1.0' in metrics
    assert f'hydra_worker_drained{{worker="{second.node}"}} 0.0' in metrics


def test_a_job_only_drained_workers_fit_waits_for_an_undrain(api, stack, worker_factory, undrain_after):
    tag = unique("drain").lower()
    only = tagged(worker_factory, tag)
    assert api.post(f"/workers/{only.node}/drain").status_code == 200  # no body: no reason
    created = submit(api, "echo after-undrain", affinity={"os": ["linux"], "tags": [tag]})
    run = RunStore().get(created["run_id"])
    assert run.status == "pending" and run.pending_reason.startswith("draining: ") and only.node in run.pending_reason
    assert api.delete(f"/workers/{only.node}/drain").status_code == 204
    ended = wait_run(created["run_id"], timeout=60)
    assert (ended.status, ended.worker_id, ended.stdout) == ("succeeded", only.node, "after-undrain\n")


def test_a_drain_survives_a_controller_restart_after_redis_lost_its_copy(api, stack, worker_factory, undrain_after):
    tag = unique("drain").lower()
    kept, other = tagged(worker_factory, tag), tagged(worker_factory, tag)
    assert api.post(f"/workers/{kept.node}/drain").status_code == 200
    stack.stop("controller")
    try:
        get_redis().delete(names.DRAINED_KEY)  # what a Redis flush or restart would do
        assert kept.node not in Registry().drained()
    finally:
        stack.start_controller()
    wait_until(lambda: kept.node in Registry().drained(), 30, message="the controller copied the drain back")
    for _ in range(3):
        created = submit(api, "echo placed", affinity={"os": ["linux"], "tags": [tag]})
        assert RunStore().get(created["run_id"]).worker_id == other.node
    assert kept.node in drained(api)


def test_drain_and_undrain_from_the_cli_and_over_grpc(api, stack, worker_factory, undrain_after):
    stack.start_api()
    stack.start_grpc()
    worker = tagged(worker_factory, unique("drain").lower())
    env = {"HYDRA_TOKEN": stack.admin_token, "HYDRA_API_URL": stack.api_url}
    result = CliRunner(env=env).invoke(main, ["worker", "drain", worker.node, "--reason", "from the cli"])
    assert result.exit_code == 0, result.output
    assert "takes no new runs" in result.output and worker.node in drained(api)
    listing = CliRunner(env=env).invoke(main, ["workers"])
    assert "online, draining" in listing.output
    result = CliRunner(env=env).invoke(main, ["worker", "undrain", worker.node])
    assert result.exit_code == 0 and worker.node not in drained(api)
    result = CliRunner(env=env).invoke(main, ["worker", "drain", "nobody@nowhere"])
    assert result.exit_code != 0 and "not found" in result.output

    metadata = (("authorization", f"Bearer {stack.admin_token}"),)
    with grpc.insecure_channel(stack.grpc_address) as channel:
        hydra = hydra_pb2_grpc.HydraStub(channel)
        answer = hydra.DrainWorker(hydra_pb2.DrainWorkerRequest(worker_id=worker.node, reason="rpc"), metadata=metadata)
        assert (answer.id, answer.reason) == (worker.node, "rpc")
        shown = {w.id: w for w in hydra.ListWorkers(hydra_pb2.ListWorkersRequest(), metadata=metadata).workers}
        assert shown[worker.node].drained and shown[worker.node].drain_reason == "rpc"
        hydra.UndrainWorker(hydra_pb2.UndrainWorkerRequest(worker_id=worker.node), metadata=metadata)
        with pytest.raises(grpc.RpcError) as caught:
            hydra.DrainWorker(hydra_pb2.DrainWorkerRequest(worker_id="nobody@nowhere"), metadata=metadata)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert worker.node not in drained(api)


def test_a_bad_drain_body_is_a_422_naming_the_field(api, stack, worker_factory):
    worker = tagged(worker_factory, unique("drain").lower())
    answer = api.post(f"/workers/{worker.node}/drain", json={"reason": "x" * 501, "color": "red"})
    assert answer.status_code == 422
    assert set(answer.json["errors"]["json"]) == {"reason", "color"}
    assert worker.node not in drained(api)


def test_the_console_shows_a_drain_and_its_buttons_drain_and_undrain(api, stack, worker_factory, undrain_after):
    from hydra.auth import tokens
    from hydra.model.access import Role
    from hydra.store.tokens import TokenStore
    from tests.integration.test_console import browser, csrf

    worker = tagged(worker_factory, unique("drain").lower())
    admin = browser(stack.admin_token)
    page = admin.get("/ui/workers")
    assert page.status_code == 200 and f"/ui/workers/{worker.node}/drain".encode() in page.data
    answer = admin.post(f"/ui/workers/{worker.node}/drain", data={"csrf_token": csrf(page)})
    assert answer.status_code == 302 and worker.node in drained(api)
    page = admin.get("/ui/workers")
    assert b"draining</strong>" in page.data and f"/ui/workers/{worker.node}/undrain".encode() in page.data
    assert admin.post(f"/ui/workers/{worker.node}/undrain", data={"csrf_token": csrf(page)}).status_code == 302
    assert worker.node not in drained(api)

    # An operator of one namespace sees no button for a worker serving all, and is refused as by REST.
    secret = tokens.issue(TokenStore(), name="drain-op", user="dora", roles={"team-x": Role.OPERATOR}).secret
    operator = browser(secret)
    page = operator.get("/ui/workers")
    assert f"/ui/workers/{worker.node}/drain".encode() not in page.data
    assert operator.post(f"/ui/workers/{worker.node}/drain", data={"csrf_token": csrf(page)}).status_code == 403
    assert worker.node not in drained(api)

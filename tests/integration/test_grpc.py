"""gRPC ``hydra.v1.Hydra`` on the real stack: the server process hydrastack starts (``make up``
starts the same one), called with a real grpcio client over TCP - the generated stubs, and a
client built from server reflection alone, which never imports our proto's code."""

from __future__ import annotations

import threading
import uuid

import grpc
import pytest
from google.protobuf import descriptor_pool, json_format, message_factory
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from grpc_status import rpc_status

from hydra import names
from hydra.model.records import Job
from hydra.store.jobs import JobStore
from hydra.store.mongo import get_database
from hydra.store.reindex import Reindexer
from hydra.store.runs import RunStore
from hydra.v1 import hydra_pb2, hydra_pb2_grpc
from tests.conftest import CPU, GPU
from tests.helpers import unique, wait_run, wait_until


@pytest.fixture(scope="module")
def channel(stack):
    stack.start_grpc()
    with grpc.insecure_channel(stack.grpc_address) as chan:
        yield chan


@pytest.fixture(scope="module")
def hydra(channel):
    return hydra_pb2_grpc.HydraStub(channel)


@pytest.fixture(scope="module")
def admin(stack):
    return (("authorization", f"Bearer {stack.admin_token}"),)


def token_for(api, roles: dict[str, str], user: str | None = None) -> tuple[tuple[str, str], ...]:
    made = api.post("/tokens/", json={"name": unique("grpc"), "user": user or unique("u"), "roles": roles})
    assert made.status_code == 201, made.json
    return (("authorization", f"Bearer {made.json['token']}"),)


def spec(command: str, **fields) -> hydra_pb2.JobSpec:
    values = {"name": unique("grpc"), "command": command, "shell": "bash", "affinity": {"os": ["linux"]}}
    values.update(fields)
    return json_format.ParseDict(values, hydra_pb2.JobSpec())


def failure(call, *args, **kwargs) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, **kwargs)
    return caught.value


def violations(error: grpc.RpcError) -> dict[str, str]:
    status = rpc_status.from_call(error)
    assert status is not None, "no rich status details"
    found = {}
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            found.update({v.field: v.description for v in bad.field_violations})
    return found


def test_submit_watch_and_read_back_over_grpc(hydra, admin):
    answer = hydra.SubmitJob(
        hydra_pb2.SubmitJobRequest(job=spec("echo one; sleep 1; echo two >&2; exit 4", env={"K": "v"})),
        metadata=admin,
        timeout=30,
    )
    assert answer.job_id and answer.run_id and answer.status in ("queued", "pending") and not answer.replayed

    events = list(hydra.WatchRun(hydra_pb2.WatchRunRequest(run_id=answer.run_id), metadata=admin, timeout=60))
    assert events[0].WhichOneof("event") == "run"  # first the run as it is
    assert events[-1].ended and events[-1].run.status == "failed" and events[-1].run.returncode == 4
    text = {"stdout": "", "stderr": ""}
    for event in events:
        if event.WhichOneof("event") == "output":
            text[event.output.stream] += event.output.text
    assert text == {"stdout": "one\n", "stderr": "two\n"}
    statuses = [e.run.status for e in events if e.WhichOneof("event") == "run"]
    assert statuses[-1] == "failed" and len(statuses) >= 2

    job = hydra.GetJob(hydra_pb2.GetJobRequest(job_id=answer.job_id), metadata=admin, timeout=30)
    assert (job.id, job.status, job.last_run_id, job.source) == (answer.job_id, "failed", answer.run_id, "grpc")
    assert dict(job.env) == {"K": "<redacted>"}  # values are write-only, as in REST
    run = hydra.GetRun(hydra_pb2.GetRunRequest(run_id=answer.run_id), metadata=admin, timeout=30)
    assert (run.job_id, run.stdout, run.worker_id in (GPU.node, CPU.node)) == (answer.job_id, "one\n", True)
    runs = hydra.ListRuns(hydra_pb2.ListRunsRequest(job_id=answer.job_id), metadata=admin, timeout=30)
    assert [r.id for r in runs.runs] == [answer.run_id] and runs.next_cursor == ""
    listed = hydra.ListJobs(hydra_pb2.ListJobsRequest(status="failed", limit=1000), metadata=admin, timeout=30)
    assert answer.job_id in {j.id for j in listed.jobs}
    workers = hydra.ListWorkers(hydra_pb2.ListWorkersRequest(), metadata=admin, timeout=30)
    assert {GPU.node, CPU.node} <= {w.id for w in workers.workers if w.status == "online"}


def test_pages_follow_the_cursor(hydra, admin):
    namespace = unique("pg")
    made = {
        hydra.SubmitJob(
            hydra_pb2.SubmitJobRequest(job=spec("true", namespace=namespace)), metadata=admin, timeout=30
        ).job_id
        for _ in range(3)
    }
    seen, cursor = [], ""
    while True:
        page = hydra.ListJobs(
            hydra_pb2.ListJobsRequest(namespace=namespace, limit=2, cursor=cursor), metadata=admin, timeout=30
        )
        seen += [j.id for j in page.jobs]
        cursor = page.next_cursor
        if not cursor:
            break
    assert sorted(seen) == sorted(made)


def test_cancel_and_retry_over_grpc(hydra, admin):
    answer = hydra.SubmitJob(hydra_pb2.SubmitJobRequest(job=spec("sleep 30")), metadata=admin, timeout=30)
    wait_run(answer.run_id, statuses=("running",))
    cancelled = hydra.CancelRun(hydra_pb2.CancelRunRequest(run_id=answer.run_id), metadata=admin, timeout=30)
    assert cancelled.run.id == answer.run_id and not cancelled.ended  # running: its worker kills it
    assert wait_run(answer.run_id).status == "cancelled"
    again = failure(hydra.CancelRun, hydra_pb2.CancelRunRequest(run_id=answer.run_id), metadata=admin, timeout=30)
    assert again.code() == grpc.StatusCode.FAILED_PRECONDITION

    retried = hydra.RetryRun(hydra_pb2.RetryRunRequest(run_id=answer.run_id), metadata=admin, timeout=30)
    assert retried.job_id == answer.job_id and retried.run_id != answer.run_id
    following = hydra.GetRun(hydra_pb2.GetRunRequest(run_id=retried.run_id), metadata=admin, timeout=30)
    assert following.retry_of == answer.run_id
    hydra.CancelRun(hydra_pb2.CancelRunRequest(run_id=retried.run_id), metadata=admin, timeout=30)
    wait_run(retried.run_id)


def test_errors_are_the_rest_apis_as_grpc_statuses(hydra, admin, api):
    request = hydra_pb2.SubmitJobRequest(job=spec("true"))
    assert failure(hydra.SubmitJob, request, timeout=30).code() == grpc.StatusCode.UNAUTHENTICATED
    forged = (("authorization", "Bearer hydra_nope_nope"),)
    assert failure(hydra.SubmitJob, request, metadata=forged, timeout=30).code() == grpc.StatusCode.UNAUTHENTICATED

    bad = hydra_pb2.SubmitJobRequest(job=spec("true", priority=500, affinity={"os": ["plan9"]}))
    error = failure(hydra.SubmitJob, bad, metadata=admin, timeout=30)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    named = violations(error)
    assert set(named) >= {"job.priority", "job.affinity.os[0]"}, named
    nameless = hydra_pb2.SubmitJobRequest(job=hydra_pb2.JobSpec(command="true"))
    assert "job.name" in violations(failure(hydra.SubmitJob, nameless, metadata=admin, timeout=30))
    limit = failure(hydra.ListJobs, hydra_pb2.ListJobsRequest(limit=5000), metadata=admin, timeout=30)
    assert limit.code() == grpc.StatusCode.INVALID_ARGUMENT and "limit" in violations(limit)
    key = failure(
        hydra.SubmitJob, hydra_pb2.SubmitJobRequest(job=spec("true"), idempotency_key="\n"), metadata=admin, timeout=30
    )
    assert "idempotency_key" in violations(key)

    missing = failure(hydra.GetRun, hydra_pb2.GetRunRequest(run_id="no-such-run"), metadata=admin, timeout=30)
    assert missing.code() == grpc.StatusCode.NOT_FOUND

    # Namespaces: a viewer of one namespace may read there, not submit; elsewhere nothing exists.
    mine, theirs = unique("ns"), unique("ns")
    viewer = token_for(api, {mine: "viewer"})
    refused = failure(
        hydra.SubmitJob, hydra_pb2.SubmitJobRequest(job=spec("true", namespace=mine)), metadata=viewer, timeout=30
    )
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
    other = hydra.SubmitJob(hydra_pb2.SubmitJobRequest(job=spec("true", namespace=theirs)), metadata=admin, timeout=30)
    hidden = failure(hydra.GetJob, hydra_pb2.GetJobRequest(job_id=other.job_id), metadata=viewer, timeout=30)
    assert hidden.code() == grpc.StatusCode.NOT_FOUND
    watched = failure(
        lambda: list(hydra.WatchRun(hydra_pb2.WatchRunRequest(run_id=other.run_id), metadata=viewer, timeout=30))
    )
    assert watched.code() == grpc.StatusCode.NOT_FOUND
    assert other.job_id not in {
        j.id for j in hydra.ListJobs(hydra_pb2.ListJobsRequest(limit=1000), metadata=viewer, timeout=30).jobs
    }


def test_an_idempotency_key_makes_one_job_over_grpc(hydra, admin):
    key = str(uuid.uuid4())
    body = spec("echo once")
    first = hydra.SubmitJob(hydra_pb2.SubmitJobRequest(job=body, idempotency_key=key), metadata=admin, timeout=30)
    again = hydra.SubmitJob(hydra_pb2.SubmitJobRequest(job=body, idempotency_key=key), metadata=admin, timeout=30)
    assert (again.job_id, again.run_id, again.replayed) == (first.job_id, first.run_id, True)
    assert not first.replayed
    other = hydra_pb2.SubmitJobRequest(job=spec("echo another"), idempotency_key=key)
    reused = failure(hydra.SubmitJob, other, metadata=admin, timeout=30)
    assert reused.code() == grpc.StatusCode.FAILED_PRECONDITION and key in reused.details()
    assert JobStore().find(first.job_id) is not None


def test_health_checking_reports_serving(channel):
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "hydra.v1.Hydra"):
        answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    unknown = failure(health.Check, health_pb2.HealthCheckRequest(service="no.Such"), timeout=10)
    assert unknown.code() == grpc.StatusCode.NOT_FOUND


def test_a_client_built_from_reflection_alone_submits_and_reads(stack, admin):
    """What grpcurl does: ask the server for its descriptors, build the messages from them,
    and call by method name - nothing from hydra.v1 is used."""
    with grpc.insecure_channel(stack.grpc_address) as chan:
        database = ProtoReflectionDescriptorDatabase(chan)
        assert "hydra.v1.Hydra" in database.get_services()
        pool = descriptor_pool.DescriptorPool(database)
        service = pool.FindServiceByName("hydra.v1.Hydra")
        assert {m.name for m in service.methods} >= {
            "SubmitJob", "GetJob", "ListJobs", "GetRun", "ListRuns",
            "WatchRun", "CancelRun", "RetryRun", "ListWorkers",
        }  # fmt: skip

        def call(method: str, body: dict, stream: bool = False):
            descriptor = service.methods_by_name[method]
            request_class = message_factory.GetMessageClass(descriptor.input_type)
            response_class = message_factory.GetMessageClass(descriptor.output_type)
            factory = chan.unary_stream if stream else chan.unary_unary
            stub = factory(
                f"/{service.full_name}/{method}",
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=response_class.FromString,
            )
            answer = stub(json_format.ParseDict(body, request_class()), metadata=admin, timeout=60)
            if stream:
                return [json_format.MessageToDict(m, preserving_proto_field_name=True) for m in answer]
            return json_format.MessageToDict(answer, preserving_proto_field_name=True)

        name = unique("reflected")
        job = {"name": name, "command": "echo reflected", "affinity": {"os": ["linux"]}}
        answer = call("SubmitJob", {"job": job})
        events = call("WatchRun", {"run_id": answer["run_id"]}, stream=True)
        assert events[-1]["ended"] and events[-1]["run"]["status"] == "succeeded"
        assert "".join(e["output"]["text"] for e in events if "output" in e) == "reflected\n"
        shown = call("GetJob", {"job_id": answer["job_id"]})
        assert (shown["name"], shown["status"]) == (name, "succeeded")
        with pytest.raises(grpc.RpcError) as caught:
            call("SubmitJob", {"job": {**job, "retries": -1}})
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "job.retries" in violations(caught.value)


def test_concurrent_grpc_submissions_with_one_key_make_one_job(hydra, admin):
    key, body = str(uuid.uuid4()), spec("true")
    answers: list = []
    barrier = threading.Barrier(8)

    def send() -> None:
        barrier.wait()
        try:
            answers.append(
                hydra.SubmitJob(hydra_pb2.SubmitJobRequest(job=body, idempotency_key=key), metadata=admin, timeout=30)
            )
        except grpc.RpcError as exc:  # ABORTED: the first is still being served (send it again)
            answers.append(exc)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    made = [a for a in answers if not isinstance(a, grpc.RpcError)]
    assert all(a.code() == grpc.StatusCode.ABORTED for a in answers if isinstance(a, grpc.RpcError))
    assert len({(a.job_id, a.run_id) for a in made}) == 1 and sum(not a.replayed for a in made) == 1
    assert JobStore()._collection.count_documents({"name": body.name}) == 1


def test_a_stored_record_that_cannot_be_shown_is_skipped_in_lists_and_refused_alone(hydra, admin):
    namespace = unique("render")
    good = hydra.SubmitJob(
        hydra_pb2.SubmitJobRequest(job=spec("true", namespace=namespace, schedule="*/5 * * * *")),
        metadata=admin,
        timeout=30,
    ).job_id
    collection = get_database()[names.JOB_DEFINITIONS]
    broken = dict(collection.find_one({"_id": good}), _id=unique("broken"), timeout="soon")  # as stored long ago
    collection.insert_one(broken)
    Reindexer(RunStore()).file_jobs([Job.from_doc(broken)])  # as the indexes' rebuild files it after an upgrade
    listed = hydra.ListJobs(hydra_pb2.ListJobsRequest(namespace=namespace, limit=100), metadata=admin, timeout=30)
    assert [j.id for j in listed.jobs] == [good]
    assert collection.find_one({"_id": broken["_id"]})["unrenderable"]  # flagged, as REST flags it
    alone = failure(hydra.GetJob, hydra_pb2.GetJobRequest(job_id=broken["_id"]), metadata=admin, timeout=30)
    assert alone.code() == grpc.StatusCode.FAILED_PRECONDITION and "flagged" in alone.details()


def test_mongodb_down_is_unavailable_with_when_to_retry_and_health_says_not_serving(stack, hydra, admin, channel):
    health = health_pb2_grpc.HealthStub(channel)
    hydra.ListJobs(hydra_pb2.ListJobsRequest(limit=1), metadata=admin, timeout=30)  # the token is known
    stack.stop("mongo")
    try:
        down = failure(hydra.SubmitJob, hydra_pb2.SubmitJobRequest(job=spec("true")), metadata=admin, timeout=60)
        assert down.code() == grpc.StatusCode.UNAVAILABLE and "mongodb" in down.details()
        status = rpc_status.from_call(down)
        assert status is not None and any(d.Is(error_details_pb2.RetryInfo.DESCRIPTOR) for d in status.details)
        wait_until(
            lambda: (
                health.Check(health_pb2.HealthCheckRequest(), timeout=10).status
                == health_pb2.HealthCheckResponse.NOT_SERVING
            ),
            30,
            message="gRPC health NOT_SERVING",
        )
    finally:
        stack.start_mongo()
    wait_until(
        lambda: (
            health.Check(health_pb2.HealthCheckRequest(), timeout=10).status == health_pb2.HealthCheckResponse.SERVING
        ),
        60,
        message="gRPC health SERVING again",
    )
    assert hydra.SubmitJob(hydra_pb2.SubmitJobRequest(job=spec("true")), metadata=admin, timeout=30).job_id

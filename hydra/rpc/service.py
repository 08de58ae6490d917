"""``hydra.v1.Hydra``: the gRPC calls, each a thin mapping onto ``hydra.control`` like the REST
API's views (``api/``): the same verbs, readers, schemas and errors.

Every call is authenticated from its ``authorization: Bearer <token>`` metadata
(``hydra.auth.bearer.caller``: an API token or an OIDC JWT; the scrape token is refused);
who the caller is never comes from a request. What it may see and do is decided by the
verbs and ``hydra.control.access.Reader``: something in a namespace it may not read is
NOT_FOUND, as if it did not exist.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from marshmallow import Schema, ValidationError

from hydra.auth import bearer
from hydra.control import drain, fanout, related, submission, verbs
from hydra.control.access import Reader
from hydra.control.output import follow_output
from hydra.control.rendering import render_each, render_one
from hydra.errors import InvalidJob
from hydra.model.access import Principal
from hydra.model.idempotency import IdempotencyKey
from hydra.model.queries import JobListArgs, OutputArgs, RunListArgs
from hydra.model.spec import load_job
from hydra.rpc import convert, errors
from hydra.rpc.errors import InvalidArgument
from hydra.settings import get_settings
from hydra.v1 import hydra_pb2, hydra_pb2_grpc

#: How often a watch with nothing new checks that its client is still there (seconds). The
#: output and status changes come from this process's one feed per followed run
#: (hydra.control.follow).
WATCH_WAIT = 1.0

_KEY = Schema.from_dict({"idempotency_key": IdempotencyKey()})()


def principal_of(context: grpc.ServicerContext) -> Principal:
    """The caller, from the call's ``authorization`` metadata."""
    metadata = {key.lower(): value for key, value in context.invocation_metadata() or ()}
    header = metadata.get("authorization")
    return bearer.caller(header if isinstance(header, str) else None, settings=get_settings())


def unary(method: Callable[..., Any]) -> Callable[..., Any]:
    """A unary call: authenticated, and any error answered as its gRPC status."""

    @functools.wraps(method)
    def call(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, principal_of(context))
        except Exception as exc:  # noqa: BLE001 - every error becomes a status (INTERNAL when unknown)
            errors.abort(context, exc)

    return call


def streaming(method: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
    """A server-streaming call: authenticated, and any error ends the stream with its status."""

    @functools.wraps(method)
    def call(self: Any, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        try:
            yield from method(self, request, principal_of(context), context)
        except Exception as exc:  # noqa: BLE001
            errors.abort(context, exc)

    return call


def required(value: str, name: str) -> str:
    if not value:
        raise InvalidArgument({name: ["required"]})
    return value


def load(schema: Schema, values: dict) -> dict:
    """Query arguments loaded by the schema REST uses; InvalidArgument naming the field."""
    try:
        return schema.load(values)
    except ValidationError as exc:
        raise InvalidArgument(exc.normalized_messages()) from None


_job_args, _run_args, _output_args = JobListArgs(), RunListArgs(), OutputArgs()


class HydraService(hydra_pb2_grpc.HydraServicer):
    @unary
    def SubmitJob(self, request: hydra_pb2.SubmitJobRequest, actor: Principal) -> hydra_pb2.SubmitJobResponse:
        key = load(_KEY, {"idempotency_key": request.idempotency_key} if request.idempotency_key else {})
        try:
            spec = load_job(convert.job_body(request.job))
            answer = submission.submit(spec, actor=actor, idempotency_key=key["idempotency_key"], source="grpc")
        except InvalidJob as exc:  # the job body's fields, as REST names them, under `job`
            raise InvalidArgument(exc.errors, prefix="job") from None
        return convert.accepted_message(answer)

    @unary
    def GetJob(self, request: hydra_pb2.GetJobRequest, actor: Principal) -> hydra_pb2.Job:
        return render_one(Reader(actor).job(required(request.job_id, "job_id")), convert.job_message)

    @unary
    def ListJobs(self, request: hydra_pb2.ListJobsRequest, actor: Principal) -> hydra_pb2.ListJobsResponse:
        args = load(_job_args, convert.as_dict(request))
        jobs, cursor = Reader(actor).jobs_page(
            status=args["status"],
            user=args["user"],
            namespace=args["namespace"],
            limit=args["limit"],
            cursor=args["cursor"],
        )
        shown, _skipped = render_each(jobs, convert.job_message)  # a record that cannot be shown is flagged
        return hydra_pb2.ListJobsResponse(jobs=shown, next_cursor=cursor or "")

    @unary
    def GetRun(self, request: hydra_pb2.GetRunRequest, actor: Principal) -> hydra_pb2.Run:
        return render_one(Reader(actor).run_shown(required(request.run_id, "run_id")), convert.run_message)

    @unary
    def ListRuns(self, request: hydra_pb2.ListRunsRequest, actor: Principal) -> hydra_pb2.ListRunsResponse:
        job_id = required(request.job_id, "job_id")
        args = load(_run_args, {k: v for k, v in convert.as_dict(request).items() if k != "job_id"})
        runs, cursor = Reader(actor).runs_of(job_id, limit=args["limit"], cursor=args["cursor"])
        shown, _skipped = render_each(runs, convert.run_message)
        return hydra_pb2.ListRunsResponse(runs=shown, next_cursor=cursor or "")

    @streaming
    def WatchRun(
        self, request: hydra_pb2.WatchRunRequest, actor: Principal, context: grpc.ServicerContext
    ) -> Iterator[hydra_pb2.RunEvent]:
        run_id = required(request.run_id, "run_id")
        args = load(_output_args, {"after": request.after} if request.HasField("after") else {})
        reader = Reader(actor)
        run = reader.run(run_id)
        yield hydra_pb2.RunEvent(run=convert.run_message(run))
        status = run.status
        for page in follow_output(reader, run_id, args["after"], keepalive=WATCH_WAIT):
            if not context.is_active():
                return
            if page is None:
                continue
            if page["status"] != status and not page["ended"]:
                status = page["status"]
                yield hydra_pb2.RunEvent(run=convert.run_message(reader.run(run_id)))
            for chunk in page["chunks"]:
                yield hydra_pb2.RunEvent(output=convert.chunk_message(chunk))
            if page["ended"]:
                yield hydra_pb2.RunEvent(run=convert.run_message(reader.run(run_id)), ended=True)
                return

    @unary
    def CancelRun(self, request: hydra_pb2.CancelRunRequest, actor: Principal) -> hydra_pb2.CancelRunResponse:
        run, ended = verbs.cancel(required(request.run_id, "run_id"), actor=actor)
        return hydra_pb2.CancelRunResponse(run=convert.run_message(run), ended=ended)

    @unary
    def RetryRun(self, request: hydra_pb2.RetryRunRequest, actor: Principal) -> hydra_pb2.SubmitJobResponse:
        job_id, placed = verbs.retry(required(request.run_id, "run_id"), actor=actor)
        return convert.accepted_message(submission.accepted(job_id, placed))

    @unary
    def TriggerJob(self, request: hydra_pb2.TriggerJobRequest, actor: Principal) -> hydra_pb2.SubmitJobResponse:
        job_id = required(request.job_id, "job_id")
        placed = verbs.trigger(job_id, actor=actor, params=dict(request.params))  # bad values: params.<NAME>
        return convert.accepted_message(submission.accepted(job_id, placed))

    @unary
    def ListWorkers(self, request: hydra_pb2.ListWorkersRequest, actor: Principal) -> hydra_pb2.ListWorkersResponse:
        workers = Reader(actor).workers_with_load()
        return hydra_pb2.ListWorkersResponse(workers=[convert.worker_message(w) for w in workers])

    @unary
    def DrainWorker(self, request: hydra_pb2.DrainWorkerRequest, actor: Principal) -> hydra_pb2.WorkerDrain:
        reason = request.reason if request.HasField("reason") else None
        found = drain.drain(actor, required(request.worker_id, "worker_id"), reason=reason)
        return convert.drain_message(found)

    @unary
    def UndrainWorker(
        self, request: hydra_pb2.UndrainWorkerRequest, actor: Principal
    ) -> hydra_pb2.UndrainWorkerResponse:
        drain.undrain(actor, required(request.worker_id, "worker_id"))
        return hydra_pb2.UndrainWorkerResponse()

    @unary
    def GetJobFanout(self, request: hydra_pb2.GetJobFanoutRequest, actor: Principal) -> hydra_pb2.Fanout:
        wanted = request.fanout_id if request.HasField("fanout_id") else None
        found = fanout.summary(actor, required(request.job_id, "job_id"), wanted)
        return convert.fanout_message(found)

    @unary
    def GetJobDependencies(self, request: hydra_pb2.GetJobRequest, actor: Principal) -> hydra_pb2.JobDependencies:
        found = related.dependencies(actor, required(request.job_id, "job_id"))
        return convert.message(hydra_pb2.JobDependencies, related.as_dict(found))

    @unary
    def GetRunFlow(self, request: hydra_pb2.GetRunRequest, actor: Principal) -> hydra_pb2.RunFlow:
        found = related.flow(actor, required(request.run_id, "run_id"))
        return convert.message(hydra_pb2.RunFlow, related.as_dict(found))

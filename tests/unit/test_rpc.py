"""The gRPC layer's pure parts: errors as statuses with their details, records as messages
(showing nothing REST does not), and the generated code being what `make proto` makes."""

from __future__ import annotations

import filecmp
import importlib.util
from datetime import UTC, datetime
from pathlib import Path

import pytest
from google.rpc import code_pb2, error_details_pb2

from api.schemas.jobs import JobCreatedSchema, JobSchema
from api.schemas.runs import RunSchema
from api.schemas.workers import WorkerSchema
from hydra.control.submission import Accepted
from hydra.errors import (
    Conflict,
    Forbidden,
    InvalidJob,
    KeyInFlight,
    KeyReused,
    NotAuthenticated,
    NotFound,
    StoreUnavailable,
)
from hydra.model.records import Job
from hydra.rpc import convert
from hydra.rpc.errors import InvalidArgument, status_of
from hydra.v1 import hydra_pb2

REPO = Path(__file__).resolve().parents[2]


def details(status, cls):
    found = []
    for item in status.details:
        if item.Is(cls.DESCRIPTOR):
            detail = cls()
            item.Unpack(detail)
            found.append(detail)
    return found


@pytest.mark.parametrize(
    ("error", "code", "reason"),
    [
        (NotAuthenticated("no token"), code_pb2.UNAUTHENTICATED, "NOT_AUTHENTICATED"),
        (Forbidden("viewer"), code_pb2.PERMISSION_DENIED, "FORBIDDEN"),
        (NotFound("run", "r1"), code_pb2.NOT_FOUND, "NOT_FOUND"),
        (KeyReused("other body"), code_pb2.FAILED_PRECONDITION, "KEY_REUSED"),
        (KeyInFlight("again"), code_pb2.ABORTED, "KEY_IN_FLIGHT"),
        (Conflict("ended"), code_pb2.FAILED_PRECONDITION, "CONFLICT"),
        (StoreUnavailable("down"), code_pb2.UNAVAILABLE, "STORE_UNAVAILABLE"),
    ],
)
def test_each_error_has_its_code_and_names_itself(error, code, reason):
    status = status_of(error)
    assert status.code == code
    [info] = details(status, error_details_pb2.ErrorInfo)
    assert (info.reason, info.domain) == (reason, "hydra.v1")


def test_unavailable_says_when_to_try_again():
    [retry] = details(status_of(StoreUnavailable("mongo down")), error_details_pb2.RetryInfo)
    assert retry.retry_delay.seconds == 5


def test_invalid_fields_are_bad_request_violations_named_by_their_path():
    error = InvalidArgument({"affinity": {"tags": {0: ["not a tag"]}}, "name": ["required"]}, prefix="job")
    status = status_of(error)
    assert status.code == code_pb2.INVALID_ARGUMENT
    [bad] = details(status, error_details_pb2.BadRequest)
    assert {(v.field, v.description) for v in bad.field_violations} == {
        ("job.affinity.tags[0]", "not a tag"),
        ("job.name", "required"),
    }
    [bad] = details(status_of(InvalidJob({"_schema": ["command or args"]})), error_details_pb2.BadRequest)
    assert bad.field_violations[0].description == "command or args"


def test_an_unknown_error_is_internal_and_says_nothing_of_itself():
    status = status_of(RuntimeError("secret detail"))
    assert status.code == code_pb2.INTERNAL and "secret" not in status.message and not status.details


def _fields(message_class) -> set[str]:
    return {f.name for f in message_class.DESCRIPTOR.fields}


@pytest.mark.parametrize(
    ("message_class", "schema"),
    [
        (hydra_pb2.Job, JobSchema),
        (hydra_pb2.Run, RunSchema),
        (hydra_pb2.Worker, WorkerSchema),
        (hydra_pb2.SubmitJobResponse, JobCreatedSchema),
    ],
)
def test_messages_show_nothing_rest_does_not(message_class, schema):
    shown = set(schema().fields) | {"replayed"}
    assert _fields(message_class) <= shown, _fields(message_class) - shown


def test_a_jobs_environment_values_never_reach_a_message():
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    job = Job.from_doc(
        {
            "_id": "j1",
            "name": "n",
            "user": "u",
            "namespace": "default",
            "command": "make",
            "env": {"TOKEN": "s3cret"},
            "created_at": now,
        }
    )
    message = convert.job_message(job)
    assert dict(message.env) == {"TOKEN": "<redacted>"} and "s3cret" not in str(message)
    assert message.created_at.ToDatetime(tzinfo=UTC) == now
    hook = Job.from_doc(
        {
            "_id": "j2",
            "executor": "http",
            "http": {"url": "https://x.example/", "headers": {"Authorization": "Bearer t0k"}, "body": "pw=s3cret"},
        }
    )
    message = convert.job_message(hook)
    assert dict(message.http.headers) == {"Authorization": "<redacted>"} and message.http.body.string_value == (
        "<redacted>"
    )
    assert "t0k" not in str(message) and "s3cret" not in str(message) and message.http.url == "https://x.example/"


def test_an_answer_converts_with_its_times():
    at = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    message = convert.accepted_message(Accepted("j", None, "scheduled", scheduled_at=at, replayed=True))
    assert (message.job_id, message.run_id, message.status, message.replayed) == ("j", "", "scheduled", True)
    assert message.scheduled_at.ToDatetime(tzinfo=UTC) == at


def test_a_request_becomes_the_rest_body_with_only_what_was_set():
    spec = hydra_pb2.JobSpec(name="n", command="make", retries=0, affinity=hydra_pb2.Affinity(os=["linux"]))
    assert convert.job_body(spec) == {"name": "n", "command": "make", "retries": 0, "affinity": {"os": ["linux"]}}


def test_the_committed_code_is_what_make_proto_generates(tmp_path):
    spec = importlib.util.spec_from_file_location("generate", REPO / "proto" / "generate.py")
    assert spec is not None and spec.loader is not None
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    made = generate.generate(tmp_path)
    for path in made:
        committed = REPO / path.relative_to(tmp_path)
        assert filecmp.cmp(path, committed, shallow=False), f"{committed} is stale: run make proto"

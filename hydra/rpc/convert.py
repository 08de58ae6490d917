"""Between protobuf messages and what ``hydra.control`` takes and gives.

In: a ``JobSpec`` becomes the dict a REST client would send (the proto's fields are the body's,
by name; unset fields are left out), and list requests the query arguments; the shared
schemas (``hydra.model.spec``, ``hydra.model.queries``) then validate them as they do for REST.

Out: a record becomes a message field by field, by name: the proto says what is shown, and
``tests/unit/test_rpc_convert.py`` checks it shows nothing REST does not. A job's
write-only values (environment values, a webhook's header values and body, notification
targets' secrets, a run's secret parameter values) are redacted (``hydra.model.redaction``, ``hydra.model.params``).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import Message

from hydra.control.submission import Accepted
from hydra.model.fanout import Summary
from hydra.model.notify import redacted_targets
from hydra.model.records import Chunk, Job, Run
from hydra.model.redaction import redacted, redacted_http
from hydra.store.drains import Drain
from hydra.store.workers import WorkerView
from hydra.v1 import hydra_pb2

M = TypeVar("M", bound=Message)


def as_dict(message: Message) -> dict:
    """The fields of ``message`` that were set, by their proto names (JSON values: times as
    RFC 3339 text, ``google.protobuf.Value`` as plain JSON)."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def job_body(spec: hydra_pb2.JobSpec) -> dict:
    """A ``JobSpec`` as a REST job body (for ``hydra.model.spec.load_job``)."""
    return as_dict(spec)


def _plain(value: Any) -> Any:
    """A record's value as JSON for ``ParseDict``: times in UTC with a Z, Nones left out."""
    if isinstance(value, datetime):
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items() if item is not None}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def message(cls: type[M], values: dict) -> M:
    """A ``cls`` message from ``values``: each field the message has, taken by name (others
    are not shown)."""
    return json_format.ParseDict(_plain(values), cls(), ignore_unknown_fields=True)


def _fields(record: Any) -> dict:
    return {item.name: getattr(record, item.name) for item in dataclasses.fields(record)}


def job_message(job: Job) -> hydra_pb2.Job:
    values = _fields(job)
    values["env"] = redacted(job.env)
    values["http"] = redacted_http(job.http)
    values["notify"] = redacted_targets(job.notify)
    values["next_run_at"] = job.next_run_at()
    return message(hydra_pb2.Job, values)


def run_message(run: Run) -> hydra_pb2.Run:
    values = _fields(run)
    values["params"] = run.shown_params  # secret values are write-only
    values["notifications"] = getattr(run, "notifications", None)  # shown redacted (Reader.run_shown)
    return message(hydra_pb2.Run, values)


def worker_message(worker: WorkerView) -> hydra_pb2.Worker:
    return message(hydra_pb2.Worker, _fields(worker))


def drain_message(drain: Drain) -> hydra_pb2.WorkerDrain:
    return message(hydra_pb2.WorkerDrain, _fields(drain))


def fanout_message(summary: Summary) -> hydra_pb2.Fanout:
    values = dataclasses.asdict(summary)
    values.update(done=summary.done, ok=summary.ok)
    return message(hydra_pb2.Fanout, values)


def chunk_message(chunk: Chunk) -> hydra_pb2.OutputChunk:
    return message(hydra_pb2.OutputChunk, _fields(chunk))


def accepted_message(answer: Accepted) -> hydra_pb2.SubmitJobResponse:
    return message(hydra_pb2.SubmitJobResponse, dataclasses.asdict(answer))

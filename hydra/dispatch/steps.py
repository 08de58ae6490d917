"""The steps of dispatching an attempt that are plain functions of its message
(``hydra.dispatch.pipeline`` runs them, with placing, recording and sending):

* :func:`build_message` - the kwargs of the message that runs an attempt of a stored job;
* :func:`validate` - a message given by a Python user, validated like a REST job body;
* :func:`shadow_name` and :func:`summary` - what Flower, Celery's logs and events show of it;
* :func:`unsent` - where an attempt is when its message could not be sent (pending).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hydra.errors import InvalidJob
from hydra.model.message import load_message, message_kwargs
from hydra.model.params import still_declared
from hydra.model.records import Dispatched, Job
from hydra.model.status import RunStatus


def build_message(job: Job, attempt: int, values: Mapping[str, Any] | None = None) -> dict:
    """The kwargs of the message that runs attempt ``attempt`` of ``job`` (``values``: of its parameters)."""
    return message_kwargs(job.spec(), job_id=job.id, attempt=attempt, values=still_declared(job.params, values))


def validate(kwargs: Any, args: Any = ()) -> dict:
    """The message's kwargs, validated and normalized like a REST job body; raises InvalidJob."""
    if args:
        raise InvalidJob({"args": ["hydra.run_command takes keyword arguments only; use apply_async(kwargs={...})"]})
    return load_message(kwargs or {})


def shadow_name(message: dict) -> str:
    """The name Flower's task list, Celery's logs and its events show for an attempt
    (Celery's ``shadow``): ``hydra: nightly-build #2``. The message's real task name stays
    ``hydra.run_command``, which is what routing, signing and the worker's checks use."""
    return f"hydra: {message.get('name') or '?'} #{message.get('attempt', 1)}"


def summary(message: dict) -> str:
    """What logs, events and Flower show of a message (never its environment's values)."""
    command = message.get("command") or " ".join(message.get("args") or [])
    if message.get("executor") == "http":
        command = "{method} {url}".format(**(message.get("http") or {"method": "?", "url": "?"}))
    if len(command) > 160:
        command = command[:157] + "..."
    return repr(
        {
            "job": message.get("name"),
            "user": message.get("user"),
            "command": command,
            "attempt": message.get("attempt", 1),
        }
    )


def unsent(run_id: str, exc: Exception) -> Dispatched:
    """Where an attempt is when its message could not be sent: pending, for the controller."""
    return Dispatched(
        run_id,
        RunStatus.PENDING,
        reason=f"broker unavailable ({exc.__class__.__name__}); will be published when it is back",
    )

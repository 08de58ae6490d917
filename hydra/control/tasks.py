"""Celery-style task submissions through the API (``POST /tasks/``, ``POST /tasks/chords``):
what a Python process configured as a client - an API URL and a token, no signing key, no
store credentials - sends ``run_command.apply_async`` and Celery's canvas through
(``hydra.celery.remote``).

The server runs the same publish path as a process holding the key (``Pipeline.accept``,
``hydra.dispatch.canvas``), as the token's principal (``hydra.dispatch.submissions``): the
task and every step of its canvas must be ones it may submit (its role in their namespaces,
the user they run as), quotas apply as for any run, and each is audited as that user. Only
the options that describe the task and its canvas are taken; where it goes is the router's
(``queue``, ``routing_key``, ``exchange`` are refused), and messages are JSON.
"""

from __future__ import annotations

from typing import Any

from hydra.celery.app import current_pipeline
from hydra.dispatch import continuation
from hydra.dispatch.canvas import Canvas, register_chord
from hydra.dispatch.pipeline import Pipeline
from hydra.dispatch.submissions import API_OPTIONS, Submitter, audit_submission
from hydra.errors import HydraError, InvalidJob
from hydra.model.access import Principal
from hydra.store.jobs import new_id


def submit(kwargs: Any, options: dict, *, actor: Principal, pipeline: Pipeline | None = None) -> dict:
    """Accept one task as ``actor``: ``{"run_id", "job_id", "status", "worker_id", "pending_reason"}``."""
    pipeline = current_pipeline(pipeline)
    refused = sorted(set(options) - API_OPTIONS)
    if refused:
        raise InvalidJob(
            {
                f"options.{name}": ["not taken through the API (the router places runs; messages are JSON)"]
                for name in refused
            }
        )
    try:
        result = pipeline.accept((), kwargs, dict(options), submitter=Submitter(actor))
    except HydraError:
        continuation.refused_part(options, pipeline)  # a chord's header task: its part ends refused
        raise
    run = pipeline.runs.get(result.id)
    return {
        "run_id": run.id,
        "job_id": run.job_id,
        "status": run.status,
        "worker_id": run.worker_id,
        "pending_reason": run.pending_reason,
    }


def chord(group_id: str, parts: list[str], body: Any, *, actor: Principal, pipeline: Pipeline | None = None) -> dict:
    """Publish a chord as ``actor`` before its header tasks are sent (Celery's ``apply_chord``):
    ``{"group_id", "body_run_id"}``."""
    pipeline = current_pipeline(pipeline)
    submitter = Submitter(actor)
    canvas = Canvas(lambda given: pipeline.step_message(given, submitter), new_id, pipeline.app)
    step = register_chord(pipeline.flows, group_id, parts, body, canvas)
    audit_submission(submitter, step.run_id, step.kwargs, canvas.steps, parent=group_id)
    return {"group_id": group_id, "body_run_id": step.run_id}

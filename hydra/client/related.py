"""The client's calls about what jobs and runs lead to: a job's dependencies, a run's flow,
and Celery-style task submissions (``POST /tasks/``, what a Python process configured as a
client sends ``apply_async`` through)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hydra.client.operations import operation, segment


class Relations:
    """Mixed into :class:`hydra.client.Client` (which gives ``request``)."""

    request: Callable[..., Any]  # the Client's

    @operation("GET /jobs/{job_id}/dependencies")
    def job_dependencies(self, job_id: str) -> dict:
        """``{"job_id", "upstream": [...], "downstream": [...]}``: the jobs that start this one,
        and those it starts (each ``{"id", "via", "state", "name", "namespace", "status"}``)."""
        return self.request("GET", f"/jobs/{segment(job_id)}/dependencies")

    @operation("GET /runs/{run_id}/flow")
    def run_flow(self, run_id: str) -> dict:
        """``{"run_id", "started_by", "started", "next", "first"}``: what started the run, and
        what its end started or left not run."""
        return self.request("GET", f"/runs/{segment(run_id)}/flow")

    @operation("POST /tasks/")
    def submit_task(self, kwargs: dict, **options: Any) -> dict:
        """Submit a ``hydra.run_command`` task as Celery's ``apply_async`` would, with its
        canvas in ``options`` (``link``, ``link_error``, ``chain``, ...: signatures in their
        dict form); ``{"run_id", "job_id", "status", ...}``. (``run_command.apply_async`` in a
        process with ``HYDRA_TOKEN`` and no signing key calls this for you.)"""
        return self.request("POST", "/tasks/", json={"kwargs": kwargs, "options": options}, ok=(201,))

    @operation("POST /tasks/chords")
    def publish_chord(self, group_id: str, parts: list[str], body: dict) -> dict:
        """Publish a chord before its header tasks are submitted: ``{"group_id", "body_run_id"}``."""
        return self.request(
            "POST", "/tasks/chords", json={"group_id": group_id, "parts": parts, "body": body}, ok=(201,)
        )

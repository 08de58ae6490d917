"""The client's job files (``hydra.model.jobfile``): a job, or several, as a file; applying
a file (``POST /jobs/apply``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from hydra.client.operations import operation, segment
from hydra.model.jobfile import exported, supply


class JobFiles:
    """Mixed into :class:`hydra.client.Client` (which gives ``request`` and ``_exchange``)."""

    request: Callable[..., Any]  # the Client's
    _exchange: Callable[..., Any]

    def job_file(self, job_id: str) -> dict:
        """The job file of a job: every field a user can set, write-only values as ``{"secret": true}``."""
        return exported(self.request("GET", f"/jobs/{segment(job_id)}"))

    def job_files(
        self, *, namespace: str | None = None, user: str | None = None, status: str | None = None
    ) -> list[dict]:
        """The job files of every job you may read that matches (oldest first, so a file
        applied elsewhere makes the jobs in the same order)."""
        params: dict[str, Any] = {"namespace": namespace, "user": user, "status": status, "limit": 500}
        found: list[dict] = []
        while True:
            page, headers = self._exchange("GET", "/jobs/", params={k: v for k, v in params.items() if v})
            found += page
            params["cursor"] = headers.get("X-Next-Cursor")
            if not params["cursor"]:
                break
        return [exported(job) for job in reversed(found)]

    @operation("POST /jobs/apply")
    def apply_jobs(
        self,
        jobs: list[dict],
        *,
        dry_run: bool = False,
        secrets: Mapping[str, Mapping[str, Any]] | None = None,
        shell_env: Mapping[str, str] | None = None,
    ) -> list[dict]:
        """Apply a job file's jobs: each ``{"name", "namespace", "action", "id", "changes",
        "run_id"}``, ``action`` created, updated or unchanged (what would be done, with
        ``dry_run``). References to write-only values (``{"secret": true}``) take the values of
        ``secrets`` (by job name: ``{"env": {...}, "headers": {...}, "body": ...}``), then, for
        ``env``, of ``shell_env``; the others keep what the job stored."""
        bodies = [
            supply(job, (secrets or {}).get(job.get("name"), {}), shell_env) if isinstance(job, dict) else job
            for job in jobs
        ]
        return self.request("POST", "/jobs/apply", json={"jobs": bodies, "dry_run": dry_run})

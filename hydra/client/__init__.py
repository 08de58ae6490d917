"""Python client of Hydra's REST API.

::

    from hydra.client import Client

    hydra = Client()                       # HYDRA_API_URL, default http://127.0.0.1:8000
    sub = hydra.submit("echo hello", user="rich", os="linux", tags=["gpu"], timeout=60)
    for chunk in hydra.follow(sub.run_id):  # live output until the run ends
        print(chunk.text, end="")
    run = hydra.wait(sub.run_id, timeout=120)
    print(run.status, run.returncode)

Every operation of the REST API has a typed method (``OPERATIONS`` maps each ``METHOD
/path`` of the OpenAPI description to its method; a test checks none is missing).
Results are dataclasses (``hydra.client.records``: :class:`Submitted`, :class:`Job`,
:class:`Run`, :class:`Worker`, :class:`Task`, :class:`Chunk`, :class:`OutputPage`); each
keeps the whole JSON answer in ``raw``. Listings return a :class:`Page` (a list with
``next_cursor``). The methods are the operations; the HTTP transport under them (the session,
the token, one retry on a dropped connection, answers mapped to results or errors) is
``hydra.client.transport``.
Every failure raises a :class:`ClientError` that is also the ``hydra.errors`` class of the
answer (``except hydra.errors.NotFound`` works here as on the server; ``hydra.client.errors``)::

    ClientError                (each also the hydra.errors class of the same name)
     +-- Unavailable      the API cannot be reached, or answered 503 (MongoDB/Redis down)
     +-- InvalidRequest   400/422; ``errors`` names each bad field, e.g. {"json": {"user": [...]}}
     +-- NotAuthenticated 401
     +-- Forbidden        403
     +-- NotFound         404
     +-- Conflict         409 (e.g. cancelling a run that already ended)
     +-- ServerError      any other error answer
     +-- WaitTimeout      :meth:`Client.wait` / :meth:`Client.follow` ran out of time
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import Any

from hydra.client.errors import (
    ClientError,
    Conflict,
    Forbidden,
    InvalidRequest,
    NotAuthenticated,
    NotFound,
    ServerError,
    Unavailable,
    WaitTimeout,
)
from hydra.client.export import Exports
from hydra.client.fanout import Fanouts
from hydra.client.jobfiles import JobFiles
from hydra.client.operations import OPERATIONS, operation
from hydra.client.operations import segment as _segment
from hydra.client.output import OutputReading, first_lines, last_lines
from hydra.client.records import (
    AuditEvent,
    Chunk,
    Fanout,
    Job,
    OutputPage,
    Page,
    Run,
    Submitted,
    Task,
    Token,
    Worker,
)
from hydra.client.related import Relations
from hydra.client.transport import Transport

__all__ = [
    "OPERATIONS",
    "AuditEvent",
    "Chunk",
    "Client",
    "ClientError",
    "Conflict",
    "Fanout",
    "Forbidden",
    "InvalidRequest",
    "Job",
    "NotAuthenticated",
    "NotFound",
    "OutputPage",
    "Page",
    "Run",
    "ServerError",
    "Submitted",
    "Task",
    "Token",
    "Unavailable",
    "WaitTimeout",
    "Worker",
    "first_lines",
    "last_lines",
]

# --- the client ---------------------------------------------------------------------------------------

_NAME_BAD = re.compile(r"[^A-Za-z0-9 _.:@/+-]+")


def default_name(command: str | None, args: list[str] | None) -> str:
    """A job name made from the command: ``"echo hello | wc"`` -> ``"echo hello wc"``."""
    text = command or " ".join(args or []) or "command"
    name = " ".join(_NAME_BAD.sub(" ", text).split())[:80].strip(" _.:@/+-")
    return name or "command"


class Client(Transport, OutputReading, Relations, Fanouts, Exports, JobFiles):
    """Talks to one Hydra API (``url``, default ``HYDRA_API_URL``) with an API token (``token``,
    default :func:`hydra.client.transport.find_token`): the typed operations, sent through
    :class:`~hydra.client.transport.Transport`. The methods that read output are
    ``hydra.client.output``'s."""

    # -- jobs ------------------------------------------------------------------------------
    @operation("POST /jobs/")
    def submit(
        self,
        command: str | None = None,
        *,
        name: str | None = None,
        user: str | None = None,
        namespace: str | None = None,
        os: str | list[str] | None = None,
        tags: list[str] | None = None,
        allowed_users: list[str] | None = None,
        shell: str | None = None,
        timeout: float | None = None,
        retries: int | None = None,
        priority: int | None = None,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        args: list[str] | None = None,
        schedule: str | None = None,
        timezone: str | None = None,
        scheduled_at: datetime | str | None = None,
        http: dict | None = None,
        monitor: bool | None = None,
        idempotency_key: str | None = None,
        memory_mb: int | None = None,
        cpu: float | None = None,
        max_concurrent: int | None = None,
        **fields_: Any,
    ) -> Submitted:
        """Submit a job (``POST /jobs/``): a shell ``command``, an argument list ``args`` (run
        without a shell), or an ``http`` request ({"url", "method", "headers", "body"}: a
        webhook). ``schedule`` is a cron expression (in ``timezone``), ``scheduled_at`` a
        one-off time. ``monitor=True`` counts its ended runs per job on ``/metrics``.
        ``name`` defaults to one made from the command, ``user`` to the token's; any further
        job-body field can be passed by keyword.

        With ``idempotency_key``, sending the same submission again (within 24 h) answers
        with the first one's job (``replayed`` set) instead of making another: safe to retry.

        ``memory_mb`` and ``cpu`` (cores, fractions allowed) limit each run (``resources``);
        ``max_concurrent`` is how many of its runs may be in flight at once."""
        if memory_mb is not None or cpu is not None:
            limits = {"memory_mb": memory_mb, "cpu": cpu}
            fields_["resources"] = {key: value for key, value in limits.items() if value is not None}
        affinity: dict = {}
        if os:
            affinity["os"] = [os] if isinstance(os, str) else list(os)
        if tags:
            affinity["tags"] = list(tags)
        if allowed_users:
            affinity["allowed_users"] = list(allowed_users)
        if isinstance(scheduled_at, datetime):
            scheduled_at = scheduled_at.isoformat()
        if http is not None:
            fields_.setdefault("executor", "http")
        body = {
            "name": name or default_name(command or (http or {}).get("url"), args),
            "user": user,
            "namespace": namespace,
            "affinity": affinity,
            "command": command,
            "args": args,
            "shell": shell,
            "timeout": timeout,
            "retries": retries,
            "priority": priority,
            "env": env,
            "cwd": cwd,
            "schedule": schedule,
            "timezone": timezone,
            "scheduled_at": scheduled_at,
            "http": http,
            "max_concurrent": max_concurrent,
            "monitor": monitor,
            **fields_,
        }
        body = {key: value for key, value in body.items() if value is not None}
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        answer, got = self._exchange("POST", "/jobs/", json=body, headers=headers, ok=(201,))
        return Submitted.from_answer(answer, got)

    @operation("GET /jobs/{job_id}")
    def job(self, job_id: str) -> Job:
        return Job.from_json(self.request("GET", f"/jobs/{_segment(job_id)}"))

    @operation("GET /jobs/")
    def jobs(
        self,
        *,
        status: str | None = None,
        user: str | None = None,
        namespace: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        """Jobs, newest first, optionally by status of their latest run, user and namespace."""
        params = {"status": status, "user": user, "namespace": namespace, "limit": limit, "cursor": cursor}
        return self._page("/jobs/", params, Job)

    @operation("PUT /jobs/{job_id}")
    def replace_job(self, job_id: str, body: dict) -> Job:
        """Replace a job's whole body (future runs use it)."""
        return Job.from_json(self.request("PUT", f"/jobs/{_segment(job_id)}", json=body))

    @operation("PATCH /jobs/{job_id}")
    def update_job(self, job_id: str, **fields_: Any) -> Job:
        """Change some fields of a job (``priority=80``, ``schedule="0 * * * *"``, ...)."""
        return Job.from_json(self.request("PATCH", f"/jobs/{_segment(job_id)}", json=fields_))

    @operation("DELETE /jobs/{job_id}")
    def delete_job(self, job_id: str) -> None:
        """Delete a job: its schedule stops, its runs not started are cancelled, history stays."""
        self.request("DELETE", f"/jobs/{_segment(job_id)}", ok=(204,))

    @operation("POST /jobs/{job_id}/pause")
    def pause_job(self, job_id: str) -> Job:
        return Job.from_json(self.request("POST", f"/jobs/{_segment(job_id)}/pause"))

    @operation("POST /jobs/{job_id}/resume")
    def resume_job(self, job_id: str) -> Job:
        return Job.from_json(self.request("POST", f"/jobs/{_segment(job_id)}/resume"))

    @operation("POST /jobs/{job_id}/trigger")
    def trigger_job(self, job_id: str, params: dict[str, str] | None = None) -> Submitted:
        """Run the job once now, whatever its schedule, with values for its parameters (by
        name; the others take their defaults). InvalidRequest names a bad one
        (``errors["json"]["params"]["TARGET"]``)."""
        body = {"params": params} if params else None
        return Submitted.from_json(self.request("POST", f"/jobs/{_segment(job_id)}/trigger", json=body, ok=(201,)))

    @operation("GET /jobs/{job_id}/runs")
    def runs(self, job_id: str, *, limit: int = 100, cursor: str | None = None) -> Page:
        """A job's runs (attempts), newest first."""
        return self._page(f"/jobs/{_segment(job_id)}/runs", {"limit": limit, "cursor": cursor}, Run)

    # -- one-off tasks (/schedule) ------------------------------------------------------------
    @operation("POST /schedule/")
    def schedule_task(self, command: str, *, scheduled_at: datetime | str | None = None, **fields_: Any) -> Task:
        """Run ``command`` once at ``scheduled_at`` (None: now), as ``POST /schedule``."""
        if isinstance(scheduled_at, datetime):
            scheduled_at = scheduled_at.isoformat()
        body = {"command": command, "scheduled_at": scheduled_at or "", **fields_}
        return Task.from_json(self.request("POST", "/schedule/", json=body, ok=(201,)))

    @operation("GET /schedule/{task_id}")
    def task(self, task_id: str) -> Task:
        return Task.from_json(self.request("GET", f"/schedule/{_segment(task_id)}"))

    # -- runs ------------------------------------------------------------------------------
    @operation("GET /runs/{run_id}")
    def run(self, run_id: str) -> Run:
        return Run.from_json(self.request("GET", f"/runs/{_segment(run_id)}"))

    @operation("POST /runs/{run_id}/cancel")
    def cancel(self, run_id: str) -> Run:
        """Cancel a run: a queued or pending one at once, a running one is killed (the answer
        is then the run as it was when the kill was requested). Conflict if it already ended."""
        return Run.from_json(self.request("POST", f"/runs/{_segment(run_id)}/cancel", ok=(200, 202)))

    @operation("POST /runs/{run_id}/retry")
    def retry(self, run_id: str) -> Submitted:
        """One more attempt after a failed, timed-out, cancelled or dead-lettered run."""
        return Submitted.from_json(self.request("POST", f"/runs/{_segment(run_id)}/retry", ok=(201,)))

    @operation("GET /dead-letter/")
    def dead_letters(
        self,
        *,
        job_id: str | None = None,
        include_retried: bool = False,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page:
        """Dead-lettered runs, newest first (not yet retried, unless ``include_retried``)."""
        params = {
            "job_id": job_id,
            "include_retried": "true" if include_retried else None,
            "limit": limit,
            "cursor": cursor,
        }
        return self._page("/dead-letter/", params, Run)

    def wait(self, run_id: str, timeout: float | None = None, *, poll: float = 0.5) -> Run:
        """The run once it has ended. Raises WaitTimeout after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = min(0.1, poll)
        while True:
            run = self.run(run_id)
            if run.ended:
                return run
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(f"run {run_id} still {run.status} after {timeout:g}s")
            pause = delay if deadline is None else max(0.0, min(delay, deadline - time.monotonic()))
            time.sleep(pause)
            delay = min(delay * 2, poll)

    def next_attempt(self, run: Run) -> Run | None:
        """The attempt that follows ``run`` (its retry, or its failover when it was lost), if
        one was recorded."""
        for other in self.runs(run.job_id):
            if other.retry_of == run.id:
                return other
        return None

    # -- workers ---------------------------------------------------------------------------
    @operation("GET /workers/")
    def workers(self) -> list[Worker]:
        return [Worker.from_json(item) for item in self.request("GET", "/workers/")]

    @operation("POST /workers/{worker_id}/drain")
    def drain_worker(self, worker_id: str, *, reason: str | None = None) -> dict:
        """Take a worker out of placement (its running work finishes, its queued runs go
        elsewhere or wait); returns the drain: ``id``, ``by``, ``at``, ``reason``."""
        body = {"reason": reason} if reason is not None else {}
        return self.request("POST", f"/workers/{_segment(worker_id)}/drain", json=body)

    @operation("DELETE /workers/{worker_id}/drain")
    def undrain_worker(self, worker_id: str) -> None:
        """Put a drained worker back into placement."""
        self.request("DELETE", f"/workers/{_segment(worker_id)}/drain", ok=(204,))

    @operation("GET /health/")
    def health(self) -> dict:
        """``GET /health`` (answered with 200 or 503; both are returned, not raised)."""
        return self.request("GET", "/health", ok=(200, 503))

    # -- access ----------------------------------------------------------------------------
    @operation("POST /tokens/")
    def create_token(
        self,
        name: str,
        *,
        roles: dict[str, str],
        user: str | None = None,
        act_as: list[str] | None = None,
        expires_days: float | None = None,
    ) -> Token:
        """Make a token; its secret is in ``.token`` of the answer, and nowhere else ever."""
        body = {"name": name, "roles": roles, "user": user, "act_as": act_as, "expires_days": expires_days}
        body = {key: value for key, value in body.items() if value is not None}
        return Token.from_json(self.request("POST", "/tokens/", json=body, ok=(201,)))

    @operation("GET /tokens/")
    def tokens(self) -> list[Token]:
        return [Token.from_json(item) for item in self.request("GET", "/tokens/")]

    @operation("DELETE /tokens/{token_id}")
    def revoke_token(self, token_id: str) -> Token:
        return Token.from_json(self.request("DELETE", f"/tokens/{_segment(token_id)}"))

    @operation("GET /audit/")
    def audit(
        self, *, namespace: str | None = None, actor: str | None = None, target: str | None = None, limit: int = 100
    ) -> list[AuditEvent]:
        params = {"namespace": namespace, "actor": actor, "target": target, "limit": limit}
        answer = self.request("GET", "/audit/", params={k: v for k, v in params.items() if v is not None})
        return [AuditEvent.from_json(item) for item in answer]

    @operation("GET /namespaces/{namespace}")
    def namespace_limits(self, namespace: str) -> dict:
        return self.request("GET", f"/namespaces/{_segment(namespace)}")

    @operation("PUT /namespaces/{namespace}")
    def set_namespace_limits(
        self,
        namespace: str,
        *,
        max_running: int | None,
        max_queued: int | None,
        notify: list[dict] | None = None,
        **resources: float | None,
    ) -> dict:
        """Set a namespace's quotas, the notification targets of its jobs that name none
        (secrets included: every PUT replaces the whole setting), and (``resources``:
        ``default_memory_mb``, ``default_cpu``, ``max_memory_mb``, ``max_cpu``) its jobs'
        default and maximum resource limits."""
        body = {"max_running": max_running, "max_queued": max_queued, "notify": notify, **resources}
        return self.request("PUT", f"/namespaces/{_segment(namespace)}", json=body)

    @operation("DELETE /namespaces/{namespace}")
    def delete_namespace_limits(self, namespace: str) -> None:
        """Delete a namespace's quotas: the installation's defaults hold again."""
        self.request("DELETE", f"/namespaces/{_segment(namespace)}", ok=(204,))

    # -- metrics ---------------------------------------------------------------------------
    @operation("GET /metrics")
    def metrics(self) -> str:
        """Prometheus's text exposition of ``/metrics`` (needs a role in '*' or the scrape token)."""
        return self._exchange("GET", "/metrics", ok=(200,), text=True)[0]


OPERATIONS["GET /export/runs"] = Exports.export_runs.__name__

"""Python client of Hydra's REST API.

::

    from hydra.client import Client

    hydra = Client()                       # HYDRA_API_URL, default http://127.0.0.1:8000
    sub = hydra.submit("echo hello", user="rich", os="linux", tags=["gpu"], timeout=60)
    for chunk in hydra.follow(sub.run_id):  # live output until the run ends
        print(chunk.text, end="")
    run = hydra.wait(sub.run_id, timeout=120)
    print(run.status, run.returncode)

Results are dataclasses (:class:`Submitted`, :class:`Job`, :class:`Run`, :class:`Worker`,
:class:`Chunk`, :class:`OutputPage`); each keeps the whole JSON answer in ``raw``.
Every failure raises a :class:`ClientError` (itself a ``hydra.errors.HydraError``)::

    ClientError
     +-- Unavailable      the API cannot be reached, or answered 503 (MongoDB/Redis down)
     +-- InvalidRequest   400/422; ``errors`` names each bad field, e.g. {"json": {"user": [...]}}
     +-- NotFound         404
     +-- Conflict         409 (e.g. cancelling a run that already ended)
     +-- ServerError      any other error answer
     +-- WaitTimeout      :meth:`Client.wait` / :meth:`Client.follow` ran out of time
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

from hydra.errors import HydraError
from hydra.model.status import TERMINAL, RunStatus
from hydra.settings import get_settings

# --- errors --------------------------------------------------------------------------------------


class ClientError(HydraError):
    """A request to the API failed. ``status_code`` is None when no answer came."""

    def __init__(self, message: str, *, status_code: int | None = None, body: Any = None):
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.body = body


class Unavailable(ClientError):
    pass


class InvalidRequest(ClientError):
    @property
    def errors(self) -> dict:
        """Field errors by location: ``{"json": {"field": ["message", ...]}, "query": {...}}``."""
        return (self.body or {}).get("errors") or {} if isinstance(self.body, dict) else {}


class NotAuthenticated(ClientError):
    """401: no token, or one the API does not accept (HYDRA_TOKEN, or .hydra/admin.token)."""


class Forbidden(ClientError):
    """403: the token's roles do not allow this."""


class NotFound(ClientError):
    pass


class Conflict(ClientError):
    pass


class ServerError(ClientError):
    pass


class WaitTimeout(ClientError):
    pass


_ERRORS = {
    400: InvalidRequest,
    401: NotAuthenticated,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: InvalidRequest,
    503: Unavailable,
}

# --- results -----------------------------------------------------------------------------------------


def _time(value):
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    return value


class _Record:
    """Built from a JSON object: known fields typed, the whole object in ``raw``."""

    _TIMES: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: dict):
        known = {f.name for f in fields(cls)} - {"raw"}
        values = {key: (_time(data.get(key)) if key in cls._TIMES else data.get(key)) for key in known}
        return cls(**values, raw=data)


@dataclass
class Submitted(_Record):
    job_id: str
    run_id: str | None
    status: str
    worker_id: str | None = None
    pending_reason: str | None = None
    raw: dict = field(default_factory=dict, repr=False)


@dataclass
class Job(_Record):
    _TIMES = ("created_at", "updated_at", "scheduled_at")
    id: str
    name: str
    user: str
    command: str | None = None
    args: list[str] | None = None
    shell: str | None = None
    affinity: dict | None = None
    status: str | None = None
    last_run_id: str | None = None
    source: str | None = None
    retries: int | None = None
    timeout: float | None = None
    priority: int | None = None
    schedule: str | None = None
    scheduled_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    raw: dict = field(default_factory=dict, repr=False)


@dataclass
class Run(_Record):
    _TIMES = ("queued_at", "placed_at", "started_at", "finished_at", "not_before")
    id: str
    job_id: str
    status: str
    job_name: str | None = None
    user: str | None = None
    attempt: int | None = None
    retry_of: str | None = None
    worker_id: str | None = None
    command: str | None = None
    returncode: int | None = None
    stdout: str | None = None
    stderr: str | None = None
    error: str | None = None
    outcome: str | None = None
    decision: str | None = None
    pending_reason: str | None = None
    queued_at: datetime | None = None
    placed_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    not_before: datetime | None = None
    duration: float | None = None
    raw: dict = field(default_factory=dict, repr=False)

    @property
    def ended(self) -> bool:
        """This attempt will not change again (a retry, if any, is another run)."""
        return RunStatus(self.status) in TERMINAL

    @property
    def exit_code(self) -> int:
        """What a shell would make of it: 0 when it succeeded; 124 when it timed out and 130
        when it was cancelled (as ``timeout`` and Ctrl-C do); else the command's own exit
        code, 128+N when it was killed by signal N, and 1 when it never ran."""
        if self.status == RunStatus.SUCCEEDED.value:
            return 0
        outcome = self.outcome or self.status
        if outcome == RunStatus.TIMED_OUT.value:
            return 124
        if outcome == RunStatus.CANCELLED.value:
            return 130
        code = self.returncode
        if code is not None and code > 0:
            return min(code, 255)
        if code is not None and code < 0:
            return 128 + min(-code, 127)
        return 1


@dataclass
class Worker(_Record):
    _TIMES = ("last_heartbeat", "first_seen")
    id: str
    status: str
    os: str | None = None
    tags: list[str] = field(default_factory=list)
    allowed_users: list[str] | None = None
    max_concurrency: int | None = None
    current_running: int | None = None
    load: int | None = None
    queue: str | None = None
    hostname: str | None = None
    last_heartbeat: datetime | None = None
    first_seen: datetime | None = None
    raw: dict = field(default_factory=dict, repr=False)


@dataclass
class Token(_Record):
    _TIMES = ("created_at", "expires_at", "revoked_at")
    id: str
    name: str
    user: str
    roles: dict
    act_as: list
    created_at: datetime | None = None
    created_by: str | None = None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    #: The secret (``hydra_<id>_<secret>``): only in the answer that made the token.
    token: str | None = None
    raw: dict = field(default_factory=dict, repr=False)


@dataclass
class AuditEvent(_Record):
    _TIMES = ("at",)
    id: str
    at: datetime | None
    actor: str
    via: str
    action: str
    namespace: str | None = None
    target: str | None = None
    details: dict = field(default_factory=dict)
    raw: dict = field(default_factory=dict, repr=False)


@dataclass
class Chunk(_Record):
    seq: int
    stream: str
    text: str
    cut: bool = False
    raw: dict = field(default_factory=dict, repr=False)


@dataclass
class OutputPage:
    run_id: str
    status: str
    chunks: list[Chunk]
    next: int
    ended: bool
    stdout_bytes: int | None = None
    stderr_bytes: int | None = None
    #: The server had no room to hold this request: ask again after this many seconds.
    retry_after: float | None = None

    @classmethod
    def from_json(cls, data: dict) -> OutputPage:
        return cls(
            run_id=data["run_id"],
            status=data["status"],
            chunks=[Chunk.from_json(c) for c in data.get("chunks") or []],
            next=data["next"],
            ended=data["ended"],
            stdout_bytes=data.get("stdout_bytes"),
            stderr_bytes=data.get("stderr_bytes"),
            retry_after=data.get("retry_after"),
        )


# --- the client ---------------------------------------------------------------------------------------

_NAME_BAD = re.compile(r"[^A-Za-z0-9 _.:@/+-]+")


def default_name(command: str | None, args: list[str] | None) -> str:
    """A job name made from the command: ``"echo hello | wc"`` -> ``"echo hello wc"``."""
    text = command or " ".join(args or []) or "command"
    name = " ".join(_NAME_BAD.sub(" ", text).split())[:80].strip(" _.:@/+-")
    return name or "command"


def find_token() -> str | None:
    """The API token to send: ``HYDRA_TOKEN``, else the file ``HYDRA_TOKEN_FILE`` names (by
    default ``.hydra/admin.token``, which ``make up`` writes), else None."""
    settings = get_settings()
    if settings.token:
        return settings.token.strip()
    try:
        return Path(settings.token_file).expanduser().read_text().strip() or None
    except OSError:
        return None


class Client:
    """Talks to one Hydra API (``url``, default ``HYDRA_API_URL``) with an API token (``token``,
    default :func:`find_token`)."""

    def __init__(
        self,
        url: str | None = None,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        session: requests.Session | None = None,
    ):
        self.url = (url or get_settings().api_url).rstrip("/")
        self.timeout = timeout
        self.session = session or requests.Session()
        token = token or find_token()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- transport ----------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict | None = None,
        json: Any = None,
        timeout: float | None = None,
        ok: tuple[int, ...] = (200,),
    ) -> Any:
        """One request; the decoded JSON answer, or a ClientError."""
        url = self.url + path
        try:
            response = self.session.request(method, url, params=params, json=json, timeout=timeout or self.timeout)
        except requests.Timeout as exc:
            raise Unavailable(f"the Hydra API at {self.url} did not answer {method} {path} in time") from exc
        except requests.RequestException as exc:
            raise Unavailable(
                f"cannot reach the Hydra API at {self.url} ({type(exc).__name__}; is it "
                "running? HYDRA_API_URL says where it is)"
            ) from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code in ok:
            if body is None:
                raise ServerError(f"{method} {path}: answer is not JSON", status_code=response.status_code)
            return body
        message = body.get("message") if isinstance(body, dict) else None
        if not message:
            name = body.get("status") if isinstance(body, dict) else None
            message = f"{method} {path}: HTTP {response.status_code}" + (f" {name}" if name else "")
        cls = _ERRORS.get(response.status_code, ServerError)
        raise cls(message, status_code=response.status_code, body=body)

    # -- jobs ------------------------------------------------------------------------------
    def submit(
        self,
        command: str | None = None,
        *,
        name: str | None = None,
        user: str | None = None,
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
        scheduled_at: datetime | str | None = None,
        **fields_: Any,
    ) -> Submitted:
        """Submit a job (``POST /jobs/``). ``name`` defaults to one made from the command,
        ``user`` to the token's; any further job-body field can be passed by keyword."""
        affinity: dict = {}
        if os:
            affinity["os"] = [os] if isinstance(os, str) else list(os)
        if tags:
            affinity["tags"] = list(tags)
        if allowed_users:
            affinity["allowed_users"] = list(allowed_users)
        if isinstance(scheduled_at, datetime):
            scheduled_at = scheduled_at.isoformat()
        body = {
            "name": name or default_name(command, args),
            "user": user,
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
            "scheduled_at": scheduled_at,
            **fields_,
        }
        body = {key: value for key, value in body.items() if value is not None}
        return Submitted.from_json(self.request("POST", "/jobs/", json=body, ok=(201,)))

    def job(self, job_id: str) -> Job:
        return Job.from_json(self.request("GET", f"/jobs/{_segment(job_id)}"))

    def jobs(self, *, status: str | None = None, user: str | None = None, limit: int = 50) -> list[Job]:
        """Jobs, newest first, optionally by status of their latest run and by user."""
        params = {"status": status, "user": user, "limit": limit}
        answer = self.request("GET", "/jobs/", params={k: v for k, v in params.items() if v is not None})
        return [Job.from_json(item) for item in answer]

    def runs(self, job_id: str, *, limit: int = 100) -> list[Run]:
        """A job's runs (attempts), newest first."""
        answer = self.request("GET", f"/jobs/{_segment(job_id)}/runs", params={"limit": limit})
        return [Run.from_json(item) for item in answer]

    # -- runs ------------------------------------------------------------------------------
    def run(self, run_id: str) -> Run:
        return Run.from_json(self.request("GET", f"/runs/{_segment(run_id)}"))

    def cancel(self, run_id: str) -> Run:
        """Cancel a run: a queued or pending one at once, a running one is killed (the answer
        is then the run as it was when the kill was requested). Conflict if it already ended."""
        return Run.from_json(self.request("POST", f"/runs/{_segment(run_id)}/cancel", ok=(200, 202)))

    def output(self, run_id: str, *, after: int = -1, wait: float = 0.0, limit: int | None = None) -> OutputPage:
        """One page of a run's output after chunk ``after``; ``wait`` > 0 holds the request
        (at most 10 s) until there is something new or the run ends."""
        params: dict = {"after": after, "wait": wait}
        if limit is not None:
            params["limit"] = limit
        answer = self.request("GET", f"/runs/{_segment(run_id)}/output", params=params, timeout=self.timeout + wait)
        return OutputPage.from_json(answer)

    def follow(
        self,
        run_id: str,
        *,
        after: int = -1,
        timeout: float | None = None,
        on_status: Callable[[str], None] | None = None,
    ) -> Iterator[Chunk]:
        """Yield the run's output chunks as they come, until the run has ended and all of its
        output was read. ``on_status(status)`` is called whenever the status changes.
        Raises WaitTimeout after ``timeout`` seconds (None: no limit)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        status = None
        while True:
            left = 10.0 if deadline is None else max(0.0, min(10.0, deadline - time.monotonic()))
            page = self.output(run_id, after=after, wait=left)
            if page.status != status:
                status = page.status
                if on_status is not None:
                    on_status(status)
            yield from page.chunks
            after = page.next
            if page.ended:
                return
            if deadline is not None and time.monotonic() >= deadline and not page.chunks:
                raise WaitTimeout(f"run {run_id} still {status} after {timeout:g}s")
            if page.retry_after and not page.chunks:  # the server holds enough followers already
                time.sleep(page.retry_after if deadline is None else min(page.retry_after, left))

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
    def workers(self) -> list[Worker]:
        return [Worker.from_json(item) for item in self.request("GET", "/workers/")]

    def health(self) -> dict:
        """``GET /health`` (answered with 200 or 503; both are returned, not raised)."""
        return self.request("GET", "/health", ok=(200, 503))

    # -- access ----------------------------------------------------------------------------
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

    def tokens(self) -> list[Token]:
        return [Token.from_json(item) for item in self.request("GET", "/tokens/")]

    def revoke_token(self, token_id: str) -> Token:
        return Token.from_json(self.request("DELETE", f"/tokens/{_segment(token_id)}"))

    def audit(
        self, *, namespace: str | None = None, actor: str | None = None, target: str | None = None, limit: int = 100
    ) -> list[AuditEvent]:
        params = {"namespace": namespace, "actor": actor, "target": target, "limit": limit}
        answer = self.request("GET", "/audit/", params={k: v for k, v in params.items() if v is not None})
        return [AuditEvent.from_json(item) for item in answer]

    def namespace_limits(self, namespace: str) -> dict:
        return self.request("GET", f"/namespaces/{_segment(namespace)}")

    def set_namespace_limits(self, namespace: str, *, max_running: int | None, max_queued: int | None) -> dict:
        body = {"max_running": max_running, "max_queued": max_queued}
        return self.request("PUT", f"/namespaces/{_segment(namespace)}", json=body)


def _segment(ident: str) -> str:
    """An id as one URL path segment."""
    return requests.utils.quote(str(ident), safe="")

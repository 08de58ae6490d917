"""The ``http`` executor: a webhook call - one HTTP request per attempt.

The job's ``http`` field says what to send: ``url`` (http or https), ``method``, ``headers``,
``body`` (a string is sent as is, any other JSON value as JSON) and ``timeout`` (seconds for
the whole request; default the job's ``timeout``, else 30). The run records the status code
as ``returncode`` and the response body (capped like a command's output) as ``stdout``;
a 2xx answer is ``succeeded``, any other ``failed``; no answer in time is ``timed_out``;
a connection error is ``failed`` with ``returncode`` None and the reason in ``error``.

The request runs in a helper thread so that a cancel or the overall timeout ends the
attempt at once (``requests``' own timeout only bounds each socket operation); an
abandoned request is left to finish in the background and its answer is ignored.

Egress is guarded (``hydra.execution.egress``): the host is resolved and every address
checked before anything is sent, the connection goes to an address that was checked, no
redirect is followed (a 3xx is a failed run naming its ``Location``), and proxies from the
environment are ignored. ``HYDRA_WEBHOOK_ALLOW`` is the operator's allow-list.
"""

from __future__ import annotations

import socket
import threading
import time

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, LocationParseError, NewConnectionError
from urllib3.util import parse_url
from urllib3.util.timeout import _DEFAULT_TIMEOUT

from hydra import clock, names
from hydra.execution.capture import CappedBuffer
from hydra.execution.egress import EgressPolicy, EgressRefused
from hydra.execution.executors.base import Context, register
from hydra.model.outcome import Outcome
from hydra.model.status import RunStatus

DEFAULT_TIMEOUT = 30.0
_POLL = 0.05
_CHUNK = 64 * 1024


class _GuardedConnection:
    """Mixed into urllib3's connections: connect only through addresses the policy allows."""

    egress: EgressPolicy

    def _new_conn(self) -> socket.socket:
        host = self._dns_host.strip("[]")  # type: ignore[attr-defined]
        timeout = None if self.timeout is _DEFAULT_TIMEOUT else self.timeout  # type: ignore[attr-defined]
        try:
            return self.egress.connect(
                host,
                self.port,  # type: ignore[attr-defined]
                timeout,
                self.source_address,  # type: ignore[attr-defined]
                self.socket_options,  # type: ignore[attr-defined]
            )
        except EgressRefused as exc:
            raise NewConnectionError(self, str(exc)) from exc  # type: ignore[arg-type]
        except TimeoutError as exc:
            raise ConnectTimeoutError(self, f"connection to {host} timed out") from exc
        except OSError as exc:
            raise NewConnectionError(self, f"Failed to establish a new connection: {exc}") from exc  # type: ignore[arg-type]


class GuardedAdapter(HTTPAdapter):
    """A requests adapter whose connections go through :class:`EgressPolicy.connect`."""

    def __init__(self, egress: EgressPolicy):
        self.egress = egress
        super().__init__(max_retries=0)

    def init_poolmanager(self, connections, maxsize, block=False, **pool_kwargs):
        super().init_poolmanager(connections, maxsize, block=block, **pool_kwargs)
        egress = self.egress
        plain = type("GuardedHTTPConnection", (_GuardedConnection, HTTPConnection), {"egress": egress})
        tls = type("GuardedHTTPSConnection", (_GuardedConnection, HTTPSConnection), {"egress": egress})
        self.poolmanager.pool_classes_by_scheme = {
            "http": type("GuardedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": plain}),
            "https": type("GuardedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": tls}),
        }


def guarded_session(egress: EgressPolicy) -> requests.Session:
    """A session that reaches only what ``egress`` allows, ignores proxies and .netrc."""
    session = requests.Session()
    session.trust_env = False
    adapter = GuardedAdapter(egress)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def precheck(url: str, egress: EgressPolicy) -> str | None:
    """Why the URL's host may not be reached (None: it may): checked before anything is sent,
    for a clear error (the connection itself is checked again)."""
    try:
        parsed = parse_url(url)
    except LocationParseError as exc:
        return f"not a URL: {exc}"
    if not parsed.host:
        return "the URL has no host"
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        egress.resolve(parsed.host.strip("[]"), port)
    except EgressRefused as exc:
        return str(exc)
    return None


class _Call:
    """One request in a helper thread, its answer copied into a capped buffer."""

    def __init__(self, spec: dict, timeout: float, ctx: Context):
        self.spec, self.timeout, self.ctx = spec, timeout, ctx
        self.buffer = CappedBuffer(ctx.output_limit)
        self.lock = threading.Lock()
        self.abandoned = False
        self.done = threading.Event()
        self.code: int | None = None
        self.reason = ""
        self.error: str | None = None
        self.timed_out = False
        self.location: str | None = None

    def start(self) -> None:
        threading.Thread(target=self._run, name="hydra-http", daemon=True).start()

    def _run(self) -> None:
        spec = self.spec
        body = spec.get("body")
        options = {"data": body.encode()} if isinstance(body, str) else ({} if body is None else {"json": body})
        headers = {"User-Agent": f"hydra/{names.VERSION}", **(spec.get("headers") or {})}
        egress = self.ctx.egress or EgressPolicy()
        refused = precheck(spec["url"], egress)
        if refused:
            self.error = f"egress refused: {refused}"
            self.done.set()
            return
        try:
            with (
                guarded_session(egress) as session,
                session.request(
                    spec.get("method") or "POST",
                    spec["url"],
                    headers=headers,
                    timeout=self.timeout,
                    stream=True,
                    allow_redirects=False,
                    **options,
                ) as response,
            ):
                self.code, self.reason = response.status_code, response.reason or ""
                self.location = response.headers.get("Location")
                for chunk in response.iter_content(_CHUNK):
                    with self.lock:
                        if self.abandoned:
                            return
                        self.buffer.write(chunk)
                    if self.ctx.on_output is not None:
                        self.ctx.on_output("stdout", chunk)
        except requests.Timeout as exc:
            self.timed_out, self.error = True, f"timed out after {self.timeout:g}s ({exc.__class__.__name__})"
        except requests.RequestException as exc:
            self.error = f"{exc.__class__.__name__}: {exc}"
        finally:
            self.done.set()

    def abandon(self) -> None:
        with self.lock:
            self.abandoned = True


@register("http")
def run_http(job: dict, ctx: Context) -> Outcome:
    spec = job.get("http") or {}
    timeout = float(spec.get("timeout") or job.get("timeout") or DEFAULT_TIMEOUT)
    started_at, start = clock.utcnow(), time.monotonic()
    call = _Call(spec, timeout, ctx)
    status, error = _await(call, ctx, start, timeout)
    call.abandon()  # from here on the helper thread writes nothing
    if status is None:
        if call.timed_out:
            status, error = RunStatus.TIMED_OUT, call.error
        elif call.code is None:
            status, error = RunStatus.FAILED, call.error or "no response"
        elif 200 <= call.code < 300:
            status = RunStatus.SUCCEEDED
        elif 300 <= call.code < 400:
            where = (call.location or "")[:500]
            status, error = (
                RunStatus.FAILED,
                f"HTTP {call.code}: redirect to {where!r} not followed (webhooks never follow redirects)",
            )
        else:
            status, error = RunStatus.FAILED, f"HTTP {call.code} {call.reason}".strip()
    out = call.buffer
    return Outcome(
        status=status,
        returncode=call.code,
        error=error,
        stdout=out.text(),
        stderr="",
        stdout_bytes=out.total,
        stderr_bytes=0,
        stdout_truncated=out.truncated,
        stderr_truncated=False,
        started_at=started_at,
        finished_at=clock.utcnow(),
        duration=time.monotonic() - start,
    )


def _await(call: _Call, ctx: Context, start: float, timeout: float) -> tuple[RunStatus | None, str | None]:
    """Start the request and wait for it -> (None, None), or stop waiting on a cancel or
    the overall timeout -> (status, error). A cancel set before the start sends nothing."""
    if ctx.cancel.is_set():
        return RunStatus.CANCELLED, "cancelled"
    call.start()
    while not call.done.wait(_POLL):
        if ctx.cancel.is_set():
            return RunStatus.CANCELLED, "cancelled"
        if time.monotonic() - start >= timeout:
            return RunStatus.TIMED_OUT, f"timed out after {timeout:g}s"
    return None, None

"""Executors: how one attempt of a job is carried out on a worker.

An executor is a callable ``(job, ctx) -> outcome``: ``job`` is the task message's kwargs
(a validated job body, ``hydra.spec``), ``ctx`` a :class:`Context`, and the outcome a
JSON-able dict shaped like :meth:`hydra.executor.Outcome.as_dict` - at least ``status``
(``succeeded``, ``failed``, ``timed_out`` or ``cancelled``) and ``error``; ``returncode``,
``stdout``, ``stderr``, their byte counts and ``*_truncated`` flags, ``started_at``,
``finished_at`` and ``duration`` when it has them. An executor never raises for a job that
goes wrong: it reports it. It honours ``ctx.cancel`` (stop promptly, status ``cancelled``,
keep what output there was) and the job's ``timeout``.

A job names its executor in ``executor`` (default ``shell``). Built in:

* ``shell`` (:mod:`hydra.executors.shell`): the command or argument list, in a scrubbed
  environment, process tree killed on timeout or cancel;
* ``http`` (:mod:`hydra.executors.http`): seed 002's ``http.webhook``; the status code is
  the ``returncode``, the response body the ``stdout``, 2xx means succeeded.

A new one is a function decorated with ``@register("name")`` in a module imported by the
worker, plus the name in ``hydra.spec.EXECUTORS`` (so jobs may ask for it).
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

#: Seconds a stopped command gets between SIGTERM and SIGKILL (keeps a cancel within 2 s).
KILL_GRACE = 1.0


@dataclass
class Context:
    """What the worker gives an executor besides the job."""

    os_name: str
    output_limit: int
    default_timeout: float
    cancel: threading.Event = field(default_factory=threading.Event)
    on_output: Callable[[str, bytes], None] | None = None
    kill_grace: float = KILL_GRACE
    #: Variables added last to a command's environment (HYDRA_RUN_ID, ...: see hydra.tasks).
    env: dict[str, str] = field(default_factory=dict)
    #: Called with the pid of a command once it runs.
    on_start: Callable[[int], None] | None = None


Executor = Callable[[dict, Context], dict]
_executors: dict[str, Executor] = {}


def register(name: str) -> Callable[[Executor], Executor]:
    """Decorator: make ``fn`` the executor jobs select with ``executor: name``."""

    def add(fn: Executor) -> Executor:
        _executors[name] = fn
        return fn

    return add


def get(name: str) -> Executor:
    """The executor registered as ``name``; KeyError when there is none."""
    return _executors[name]


def names() -> list[str]:
    return sorted(_executors)


def run(job: dict, ctx: Context) -> dict:
    """Carry out ``job`` with the executor it names; an unknown name is a failed outcome."""
    name = job.get("executor") or "shell"
    try:
        executor = get(name)
    except KeyError:
        return {"status": "failed", "returncode": None, "error": f"this worker has no executor {name!r}"}
    return executor(job, ctx)


from hydra.executors import http, shell  # noqa: E402,F401  (register the built-in executors)

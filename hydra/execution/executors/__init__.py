"""Executors: how one attempt of a job is carried out on a worker.

An executor is a callable ``(job, ctx) -> Outcome``: ``job`` is the task message's kwargs
(a validated job body, ``hydra.model.spec``), ``ctx`` a :class:`Context`, and the result the
one outcome type, :class:`hydra.model.outcome.Outcome` - at least ``status`` (``succeeded``,
``failed``, ``timed_out`` or ``cancelled``) and ``error``; ``returncode``, ``stdout``,
``stderr``, their byte counts and ``*_truncated`` flags, ``started_at``, ``finished_at`` and
``duration`` when it has them. An executor never raises for a job that goes wrong: it
reports it. It honours ``ctx.cancel`` (stop promptly, status ``cancelled``, keep what output
there was) and the job's ``timeout``.

A job names its executor in ``executor`` (default ``shell``). Built in:

* ``shell`` (:mod:`hydra.execution.executors.shell`): the command or argument list, in a
  scrubbed environment, process tree killed on timeout or cancel;
* ``http`` (:mod:`hydra.execution.executors.http`): a webhook call; the status code is the
  ``returncode``, the response body the ``stdout``, 2xx means succeeded.

The names jobs may ask for are ``hydra.model.spec.EXECUTORS``; this registry holds exactly
those (importing it fails otherwise). A new one is a name there plus a function decorated
with ``@register("name")`` in a module imported below.
"""

from __future__ import annotations

from hydra.execution.executors import http, shell
from hydra.execution.executors.base import Context, Executor, get, names, register
from hydra.model.outcome import Outcome
from hydra.model.spec import EXECUTORS
from hydra.model.status import RunStatus

if set(names()) != set(EXECUTORS):
    raise ImportError(f"executors registered {names()} differ from hydra.model.spec.EXECUTORS {list(EXECUTORS)}")

__all__ = ["Context", "Executor", "get", "http", "names", "register", "run", "shell"]


def run(job: dict, ctx: Context) -> Outcome:
    """Carry out ``job`` with the executor it names; an unknown name is a failed outcome."""
    name = job.get("executor") or "shell"
    try:
        executor = get(name)
    except KeyError:
        return Outcome(status=RunStatus.FAILED, error=f"this worker has no executor {name!r}")
    return executor(job, ctx)

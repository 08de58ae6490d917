"""What every executor is: its :class:`Context`, the registry, and ``@register``
(see ``hydra.execution.executors`` for the contract)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from hydra.execution.egress import EgressPolicy
from hydra.execution.isolation import Confinement
from hydra.model.outcome import Outcome
from hydra.model.spec import EXECUTORS

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
    #: Variables added last to a command's environment (HYDRA_RUN_ID, ...: see hydra.celery.task).
    env: dict[str, str] = field(default_factory=dict)
    #: Called with the pid of a command once it runs.
    on_start: Callable[[int], None] | None = None
    #: The run's user, directory, cgroup and sandbox (hydra.execution.isolation); None: run as is.
    confinement: Confinement | None = None
    #: Where webhooks may go (hydra.execution.egress); None: the default policy (no internal address).
    egress: EgressPolicy | None = None


Executor = Callable[[dict, Context], Outcome]
_executors: dict[str, Executor] = {}


def register(name: str) -> Callable[[Executor], Executor]:
    """Decorator: make ``fn`` the executor jobs select with ``executor: name``."""

    if name not in EXECUTORS:
        raise ValueError(f"executor {name!r} is not one of hydra.model.spec.EXECUTORS {EXECUTORS}")

    def add(fn: Executor) -> Executor:
        _executors[name] = fn
        return fn

    return add


def get(name: str) -> Executor:
    """The executor registered as ``name``; KeyError when there is none."""
    return _executors[name]


def names() -> list[str]:
    return sorted(_executors)

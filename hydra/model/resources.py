"""Resource limits and per-job concurrency: what a job may use, and how many of its runs at once.

``resources: {"memory_mb": 512, "cpu": 0.5}`` caps each run of the job (memory in MiB, cpu
in cores, fractions allowed). The worker enforces them through the run's cgroup
(``hydra.execution.limits``); a job that asks for limits is placed only on a worker whose
profile says it can enforce them (``WorkerProfile.limits``: see
:func:`limits_mismatch`), and a run killed for going over its memory ends ``failed`` with
:func:`oom_reason`. A namespace can set defaults and maxima for both
(:func:`settle`, called by whoever stores a job body: the API and gRPC verbs, ``apply_async``).

``max_concurrent: N`` lets at most N runs of the job hold a place on workers (queued on one, or
running) at once, whoever started them (cron ticks, triggers, retries, REST, gRPC,
``apply_async``); ``overlap: forbid`` means 1 (:func:`concurrency_limit`). A run over the
limit waits ``pending`` with the reason, and the controller places it when a place frees:
the places are those of the namespaces' quotas (``hydra.broker.quotas``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate

#: Bounds of a job's limits: at least 4 MiB and 0.01 core (the cpu controller's period is 100 ms).
MIN_MEMORY_MB, MAX_MEMORY_MB = 4, 4 * 1024 * 1024
MIN_CPU, MAX_CPU = 0.01, 1024.0
MAX_CONCURRENT = 10_000
RESOURCE_FIELDS = ("memory_mb", "cpu")


class ResourcesSchema(Schema):
    """What one run of a job may use at most (each left out: no limit)."""

    class Meta:
        unknown = RAISE

    memory_mb = fields.Integer(
        strict=True,
        load_default=None,
        validate=validate.Range(MIN_MEMORY_MB, MAX_MEMORY_MB),
        metadata={
            "description": "Memory of the run's processes together, in MiB (swap included); going over it ends "
            "the run failed: out of memory."
        },
    )
    cpu = fields.Float(
        allow_nan=False,
        load_default=None,
        validate=validate.Range(MIN_CPU, MAX_CPU),
        metadata={"description": "CPU time in cores, fractions allowed (0.5: half of one core), over every 100 ms."},
    )

    @post_load
    def drop_unset(self, data: Any, **kwargs: Any) -> Any:
        return {key: value for key, value in data.items() if value is not None} or None


def resources_field() -> fields.Field:
    """The ``resources`` field of a job body."""
    return fields.Nested(
        ResourcesSchema,
        load_default=None,
        allow_none=True,
        metadata={
            "description": "Limits of each run, enforced through its cgroup: {memory_mb, cpu}. Such a job runs only "
            "on workers that can enforce them; the namespace may set defaults and maxima."
        },
    )


def max_concurrent_field() -> fields.Field:
    """The ``max_concurrent`` field of a job body."""
    return fields.Integer(
        strict=True,
        load_default=None,
        allow_none=True,
        validate=validate.Range(1, MAX_CONCURRENT),
        metadata={
            "description": "Runs of this job placed on workers at once, at most (default: no limit; overlap forbid "
            "means 1). A run over it waits pending and starts when one ends."
        },
    )


def concurrency_limit(body: dict) -> int | None:
    """How many runs of a job with ``body`` may hold places at once (None: any number)."""
    limit = body.get("max_concurrent")
    if limit is None and body.get("overlap") == "forbid":
        return 1
    return limit


def combination_problems(body: dict) -> dict[str, list[str]]:
    """What contradicts itself in a job body's limits."""
    limit = body.get("max_concurrent")
    if body.get("overlap") == "forbid" and limit is not None and limit != 1:
        return {"max_concurrent": ["overlap forbid means one run at a time; drop max_concurrent or set it to 1"]}
    if body.get("resources") and body.get("executor") == "http":
        return {"resources": ["an http job runs no command on the worker; drop resources"]}
    return {}


def needs_limits(message: dict) -> bool:
    """Whether a (task message's) job asks for limits a worker must enforce."""
    resources = message.get("resources")
    return isinstance(resources, dict) and any(resources.get(name) is not None for name in RESOURCE_FIELDS)


def limits_mismatch(wants_limits: bool, worker_enforces: bool) -> str | None:
    """Why a worker may not run a job because of its limits (None: it may)."""
    if wants_limits and not worker_enforces:
        return "cannot enforce resource limits (no memory and cpu cgroup controllers)"
    return None


def oom_reason(memory_mb: int | None) -> str:
    """The reason a run killed for its memory ends with."""
    return f"out of memory (limit {memory_mb} MB)" if memory_mb else "out of memory"


@dataclass
class NamespaceResources:
    """A namespace's defaults and maxima of job limits (None: none)."""

    default_memory_mb: int | None = None
    default_cpu: float | None = None
    max_memory_mb: int | None = None
    max_cpu: float | None = None


def settle(body: dict, rules: NamespaceResources) -> dict:
    """``body`` with its namespace's limits filled in (a limit it does not set gets the
    default, else the maximum); raises ValidationError naming ``resources.<field>`` when it
    asks for more than the maximum. An http job runs no command: it gets none."""
    if body.get("executor") == "http":
        return body
    given = dict(body.get("resources") or {})
    errors: dict[str, list[str]] = {}
    for name in RESOURCE_FIELDS:
        default, most = getattr(rules, f"default_{name}"), getattr(rules, f"max_{name}")
        if given.get(name) is None:  # a job that sets none gets the default, else the maximum
            given[name] = default if default is not None and (most is None or default <= most) else most
        if most is not None and given.get(name) is not None and given[name] > most:
            namespace = body.get("namespace") or "?"
            errors[name] = [f"{given[name]} is over namespace {namespace!r}'s maximum {most}"]
    if errors:
        raise ValidationError({"resources": errors})
    given = {name: value for name, value in given.items() if value is not None}
    if not given:
        return body
    return {**body, "resources": given}

"""What Prometheus is told about each job (pure): the ``monitor`` field, which ends count as a
job's success or failure, and when a cron job's next tick is due.

``/metrics`` (``hydra.control.job_metrics``) gives, for every cron job, the time of its last
success and last failure and the tick its scheduler is due to handle next (in the past while
the scheduler misses it), and, for the jobs an operator marks ``monitor: true``, their ended
attempts by status. Only marked jobs get per-job counters, so the number of series stays as
small as the operator chooses.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from marshmallow import ValidationError, fields

from hydra.model.cron import next_fire
from hydra.model.status import RunStatus

#: Ends that make a job's last success.
SUCCESS = frozenset({RunStatus.SUCCEEDED})
#: Ends that make a job's last failure: its run failed for good (no retry or failover followed;
#: a lost attempt with no failover left is dead-lettered).
FAILURE = frozenset({RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.DEAD_LETTER})

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class StrictBoolean(fields.Boolean):
    """true or false, and nothing else (no 1, "yes" or "on": a JSON body says what it means)."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, bool):
            raise ValidationError("must be true or false")
        return value


def monitor_field() -> StrictBoolean:
    """The job body's ``monitor`` field."""
    return StrictBoolean(
        load_default=False,
        metadata={
            "description": "Count this job's ended runs by status on /metrics "
            "(hydra_job_runs_finished_total{job_id,job_name,namespace,status}); off by default so "
            "that the number of series stays bounded. Cron jobs always get their last success and "
            "failure times there."
        },
    )


def ending(status: str) -> str | None:
    """Which of a job's last ends an attempt's end ``status`` updates: 'success', 'failure' or None."""
    try:
        value = RunStatus(status)
    except ValueError:
        return None
    if value in SUCCESS:
        return "success"
    if value in FAILURE:
        return "failure"
    return None


def due_tick(schedule: str, tz: str | None, *, last_fire_at: datetime | None, since: datetime | None) -> datetime:
    """The next tick a cron job's scheduler has to handle: the first one after the later of the
    tick it handled last and when its schedule started counting (creation, change, resume).
    While a scheduler keeps up it is in the future; a tick missed leaves it in the past."""
    return next_fire(schedule, tz or "UTC", max(last_fire_at or _EPOCH, since or _EPOCH))

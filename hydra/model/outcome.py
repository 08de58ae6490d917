"""How one execution went: the one outcome type every executor returns.

An executor (``hydra.execution.executors``) reports an :class:`Outcome`; the task returns it
to Celery as a JSON dict (:meth:`Outcome.as_dict`), the result backend reads it back
(:meth:`Outcome.from_dict`) and the run record takes its fields (:meth:`Outcome.fields`).
Parties that end an attempt without running it (the controller's ``lost``, a user's
``cancelled``) build one with only ``status`` and ``error``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime

from hydra import clock
from hydra.model.status import RunStatus


@dataclass
class Outcome:
    """The end of one attempt as its executor (or whoever ended it) saw it."""

    status: RunStatus  # succeeded | failed | timed_out | cancelled | lost (a word is read as its RunStatus)
    #: Exit status (an http run: the response status); None: never started; negative: killed by that signal.
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""
    stdout_bytes: int | None = None  # bytes written, before the cap
    stderr_bytes: int | None = None
    stdout_truncated: bool | None = None
    stderr_truncated: bool | None = None
    pid: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration: float | None = None  # seconds, from a monotonic clock
    #: Why it did not succeed when the exit code does not say ("command not found: foo", "timed out after 2s").
    error: str | None = None
    worker_id: str | None = None
    #: Live-output chunks stored (0: a short run, whose output is only in the record).
    live_chunks: int | None = None

    def __post_init__(self) -> None:
        self.status = RunStatus(self.status)

    def as_dict(self) -> dict:
        """JSON-able copy (datetimes as ISO 8601 strings): the task's Celery result."""
        data = {name: getattr(self, name) for name in _NAMES}
        data["status"] = self.status.value
        for key in ("started_at", "finished_at"):
            if data[key] is not None:
                data[key] = data[key].isoformat()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Outcome:
        """An outcome from :meth:`as_dict` (unknown keys are ignored, times parsed)."""
        known = {item.name for item in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        for key in ("started_at", "finished_at"):
            parsed = clock.parse(values.get(key))
            values[key] = parsed if isinstance(parsed, datetime) else None
        return cls(**values)

    def fields(self) -> dict:
        """The fields that say something (not None), as the run record stores them."""
        return {name: getattr(self, name) for name in _NAMES if getattr(self, name) is not None}


#: The outcome's fields (all flat values: a shallow copy is a copy).
_NAMES = tuple(item.name for item in fields(Outcome))

"""A job's dependants: the jobs it starts when one of its runs ends for good.

Three fields of a job body, each a list of job ids (ids, not names: a job's name is not
unique, and an id stays the same when the job is renamed)::

    {"name": "build", ..., "on_success": ["<deploy job id>"], "on_failure": ["<page job id>"],
     "on_completion": ["<cleanup job id>"]}

* ``on_success`` - after a run succeeded;
* ``on_failure`` - after a run failed for good: failed or timed out with no retry left,
  dead-lettered, or lost with no failover left;
* ``on_completion`` - after either (not after a cancel: cancelling a run stops what follows it).

Each named job gets a new run, once per ending run, with ``HYDRA_UPSTREAM_RUN_ID``,
``HYDRA_UPSTREAM_STATUS``, ``HYDRA_UPSTREAM_JOB_ID`` and ``HYDRA_UPSTREAM_VIA`` in its
environment. A paused job is not started (the ending run notes why); a deleted one neither
(noted the same way, and the dependency stays listed until the job naming it is changed).
The rules checked when a job is stored (``hydra.dispatch.dependants``): every named job
exists, is not deleted, and is in a namespace the caller may submit to; no job names itself,
directly or through others (no cycle).
"""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate

#: The fields, in the order they are described.
FIELDS = ("on_success", "on_failure", "on_completion")
#: Jobs one field may name at most.
MAX_DEPENDANTS = 20
JOB_ID_RE = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"

_WHEN = {
    "on_success": "after one of its runs succeeded",
    "on_failure": "after one of its runs failed for good (no retry or failover left)",
    "on_completion": "after one of its runs succeeded or failed for good (not after a cancel)",
}


class JobIds(fields.List):
    """A list of job ids, without repeats (the first of each is kept)."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        ids = super()._deserialize(value, attr, data, **kwargs)
        return list(dict.fromkeys(ids)) if ids is not None else None


def dependants_field(name: str) -> JobIds:
    """The schema field ``name`` (one of :data:`FIELDS`)."""
    return JobIds(
        fields.String(validate=validate.Regexp(JOB_ID_RE, error="a job id: letters, digits and . _ : - (at most 64)")),
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=MAX_DEPENDANTS),
        metadata={
            "description": f"Ids of jobs to start {_WHEN[name]}; each gets HYDRA_UPSTREAM_RUN_ID and "
            "HYDRA_UPSTREAM_STATUS. At most 20; no cycles."
        },
    )


def named(spec: dict) -> dict[str, list[str]]:
    """The dependants a (validated) job body names, by field (fields it leaves out are not listed)."""
    return {name: list(spec[name]) for name in FIELDS if spec.get(name)}


def problem(field_name: str, job_id: str, reason: str) -> ValidationError:
    return ValidationError({field_name: [f"job {job_id!r}: {reason}"]})

"""Reading a fan-out (``placement.mode: all``) as a caller may: the per-worker summary of a
job's latest fan-out, or of one named fan-out of it (``hydra.dispatch.fanout`` makes them)."""

from __future__ import annotations

from hydra.control.access import Reader
from hydra.dispatch import fanout
from hydra.errors import NotFound
from hydra.model.access import Principal
from hydra.model.fanout import Summary
from hydra.store.fanouts import FanoutStore


def summary(actor: Principal, job_id: str, fanout_id: str | None = None) -> Summary:
    """The summary of ``fanout_id`` (default: the job's latest fan-out); NotFound when the job
    has none (it never fanned out) or the fan-out is another job's."""
    reader = Reader(actor)
    job = reader.job(job_id)
    if fanout_id is None:
        latest = reader.runs.find(job.last_run_id) if job.last_run_id else None
        fanout_id = latest.fanout_id if latest is not None else None
    plan = FanoutStore().plan(fanout_id) if fanout_id else None
    if plan is None or plan.job_id != job.id:
        raise NotFound("fan-out", fanout_id or job_id)
    return fanout.summary(plan)

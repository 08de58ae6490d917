"""What an attempt's end tells its job's notification targets (``hydra.model.notify``).

Called by ``hydra.dispatch.attempts`` right after the end is recorded, so only by the winner
of the run's end fence, once, wherever that is (the worker that ran it, the controller that
found it lost, a user's cancel). It sends nothing itself: it writes the run's notice
(``hydra.store.notifications``) and the leading controller delivers it
(``hydra.control.notifier``), so a slow or failing target never delays or changes the run.
Once the notice is written (right after the end, by the same process) no crash loses it; a
process that dies between its two writes (the end, then the notice) leaves the run ended
without a notice, as it would leave it without its dependants (``hydra.dispatch.continuation``).

It costs nothing for a job nobody listens to: the events its targets hear come with the job
(a worker has them from the signed message's ``notify_on``; the targets themselves, and
their secrets, stay in MongoDB), and a namespace's default targets come with its limits,
which the router keeps for a few seconds.
"""

from __future__ import annotations

import logging

from hydra.dispatch.pipeline import Pipeline
from hydra.errors import Unavailable
from hydra.model.notify import FAILING, SETTLED, events_of, listened
from hydra.model.records import Job
from hydra.model.status import RunStatus
from hydra.store.notifications import Notice, NotificationStore

log = logging.getLogger(__name__)


def targets_of(job: Job, pipeline: Pipeline) -> list[dict]:
    """The job's own targets, else its namespace's default ones."""
    if job.notify:
        return job.notify
    return pipeline.router.limits(job.namespace).notify or []


def after_end(run_id: str, job: Job, status: RunStatus, raw: RunStatus | None, *, pipeline: Pipeline) -> bool:
    """Note the notice of run ``run_id`` that ended as ``status`` (``raw``: what the attempt
    came to), if any target hears one of its events; True when one was written. Never
    raises (logged): the end itself is recorded already."""
    if not job.id:
        return False
    try:
        wanted = listened(targets_of(job, pipeline))
        if not wanted:
            return False
        store = NotificationStore(index=pipeline.runs.index)
        previous = None
        if "recovered" in wanted and status in SETTLED:
            before = store.previous(job.id)
            previous = RunStatus(before) if before else None
            if previous is None or (previous in FAILING) != (status in FAILING):
                store.settle(job.id, status.value, run_id)
        events = events_of(status, raw, previous)
        if not set(events) & set(wanted):
            return False
        notice = Notice(
            id=run_id,
            job_id=job.id,
            namespace=job.namespace,
            status=status.value,
            outcome=raw.value if raw is not None else None,
            events=events,
        )
        return store.enqueue(notice)
    except Unavailable as exc:
        log.error(
            "notification of run %s not noted: %s",
            run_id,
            exc,
            extra={"event": "notify.failed", "run_id": run_id, "job_id": job.id},
        )
        return False
    except Exception:  # what follows the end (retries, dependants) must still happen
        log.exception("notification of run %s not noted", run_id, extra={"event": "notify.failed", "run_id": run_id})
        return False

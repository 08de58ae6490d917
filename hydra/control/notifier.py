"""Delivering notifications: the leading controller's notifier thread.

The winner of a run's end fence writes the run's notice (``hydra.dispatch.notices``), filed in
the due index first. The notifier takes the due ones (:meth:`Notifier.deliver_due`): the first
time it handles a notice it picks its targets - the job's, else its namespace's default, each
that hears one of the run's events - and then makes each delivery's attempts, writing every
attempt (time, status code or error) to the notice before it schedules the next one:

* a 2xx answer delivers it; anything else (another status, a redirect - never followed -, a
  timeout, no connection) is tried again after ``HYDRA_NOTIFY_BACKOFF`` seconds, doubling each
  time (at most an hour), ``HYDRA_NOTIFY_ATTEMPTS`` attempts in all, then it is ``failed``;
* every connection goes through the webhook egress guard of the ``http`` executor
  (``hydra.execution.egress``, ``HYDRA_WEBHOOK_ALLOW``): a target the guard refuses is
  ``refused`` at once, with the reason.

Delivery is at least once (a controller that dies after a target answered, before it wrote
the attempt, tries again): receivers de-duplicate by ``X-Hydra-Delivery``.
"""

from __future__ import annotations

import logging
import time

import requests

from hydra import clock, names
from hydra.broker.due import NoticeDue
from hydra.errors import Unavailable
from hydra.execution.egress import EgressPolicy
from hydra.execution.executors.http import guarded_session, precheck
from hydra.model import notify
from hydra.model.records import Job, Run
from hydra.settings import Settings, get_settings
from hydra.store.namespaces import NamespaceStore
from hydra.store.notifications import DELIVERED, FAILED, PENDING, REFUSED, Notice, NotificationStore

log = logging.getLogger(__name__)

#: Seconds a due entry may name a notice not written yet (its writer is between the two
#: writes) before it is dropped as one whose writer died first (its run's end is then
#: recorded without a notice, like any write that never happened).
UNWRITTEN_GRACE = 60.0
#: Notices handled per pass at most.
BATCH = 50
#: Seconds before a notice that could not be handled (a bug, a stored value it cannot read) is tried again.
STUCK_RETRY = 300.0


class Notifier:
    def __init__(self, pipeline, settings: Settings | None = None):
        self.settings = settings or get_settings()
        self.pipeline = pipeline
        self.store = NotificationStore(index=pipeline.runs.index)
        self.due = NoticeDue(pipeline.runs.index.redis)
        self.namespaces = NamespaceStore()
        self.egress = EgressPolicy.from_text(self.settings.webhook_allow)

    def deliver_due(self, now: float | None = None) -> int:
        """Handle the notices due now; returns how many."""
        now = clock.epoch() if now is None else now
        handled = 0
        for run_id in self.due.due(now, BATCH):
            try:
                self.handle(run_id, now)
            except Unavailable:
                raise  # MongoDB or Redis down: the controller's loop tries again
            except Exception:  # one notice that cannot be handled must not hold up the others
                log.exception("notification of run %s not handled", run_id, extra={"event": "notify.error"})
                self.due.add(run_id, now + STUCK_RETRY)
            handled += 1
        return handled

    def refile(self) -> int:
        """File every notice not done in the due index again (Redis was reset and lost it)."""
        open_ids = self.store.open_ids()
        now = clock.epoch()
        for run_id in open_ids:
            self.due.add(run_id, now)
        return len(open_ids)

    def handle(self, run_id: str, now: float) -> None:
        notice = self.store.find(run_id)
        if notice is None:
            filed = self.due.score(run_id)
            if filed is None or now - filed > UNWRITTEN_GRACE:
                self.due.remove(run_id)
            return
        if not notice.resolved:
            self.resolve(notice, now)
        run = self.pipeline.runs.find(run_id) or Run(id=run_id, job_id=notice.job_id, namespace=notice.namespace)
        job = self.pipeline.jobs.find(notice.job_id) or Job(id=notice.job_id, namespace=notice.namespace)
        for index, delivery in enumerate(notice.deliveries):
            if delivery["state"] == PENDING and delivery.get("next_at", 0) <= now:
                self.attempt(notice, index, delivery, job, run, now)
        waiting = [d["next_at"] for d in notice.deliveries if d["state"] == PENDING]
        notice.done = not waiting
        self.store.save(notice)
        if waiting:
            self.due.add(run_id, min(waiting))
        else:
            self.due.remove(run_id)

    def resolve(self, notice: Notice, now: float) -> None:
        """Its deliveries: one per target (the job's, else its namespace's) that hears one of its events."""
        job = self.pipeline.jobs.find(notice.job_id)
        targets = (job.notify if job is not None else None) or self.namespaces.limits(notice.namespace).notify or []
        for target in targets:
            event = notify.event_for(target, notice.events)
            if event is None:
                continue
            kind = notify.kind_of(target)
            delivery = {"kind": kind, "event": event, "url": target[kind]["url"], "state": PENDING, "attempts": []}
            if kind == "webhook":
                delivery["secret"] = target["webhook"]["secret"]
            delivery["next_at"] = now
            notice.deliveries.append(delivery)
        notice.resolved = True

    def attempt(self, notice: Notice, index: int, delivery: dict, job: Job, run: Run, now: float) -> None:
        """One attempt at one delivery (due at ``now``), recorded in it."""
        console_url = f"{self.settings.api_url.rstrip('/')}/ui/runs/{run.id}"
        shown_job = {"id": job.id, "name": job.name, "namespace": job.namespace or notice.namespace, "user": job.user}
        shown_run = run_facts(run)
        if delivery["kind"] == "webhook":
            body = notify.encoded(
                notify.webhook_body(delivery["event"], notice.events, shown_job, shown_run, console_url)
            )
            stamp = int(time.time())
            headers = {
                notify.EVENT_HEADER: delivery["event"],
                notify.DELIVERY_HEADER: f"{notice.id}.{index}",
                notify.TIMESTAMP_HEADER: str(stamp),
                notify.SIGNATURE_HEADER: notify.signature(delivery["secret"], stamp, body),
            }
        else:
            body = notify.encoded(notify.slack_body(delivery["event"], shown_job, shown_run, console_url))
            headers = {}
        headers.update({"Content-Type": "application/json", "User-Agent": f"hydra/{names.VERSION}"})
        code, error, final = self.send(delivery["url"], body, headers)
        delivery["attempts"].append({"at": clock.utcnow(), "status_code": code, "error": error})
        if error is None:
            delivery["state"] = DELIVERED
        elif final:
            delivery["state"] = REFUSED
        elif len(delivery["attempts"]) >= self.settings.notify_attempts:
            delivery["state"] = FAILED
        else:
            delivery["next_at"] = max(now, clock.epoch()) + notify.retry_delay(
                len(delivery["attempts"]), self.settings.notify_backoff
            )
        log.info(
            "notification %s",
            delivery["state"],
            extra={
                "event": f"notify.{delivery['state']}",
                "run_id": notice.id,
                "job_id": notice.job_id,
                "status": delivery["event"],
                "error": error,
            },
        )

    def send(self, url: str, body: bytes, headers: dict) -> tuple[int | None, str | None, bool]:
        """POST ``body`` -> (status code, error or None when delivered, whether the error is final)."""
        refused = precheck(url, self.egress)
        if refused:
            final = "refused to connect" in refused
            return None, f"egress refused: {refused}", final
        timeout = self.settings.notify_timeout
        try:
            with (
                guarded_session(self.egress) as session,
                session.post(url, data=body, headers=headers, timeout=timeout, allow_redirects=False) as response,
            ):
                code = response.status_code
        except requests.Timeout:
            return None, f"timed out after {timeout:g}s", False
        except requests.RequestException as exc:
            return None, f"{exc.__class__.__name__}: {exc}"[:500], False
        if 200 <= code < 300:
            return code, None, False
        return code, f"HTTP {code}", False


def run_facts(run: Run) -> dict:
    """What a notification says of the run (times as ISO 8601)."""
    facts = {
        "id": run.id,
        "attempt": run.attempt,
        "status": run.status,
        "outcome": run.outcome,
        "reason": run.decision or run.error,
        "returncode": run.returncode,
        "worker_id": run.worker_id,
        "duration": run.duration,
    }
    for key in ("queued_at", "started_at", "finished_at"):
        moment = getattr(run, key)
        facts[key] = moment.isoformat() if moment else None
    return facts

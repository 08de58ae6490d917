"""Access to jobs, runs and workers, by principal: what it may see, and refusing what it may not do.

Every verb and every read of the API goes through here (``hydra.control.verbs`` for the
verbs, :class:`Reader` for the reads), so REST and any other interface apply the same rules
(``hydra.model.access``): something in a namespace the caller may not read answers NotFound,
as if it did not exist; something it may read but not change answers Forbidden.
"""

from __future__ import annotations

from hydra.broker.registry import Registry
from hydra.celery.app import current_pipeline
from hydra.dispatch.router import AffinityRouter
from hydra.errors import Forbidden, NotFound, Unavailable
from hydra.model.access import NEEDS, Principal
from hydra.model.affinity import Verdict
from hydra.model.notify import shown_deliveries
from hydra.model.records import Job, Run
from hydra.model.status import RunStatus
from hydra.store.drains import DrainStore
from hydra.store.jobs import JobStore
from hydra.store.notifications import NotificationStore
from hydra.store.runs import RunStore
from hydra.store.workers import WorkerStore, WorkerView


def require(actor: Principal, action: str, namespace: str, *, kind: str, ident: str) -> None:
    """Refuse ``action`` on ``kind`` ``ident`` of ``namespace`` unless ``actor`` may do it."""
    if actor.can(action, namespace):
        return
    if actor.sees(namespace):
        raise Forbidden(f"{actor.user!r} may not {action} in namespace {namespace!r} (needs {NEEDS[action]})")
    raise NotFound(kind, ident)


def require_submit(actor: Principal, namespace: str) -> None:
    if not actor.can("submit", namespace):
        raise Forbidden(f"{actor.user!r} may not submit in namespace {namespace!r} (needs operator)")


class Reader:
    """The reads of the API, limited to what ``actor`` may see."""

    def __init__(self, actor: Principal, *, runs: RunStore | None = None, workers: WorkerStore | None = None):
        self.actor = actor
        self.runs = runs or current_pipeline().runs
        self.jobs: JobStore = self.runs.jobs
        self.workers = workers or WorkerStore()

    def job(self, job_id: str, action: str = "read") -> Job:
        job = self.jobs.get(job_id)
        require(self.actor, action, job.namespace, kind="job", ident=job_id)
        return job

    def run(self, run_id: str, action: str = "read") -> Run:
        run = self.runs.get(run_id)
        require(self.actor, action, run.namespace, kind="run", ident=run_id)
        return run

    def run_shown(self, run_id: str) -> Run:
        """A run as one run's answer shows it: with what its notification targets were told
        (``notifications``: its events, whether every delivery is done, each delivery's
        attempts; None when it notified nobody)."""
        run = self.run(run_id)
        notice = NotificationStore(index=self.runs.index).find(run_id)
        run.notifications = (  # type: ignore[attr-defined]  # an answer's extra, never stored
            None
            if notice is None
            else {"events": notice.events, "done": notice.done, "deliveries": shown_deliveries(notice.deliveries)}
        )
        return run

    def jobs_page(
        self, *, status: RunStatus | None, user: str | None, namespace: str | None, limit: int, cursor: str | None
    ) -> tuple[list[Job], str | None]:
        namespaces = self.actor.visible([namespace] if namespace else None)
        if namespaces == []:
            return [], None
        return self.jobs.list(status=status, user=user, namespaces=namespaces, limit=limit, cursor=cursor)

    def runs_of(self, job_id: str, *, limit: int, cursor: str | None) -> tuple[list[Run], str | None]:
        job = self.job(job_id)
        return self.runs.page_for_job(job_id, namespace=job.namespace, limit=limit, cursor=cursor)

    def dead_letters(
        self, *, job_id: str | None, include_retried: bool, limit: int, cursor: str | None
    ) -> tuple[list[Run], str | None]:
        namespaces = self.actor.visible()
        if namespaces == []:
            return [], None
        return self.runs.dead_letters(
            limit=limit, cursor=cursor, job_id=job_id, include_retried=include_retried, namespaces=namespaces
        )

    def all_workers(self) -> list[WorkerView]:
        """Workers that serve a namespace it may read (a worker without namespaces serves all)."""
        return [w for w in self.workers.all() if not w.namespaces or any(self.actor.sees(ns) for ns in w.namespaces)]

    def workers_with_load(self) -> list[WorkerView]:
        """:meth:`all_workers`, each with its ``load`` from the live registry (0 without Redis:
        the view still answers) and its drain (``hydra.store.drains``)."""
        workers = self.all_workers()
        try:
            loads = Registry().loads()
        except Unavailable:
            loads = {}
        drains = DrainStore().all()
        for worker in workers:
            worker.load = loads.get(worker.id, 0)
            drained = drains.get(worker.id)
            if drained is not None:
                worker.drained, worker.drained_by, worker.drained_at = True, drained.by, drained.at
                worker.drain_reason = drained.reason
        return workers

    def placement(self, run_id: str, router: AffinityRouter | None = None) -> tuple[Run, Job, list[Verdict]]:
        """A run, its job, and worker by worker why each could or could not take it now
        (only the workers this caller may see; the reasons name the job's own needs)."""
        run = self.run(run_id)
        job = self.jobs.get(run.job_id)
        needs = {"affinity": job.affinity, "user": job.user, "shell": job.shell, "args": job.args}
        needs["bound_worker"] = run.bound_worker  # a fan-out's run: its worker only
        visible = {w.id for w in self.all_workers()}
        found = (router or AffinityRouter()).explain({**needs, "namespace": job.namespace})
        return run, job, [v for v in found if v.worker_id in visible]

"""The metrics of ``/metrics`` that need the jobs: per job, and pending runs by the tags they need.

Read at scrape time from what MongoDB and Redis hold, so every API replica serves the same
numbers, before and after any restart (``hydra.model.monitoring`` says what they mean):

==================================================== ======= ====================================
metric                                               type    what
==================================================== ======= ====================================
``hydra_job_last_success_timestamp_seconds``         gauge   a cron or monitored job's last
                                                             success (0: none yet)
``hydra_job_last_failure_timestamp_seconds``         gauge   its last failure for good (0: none)
``hydra_job_next_fire_timestamp_seconds``            gauge   a cron job's next tick to handle (not
                                                             paused); in the past while missed
``hydra_job_runs_finished_total``                    counter a monitored job's ended attempts, by
                                                             ``status``
``hydra_pending_runs_by_tag``                        gauge   runs waiting for a worker (not for
                                                             their time), by each ``tag`` they need
``hydra_workers_online_by_tag``                      gauge   online workers with each ``tag``
                                                             (0 for a tag only pending runs name)
==================================================== ======= ====================================

The job metrics carry ``job_id``, ``job_name`` and ``namespace``. The jobs come from the
indexes (each namespace's scheduled and monitored jobs), fetched by ``_id``: a scrape costs
O(cron and monitored jobs + runs in progress), never O(history). While the indexes are being
rebuilt these families are left out rather than scan every job.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from hydra import clock
from hydra.broker.index import Index
from hydra.broker.metrics import job_run_counts
from hydra.broker.redis import translated
from hydra.broker.registry import Registry
from hydra.celery.app import current_pipeline
from hydra.errors import StoreUnavailable
from hydra.model.records import Job
from hydra.model.status import RunStatus
from hydra.store.jobs import JobStore

log = logging.getLogger(__name__)

JOB_LABELS = ["job_id", "job_name", "namespace"]


def _seconds(moment: datetime | None) -> float:
    return moment.timestamp() if moment is not None else 0.0


def _labels(job: Job) -> list[str]:
    return [job.id, job.name, job.namespace]


class JobCollector:
    """A prometheus_client collector of the per-job and per-tag families (read when scraped)."""

    def __init__(self, jobs: JobStore | None = None, registry: Registry | None = None):
        self._jobs = jobs
        self.registry = registry or Registry()

    @property
    def jobs(self) -> JobStore:
        if self._jobs is None:
            self._jobs = current_pipeline().jobs
        return self._jobs

    def collect(self) -> list:
        """Every family, read now. MongoDB unreachable leaves the per-job families out (and the
        tags pending runs need), so /metrics still serves what Redis holds; Redis unreachable
        raises BrokerUnavailable like the other collector."""
        with translated():
            try:
                families = list(self._job_families())
            except StoreUnavailable as exc:
                log.warning("metrics per job left out: %s", exc, extra={"event": "metrics.jobs_unavailable"})
                families = []
            return [*families, *self._tag_families()]

    def _job_families(self):
        watched = self.jobs.watched()
        if watched is None:
            return
        success = GaugeMetricFamily(
            "hydra_job_last_success_timestamp_seconds",
            "When a run of the job last succeeded (cron and monitored jobs; 0: never).",
            labels=JOB_LABELS,
        )
        failure = GaugeMetricFamily(
            "hydra_job_last_failure_timestamp_seconds",
            "When a run of the job last failed for good (cron and monitored jobs; 0: never).",
            labels=JOB_LABELS,
        )
        due = GaugeMetricFamily(
            "hydra_job_next_fire_timestamp_seconds",
            "The next tick a cron job's scheduler has to handle (in the past while it is missed).",
            labels=JOB_LABELS,
        )
        finished = CounterMetricFamily(
            "hydra_job_runs_finished",
            "Ended attempts of a job marked monitor, by recorded status.",
            labels=[*JOB_LABELS, "status"],
        )
        monitored = [job for job in watched if job.monitor]
        counts = job_run_counts([job.id for job in monitored], self.registry.redis)
        for job in watched:
            success.add_metric(_labels(job), _seconds(job.last_success_at))
            failure.add_metric(_labels(job), _seconds(job.last_failure_at))
            try:
                tick = job.due_tick()
            except (ValueError, KeyError, OverflowError):  # a schedule that never fires: no tick is due
                tick = None
            if tick is not None:
                due.add_metric(_labels(job), _seconds(tick))
        for job in monitored:
            for status, count in sorted(counts.get(job.id, {}).items()):
                finished.add_metric([*_labels(job), status], count)
        yield from (success, failure, due, finished)

    def _tag_families(self):
        index = Index(self.registry.redis)
        needed: Counter[str] = Counter()
        if index.built("runs"):
            now = clock.millis(clock.utcnow())
            waiting = [
                a
                for a in index.active()
                if a.status == RunStatus.PENDING.value and not (a.not_before and a.not_before > now)
            ]
            try:
                jobs = self.jobs.find_many(sorted({a.job_id for a in waiting if a.job_id})) if waiting else {}
            except StoreUnavailable:  # which tags they need is in MongoDB: none counted meanwhile
                jobs = {}
            for run in waiting:
                job = jobs.get(run.job_id)
                if job is not None:
                    needed.update((job.affinity or {}).get("tags") or [])
        online: Counter[str] = Counter()
        for record in self.registry.records().values():
            if record.status == "online":
                online.update(record.profile.tags)
        pending = GaugeMetricFamily(
            "hydra_pending_runs_by_tag",
            "Runs waiting for an eligible worker or a quota place (not for their start time), by each tag they need.",
            labels=["tag"],
        )
        for tag, count in sorted(needed.items()):
            pending.add_metric([tag], count)
        workers = GaugeMetricFamily(
            "hydra_workers_online_by_tag",
            "Online workers with each tag (0 for a tag that only pending runs name).",
            labels=["tag"],
        )
        for tag in sorted(set(online) | set(needed)):
            workers.add_metric([tag], online.get(tag, 0))
        yield from (pending, workers)

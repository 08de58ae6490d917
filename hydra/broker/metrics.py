"""Prometheus metrics, counted in Redis by every process and read by the API at scrape time.

Jobs are submitted in gunicorn workers and Python clients, runs end in Celery workers,
the controller and the API: counters kept in one process's memory would each tell a part.
So the processes where things happen increment Redis hashes (one round trip, never
raising), and ``GET /metrics`` reads them through :class:`HydraCollector`, together with
gauges computed at that moment from Redis (queue lengths, the worker registry).

=================================== ========= ===========================================
metric                              type      meaning
=================================== ========= ===========================================
``hydra_jobs_submitted_total``      counter   jobs accepted, by ``source`` (api, python)
``hydra_runs_finished_total``       counter   run attempts ended, by recorded ``status``
                                              (succeeded, failed, timed_out, cancelled,
                                              lost, retrying, dead_letter)
``hydra_run_duration_seconds``      histogram how long commands ran (attempts that ran)
``hydra_queue_depth``               gauge     messages waiting in a queue, by ``queue``
                                              and ``worker`` (the worker queues, and
                                              ``hydra.pending`` with worker="")
``hydra_pending_runs``              gauge     runs waiting for an eligible worker
``hydra_delayed_runs``              gauge     runs waiting for their start time (retries)
``hydra_workers_online``            gauge     workers the controller sees online
``hydra_workers_offline``           gauge     workers it knows that are offline
``hydra_worker_load``               gauge     runs routed to a worker and not finished
``hydra_worker_drained``            gauge     1 for a drained worker, else 0 (label ``worker``)
``hydra_workers_drained``           gauge     workers drained by an operator
``hydra_controller_up``             gauge     1 while a controller is alive
``hydra_dead_letters``              gauge     dead letters not retried, by ``namespace``
                                              (from the indexes; absent while they rebuild)
=================================== ========= ===========================================

Per job (``hydra.control.job_metrics`` reads them with the jobs): the ended attempts of each
job marked ``monitor``, counted here too by the end-fence winner - only when the job is
among its namespace's monitored jobs (``jobs:monitored`` in the indexes), so no counter is
kept for any other job.

Redis layout (``hydra.names``): ``hydra:metrics:jobs_submitted`` (hash source -> n),
``hydra:metrics:runs_finished`` (hash status -> n), ``hydra:metrics:run_duration`` (hash
bucket upper bound -> n, plus ``sum`` and ``count``), ``hydra:metrics:job_runs:<job id>``
(hash status -> n, monitored jobs only).
"""

from __future__ import annotations

import logging
import math
import time

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from hydra import names
from hydra.broker import series
from hydra.broker.due import DueIndex
from hydra.broker.index import Index
from hydra.broker.redis import get_redis, translated
from hydra.broker.registry import Registry
from hydra.model.priority import level_keys

log = logging.getLogger(__name__)

#: Upper bounds (seconds) of the run-duration buckets; commands run from seconds to hours.
DURATION_BUCKETS = (0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, math.inf)


_bucket_key = series.bound_label


def job_submitted(source: str, redis=None) -> None:
    """Count one accepted job (``redis``: a client, or a pipeline to send it with). Never
    raises: a metric must not fail a submission."""
    try:
        (redis if redis is not None else get_redis()).hincrby(names.METRIC_JOBS_SUBMITTED, source or "unknown", 1)
    except Exception as exc:  # noqa: BLE001
        log.debug("metric not counted: %s", exc)


# KEYS: the namespace's monitored jobs, the job's counters; ARGV: job id, status.
_COUNT_MONITORED = """
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then redis.call('HINCRBY', KEYS[2], ARGV[2], 1) end
return 1
"""


def run_finished(
    status: str, duration: float | None, redis=None, *, namespace: str | None = None, job_id: str | None = None
) -> None:
    """Count one ended attempt (and its duration, when it ran), in the totals, with its
    ``namespace`` in the console's minute series (``hydra.broker.series``), and with its
    ``job_id`` among its job's counters when the job is monitored - one round trip. Never raises."""
    ran = duration if duration is not None and duration >= 0 else None
    bound = next(b for b in DURATION_BUCKETS if ran <= b) if ran is not None else None
    try:
        pipe = (redis or get_redis()).pipeline(transaction=False)
        if namespace is not None:  # the minute series, in the same round trip
            series.count(namespace, status, ran, bound, time.time(), pipe=pipe)
        pipe.hincrby(names.METRIC_RUNS_FINISHED, status, 1)
        if ran is not None and bound is not None:
            pipe.hincrby(names.METRIC_RUN_DURATION, _bucket_key(bound), 1)
            pipe.hincrbyfloat(names.METRIC_RUN_DURATION, "sum", float(ran))
            pipe.hincrby(names.METRIC_RUN_DURATION, "count", 1)
        if namespace is not None and job_id:
            keys = (Index.monitored_key(namespace), names.METRIC_JOB_RUNS_PREFIX + job_id)
            pipe.eval(_COUNT_MONITORED, 2, *keys, job_id, status)
        pipe.execute()
    except Exception as exc:  # noqa: BLE001
        log.debug("metric not counted: %s", exc)


def job_run_counts(job_ids: list[str], redis) -> dict[str, dict[str, int]]:
    """The ended attempts counted for each of ``job_ids`` (monitored jobs), by status."""
    pipe = redis.pipeline(transaction=False)
    for job_id in job_ids:
        pipe.hgetall(names.METRIC_JOB_RUNS_PREFIX + job_id)
    counts = pipe.execute() if job_ids else []
    return {job_id: {status: int(n) for status, n in raw.items()} for job_id, raw in zip(job_ids, counts, strict=True)}


def queue_depths(queues: list[str], redis) -> dict[str, int]:
    pipe = redis.pipeline(transaction=False)
    layout = [(queue, level_keys(queue)) for queue in queues]
    for _queue, lists in layout:
        for key in lists:
            pipe.llen(key)
    counts = iter(pipe.execute())
    return {queue: sum(next(counts) for _ in lists) for queue, lists in layout}


class HydraCollector:
    """A prometheus_client collector that reads everything from Redis when scraped."""

    def __init__(self, registry: Registry | None = None):
        self.registry = registry or Registry()

    def collect(self) -> list:
        """Every metric family, read now (BrokerUnavailable when Redis does not answer)."""
        with translated():
            return list(self._families())

    def _families(self):
        redis = self.registry.redis
        submitted = CounterMetricFamily(
            "hydra_jobs_submitted", "Jobs accepted, by where they came from.", labels=["source"]
        )
        for source, value in sorted(redis.hgetall(names.METRIC_JOBS_SUBMITTED).items()):
            submitted.add_metric([source], int(value))
        yield submitted

        finished = CounterMetricFamily(
            "hydra_runs_finished", "Run attempts ended, by recorded status.", labels=["status"]
        )
        for status, value in sorted(redis.hgetall(names.METRIC_RUNS_FINISHED).items()):
            finished.add_metric([status], int(value))
        yield finished

        raw = redis.hgetall(names.METRIC_RUN_DURATION)
        cumulative, buckets = 0, []
        for bound in DURATION_BUCKETS:
            cumulative += int(raw.get(_bucket_key(bound), 0))
            buckets.append((_bucket_key(bound), cumulative))
        yield HistogramMetricFamily(
            "hydra_run_duration_seconds",
            "How long commands ran (seconds).",
            buckets=buckets,
            sum_value=float(raw.get("sum", 0)),
        )

        records = self.registry.records()
        queues = {names.worker_queue(wid): wid for wid in sorted(records)}
        queues[names.PENDING_QUEUE] = ""
        depths = queue_depths(list(queues), redis)
        depth = GaugeMetricFamily("hydra_queue_depth", "Messages waiting in a queue.", labels=["queue", "worker"])
        for queue, worker in queues.items():
            depth.add_metric([queue, worker], depths[queue])
        yield depth
        yield GaugeMetricFamily(
            "hydra_pending_runs", "Runs waiting for an eligible worker.", value=depths[names.PENDING_QUEUE]
        )
        yield GaugeMetricFamily(
            "hydra_delayed_runs", "Runs waiting for their start time (retries, one-offs).", value=DueIndex(redis).size()
        )

        online = sum(1 for r in records.values() if r.status == "online")
        yield GaugeMetricFamily("hydra_workers_online", "Workers the controller sees online.", value=online)
        yield GaugeMetricFamily("hydra_workers_offline", "Known workers that are offline.", value=len(records) - online)
        load = GaugeMetricFamily("hydra_worker_load", "Runs routed to a worker and not finished.", labels=["worker"])
        loads = self.registry.loads()
        for wid in sorted(records):
            load.add_metric([wid], loads.get(wid, 0))
        yield load
        drained = self.registry.drained()
        draining = GaugeMetricFamily(
            "hydra_worker_drained", "1 for a worker drained by an operator (no new placements).", labels=["worker"]
        )
        for wid in sorted(set(records) | drained):
            draining.add_metric([wid], 1 if wid in drained else 0)
        yield draining
        yield GaugeMetricFamily("hydra_workers_drained", "Workers drained by an operator.", value=len(drained))
        yield GaugeMetricFamily(
            "hydra_controller_up",
            "1 while a controller is alive.",
            value=1 if redis.exists(names.CONTROLLER_ALIVE_KEY) else 0,
        )
        index = Index(redis)
        if index.built("runs"):
            spaces = index.namespaces()
            dead = GaugeMetricFamily(
                "hydra_dead_letters", "Dead letters not retried, by namespace.", labels=["namespace"]
            )
            for namespace, size in zip(spaces, index.counts([index.dead_keys(ns)[0] for ns in spaces]), strict=True):
                dead.add_metric([namespace], size)
            yield dead

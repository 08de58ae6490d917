"""Metrics per job on in-memory stores: the ``monitor`` field's rules, a job's last success and
failure kept by the end's mirror, the per-job counters of monitored jobs only, a cron job's due
tick, pending runs and online workers by tag (``hydra.control.job_metrics``)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from hydra import clock, names
from hydra.broker.metrics import HydraCollector
from hydra.control.job_metrics import JobCollector
from hydra.errors import InvalidJob
from hydra.model.message import load_message
from hydra.model.monitoring import due_tick, ending
from hydra.model.spec import load_job
from hydra.model.status import RunStatus
from tests.unit.test_attempts import end, started

CRON = {"schedule": "*/5 * * * *"}


def scrape(memory) -> dict:
    """Every sample /metrics would serve, by (name, labels)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HydraCollector(memory.registry))
    registry.register(JobCollector(memory.pipeline.jobs, memory.registry))
    samples = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def job_labels(job, **more) -> tuple:
    return tuple(sorted({"job_id": job.id, "job_name": job.name, "namespace": job.namespace, **more}.items()))


# -- the field --------------------------------------------------------------------------------
def test_monitor_is_true_or_false_and_off_by_default():
    base = {"name": "n", "command": "true"}
    assert load_job(base)["monitor"] is False
    assert load_job({**base, "monitor": True})["monitor"] is True
    for bad in (1, "true", "yes", None):
        with pytest.raises(InvalidJob) as caught:
            load_job({**base, "monitor": bad})
        assert "monitor" in caught.value.errors


def test_no_message_carries_monitor():
    """Monitoring belongs to the stored job, like its schedule: a task message naming it is refused."""
    with pytest.raises(InvalidJob) as caught:
        load_message({"user": "u", "command": "true", "monitor": True})
    assert "monitor" in caught.value.errors


def test_which_ends_are_a_success_or_a_failure_for_good():
    assert ending("succeeded") == "success"
    assert {s: ending(s) for s in ("failed", "timed_out", "dead_letter")} == dict.fromkeys(
        ("failed", "timed_out", "dead_letter"), "failure"
    )
    assert [ending(s) for s in ("retrying", "lost", "cancelled", "queued", "nonsense")] == [None] * 5


def test_the_due_tick_is_the_first_after_the_last_handled_tick_or_the_start():
    at = clock.from_epoch(1_800_000_000)  # 2027-01-15 08:00 UTC
    assert due_tick("0 * * * *", None, last_fire_at=None, since=at) == at + timedelta(hours=1)
    later = at + timedelta(hours=3)
    assert due_tick("0 * * * *", "UTC", last_fire_at=later, since=at) == later + timedelta(hours=1)


# -- last success and failure, kept on the job --------------------------------------------------
def test_the_end_moves_the_jobs_last_success_and_failure_and_never_back(memory):
    job, run_id = started(memory, retries=1, **CRON)
    assert end(memory, job, run_id, "failed", returncode=1)  # a retry follows: not a failure yet
    stored = memory.pipeline.jobs.get(job.id)
    assert stored.last_failure_at is None and stored.last_success_at is None

    jobs = memory.pipeline.jobs
    now = clock.utcnow().replace(microsecond=0)
    jobs.mirror(job.id, "r1", RunStatus.SUCCEEDED, ended_at=now)
    jobs.mirror(job.id, "r0", RunStatus.SUCCEEDED, ended_at=now - timedelta(hours=1))  # an older end, late
    jobs.mirror(job.id, "r2", RunStatus.DEAD_LETTER, ended_at=now + timedelta(seconds=5))
    jobs.mirror(job.id, "r3", RunStatus.QUEUED)  # recording a run changes neither
    stored = jobs.get(job.id)
    assert stored.last_success_at == now
    assert stored.last_failure_at > stored.last_success_at


def test_a_failure_for_good_and_a_success_reach_the_job(memory):
    job, run_id = started(memory, retries=0)
    assert end(memory, job, run_id, "timed_out")
    failed_at = memory.pipeline.jobs.get(job.id).last_failure_at
    assert failed_at is not None
    job2, run2 = started(memory, name="ok", command="true")
    assert end(memory, job2, run2, "succeeded", returncode=0)
    assert memory.pipeline.jobs.get(job2.id).last_success_at is not None
    assert memory.pipeline.jobs.get(job2.id).last_failure_at is None


# -- per-job counters ---------------------------------------------------------------------------
def test_only_monitored_jobs_get_counters(memory):
    watched, run_w = started(memory, name="watched", monitor=True)
    plain, run_p = started(memory, name="plain")
    assert end(memory, watched, run_w, "failed", returncode=1)
    assert end(memory, plain, run_p, "failed", returncode=1)
    assert memory.redis.hgetall(names.METRIC_JOB_RUNS_PREFIX + watched.id) == {"retrying": "1"}
    assert not memory.redis.exists(names.METRIC_JOB_RUNS_PREFIX + plain.id)

    samples = scrape(memory)
    key = ("hydra_job_runs_finished_total", job_labels(watched, status="retrying"))
    assert samples[key] == 1
    assert not any(
        name == "hydra_job_runs_finished_total" and ("job_id", plain.id) in labels for name, labels in samples
    )
    # A monitored job without a schedule gets its last times too; the plain one none.
    assert ("hydra_job_last_failure_timestamp_seconds", job_labels(watched)) in samples
    assert ("hydra_job_last_failure_timestamp_seconds", job_labels(plain)) not in samples


def test_turning_monitor_off_stops_the_counting_and_the_series(memory):
    job, run_id = started(memory, monitor=True)
    memory.pipeline.jobs.replace(job.id, load_job({**job.spec(), "monitor": False}), schedule_changed=False)
    assert end(memory, job, run_id, "succeeded", returncode=0)
    assert not memory.redis.exists(names.METRIC_JOB_RUNS_PREFIX + job.id)
    assert not any(labels and ("job_id", job.id) in labels for _, labels in scrape(memory))


# -- cron jobs ----------------------------------------------------------------------------------
def test_cron_jobs_show_their_last_times_and_due_tick_and_paused_or_deleted_ones_less(memory):
    jobs = memory.pipeline.jobs
    nightly = jobs.create(load_job({"name": "nightly", "user": "u", "command": "true", **CRON}))
    paused = jobs.create(load_job({"name": "paused", "user": "u", "command": "true", **CRON}))
    gone = jobs.create(load_job({"name": "gone", "user": "u", "command": "true", **CRON}))
    jobs.pause(paused.id)
    jobs.mark_deleted(gone.id)
    # Its scheduler handled a tick an hour ago and none since: the due tick is in the past.
    hour_ago = clock.utcnow() - timedelta(hours=1)
    jobs.set_schedule_since(nightly.id, hour_ago - timedelta(minutes=1))
    jobs.remember_tick(nightly.id, hour_ago.replace(minute=hour_ago.minute - hour_ago.minute % 5, second=0))

    samples = scrape(memory)
    due = samples[("hydra_job_next_fire_timestamp_seconds", job_labels(nightly))]
    assert due < clock.epoch() - 3000  # missed: an alert's `time() - due > 300` holds
    assert samples[("hydra_job_last_success_timestamp_seconds", job_labels(nightly))] == 0
    assert ("hydra_job_next_fire_timestamp_seconds", job_labels(paused)) not in samples
    assert ("hydra_job_last_success_timestamp_seconds", job_labels(paused)) in samples
    assert not any(("job_id", gone.id) in labels for _, labels in samples)


def test_a_stored_schedule_that_never_fires_does_not_break_the_scrape(memory):
    job = memory.pipeline.jobs.create(load_job({"name": "feb", "user": "u", "command": "true", **CRON}))
    memory.db[names.JOB_DEFINITIONS].update_one({"_id": job.id}, {"$set": {"schedule": "0 0 31 2 *"}})
    samples = scrape(memory)
    assert ("hydra_job_last_success_timestamp_seconds", job_labels(job)) in samples
    assert ("hydra_job_next_fire_timestamp_seconds", job_labels(job)) not in samples


# -- tags -----------------------------------------------------------------------------------------
def test_pending_runs_by_tag_and_online_workers_by_tag(memory):
    memory.worker("cpu1", tags=("linux-big",))
    memory.worker("old", tags=("gpu",), status="offline")
    gpu = memory.pipeline.jobs.create(
        load_job({"name": "g", "user": "u", "command": "true", "affinity": {"tags": ["gpu"]}})
    )
    for _ in range(2):
        assert memory.pipeline.dispatch(gpu).status.value == "pending"
    samples = scrape(memory)
    assert samples[("hydra_pending_runs_by_tag", (("tag", "gpu"),))] == 2
    assert samples[("hydra_workers_online_by_tag", (("tag", "gpu"),))] == 0
    assert samples[("hydra_workers_online_by_tag", (("tag", "linux-big"),))] == 1
    memory.worker("gpu1", tags=("gpu",))
    assert scrape(memory)[("hydra_workers_online_by_tag", (("tag", "gpu"),))] == 1


def test_dead_letters_by_namespace(memory):
    job, run_id = started(memory, retries=0, max_lost=1)
    assert end(memory, job, run_id, "lost", by="controller")
    assert memory.pipeline.runs.get(run_id).status == "dead_letter"
    assert scrape(memory)[("hydra_dead_letters", (("namespace", "default"),))] == 1


def test_mongodb_unreachable_leaves_the_job_families_out_and_the_rest_is_served(memory, monkeypatch):
    from hydra.errors import StoreUnavailable

    started(memory, monitor=True, **CRON)

    def down(*args, **kwargs):
        raise StoreUnavailable("mongodb is down")

    monkeypatch.setattr(memory.pipeline.jobs, "watched", down)
    monkeypatch.setattr(memory.pipeline.jobs, "find_many", down)
    memory.worker("gpu1", tags=("gpu",))
    served = {name for name, _labels in scrape(memory)}  # no exception: a 200, not a 503
    assert {"hydra_controller_up", "hydra_workers_online", "hydra_workers_online_by_tag"} <= served
    assert not any(name.startswith("hydra_job_") for name in served)

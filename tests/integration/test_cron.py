"""Cron on the real stack: the controller's scheduler leads, fires ticks exactly once, and
follows the misfire and overlap policies; a second scheduler's tick is a no-op."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from hydra import names
from hydra.broker.redis import get_redis
from hydra.broker.schedules import ScheduleFeed
from hydra.celery.app import app
from hydra.control.scheduler import Scheduler
from hydra.model.cron import tick_run_id
from hydra.model.records import Run
from hydra.store.jobs import JobStore
from hydra.store.runs import RunStore
from tests.helpers import submit, wait_run, wait_ticks, wait_until

UTC = UTC
#: Every minute of the first hour of 1 January: the controller's own scheduler (real clock)
#: does not fire it during a test run; tests drive a second scheduler with a fake clock.
NEW_YEAR = "* 0 1 1 *"
Y = 2031


def at(minute: int, second: int = 1) -> datetime:
    return datetime(Y, 1, 1, 0, minute, second, tzinfo=UTC)


def runs_of(job_id: str) -> list[Run]:
    return RunStore().for_job(job_id)


def cron_job(api, command: str, schedule: str, **fields) -> str:
    created = submit(api, command, schedule=schedule, **fields)
    assert created["status"] == "scheduled" and created["run_id"] is None
    return created["job_id"]


def backdate(job_id: str, since: datetime) -> None:
    """Pretend the job's schedule has existed since ``since`` and tell the scheduler."""
    JobStore().set_schedule_since(job_id, since)
    ScheduleFeed().notify(job_id)


def daily_tick_minutes_ago(minutes: int) -> tuple[str, datetime]:
    """A daily cron expression whose latest tick was ``minutes`` ago, and that tick."""
    tick = (datetime.now(UTC) - timedelta(minutes=minutes)).replace(second=0, microsecond=0)
    return f"{tick.minute} {tick.hour} * * *", tick


def test_one_scheduler_leads(stack):
    token = wait_until(lambda: get_redis().get(names.SCHEDULER_LEADER_KEY), 15, message="a leader")
    assert f":{stack.pid('controller')}/" in token  # <host>:<pid>/<random> (hydra.broker.lease)
    standby = Scheduler(app.pipeline)
    assert standby.acquire() is False and standby.leader is False


def test_a_missed_tick_runs_once_and_a_second_scheduler_cannot_fire_it_again(api, stack):
    expr, tick = daily_tick_minutes_ago(5)  # 5 min late: beyond the 60 s grace, a missed tick
    job_id = cron_job(api, "echo caught up", expr, misfire="run_once")
    assert runs_of(job_id) == []
    backdate(job_id, tick - timedelta(days=1))  # the controller's scheduler sees it missed today's tick

    run = wait_until(lambda: next(iter(runs_of(job_id)), None), 10, message="the missed tick's run")
    assert run.id == tick_run_id(job_id, tick) and run.not_before == tick
    assert wait_run(run.id).stdout == "caught up\n"
    job = api.get(f"/jobs/{job_id}").json
    assert job["last_fire_at"].startswith(tick.isoformat()[:19])

    second = Scheduler(app.pipeline)  # e.g. a paused ex-leader waking up: it fires the same tick again
    assert second.fire(JobStore().get(job_id), tick) is None
    wait_ticks(2)
    assert [r.id for r in runs_of(job_id)] == [run.id]
    api.delete(f"/jobs/{job_id}")


def test_a_missed_tick_is_skipped_under_misfire_skip(api, stack):
    expr, tick = daily_tick_minutes_ago(5)
    job_id = cron_job(api, "echo never", expr, misfire="skip")
    backdate(job_id, tick - timedelta(days=1))
    job = wait_until(
        lambda: (j := api.get(f"/jobs/{job_id}").json).get("last_skipped_at") and j, 10, message="the tick handled"
    )
    assert job["last_skipped_at"].startswith(tick.isoformat()[:19]) and runs_of(job_id) == []
    assert job["next_run_at"].startswith((tick + timedelta(days=1)).isoformat()[:16])
    api.delete(f"/jobs/{job_id}")


def wait_job_idle(api, job_id: str) -> None:
    """The job's status (its latest run's, mirrored after the run's own record) left the active ones."""
    wait_until(
        lambda: api.get(f"/jobs/{job_id}").json["status"] not in ("pending", "queued", "running"),
        10,
        message="the job's run ended",
    )


def _fake_scheduler(job_id: str) -> Scheduler:
    scheduler = Scheduler(app.pipeline, grace=60)
    JobStore().set_schedule_since(job_id, at(0, 0) - timedelta(seconds=30))
    scheduler.refresh(job_id)
    assert job_id in scheduler.entries
    return scheduler


def test_overlap_forbid_skips_ticks_while_the_previous_run_is_active(api, stack):
    job_id = cron_job(api, "sleep 1.5", NEW_YEAR, overlap="forbid")
    scheduler = _fake_scheduler(job_id)
    scheduler.fire_due(at(0))
    (first,) = runs_of(job_id)
    assert first.id == tick_run_id(job_id, at(0, 0))
    wait_run(first.id, statuses=["running"])
    scheduler.fire_due(at(1))  # still running: this tick is skipped
    assert len(runs_of(job_id)) == 1
    assert api.get(f"/jobs/{job_id}").json["last_skipped_at"].startswith(at(1, 0).isoformat()[:19])
    wait_run(first.id)
    wait_job_idle(api, job_id)
    scheduler.fire_due(at(2))
    assert {r.id for r in runs_of(job_id)} == {first.id, tick_run_id(job_id, at(2, 0))}
    api.delete(f"/jobs/{job_id}")


def test_overlap_queue_starts_one_waiting_tick_when_the_previous_run_ends(api, stack):
    job_id = cron_job(api, "sleep 1.5", NEW_YEAR, overlap="queue")
    scheduler = _fake_scheduler(job_id)
    scheduler.fire_due(at(0))
    first = wait_run(tick_run_id(job_id, at(0, 0)), statuses=["running"])
    scheduler.fire_due(at(1))  # waits for the first run
    scheduler.fire_due(at(2))  # one tick waits already: this one is skipped
    assert [r.id for r in runs_of(job_id)] == [first.id]
    assert JobStore().get(job_id).queued_tick == at(1, 0)

    first = wait_run(first.id)
    wait_job_idle(api, job_id)
    scheduler.fire_due(at(2, 30))
    waited = wait_run(tick_run_id(job_id, at(1, 0)))
    assert waited.status == "succeeded" and waited.started_at >= first.finished_at
    assert len(runs_of(job_id)) == 2 and JobStore().get(job_id).queued_tick is None
    api.delete(f"/jobs/{job_id}")


def test_paused_and_deleted_schedules_do_not_fire(api, stack):
    job_id = cron_job(api, "echo tick", NEW_YEAR)
    scheduler = _fake_scheduler(job_id)
    api.post(f"/jobs/{job_id}/pause")
    scheduler.refresh(job_id)
    scheduler.fire_due(at(0))
    assert job_id not in scheduler.entries and runs_of(job_id) == []

    api.post(f"/jobs/{job_id}/resume")
    scheduler.refresh(job_id)
    assert job_id in scheduler.entries
    api.delete(f"/jobs/{job_id}")
    scheduler.fire_due(at(0))  # the scheduler re-reads the job before firing: deleted meanwhile
    assert runs_of(job_id) == [] and job_id not in scheduler.entries


def test_a_standby_takes_over_when_the_leader_stops(api, stack):
    standby = Scheduler(app.pipeline, lock_ttl=3)
    stop = threading.Event()
    standby.stop = stop
    thread = threading.Thread(target=standby.run, daemon=True)
    thread.start()
    try:
        stack.stop("controller")  # releases its lock on the way out
        wait_until(lambda: standby.leader, 10, message="the standby leads")
        assert get_redis().get(names.SCHEDULER_LEADER_KEY) == standby.token
    finally:
        stack.start_controller()
        stop.set()
        thread.join(timeout=5)
    assert not standby.leader  # released on exit
    wait_until(
        lambda: f":{stack.pid('controller')}/" in (get_redis().get(names.SCHEDULER_LEADER_KEY) or ""),
        15,
        message="the controller's scheduler leads again",
    )

"""Failover without loss: dead and frozen workers, Redis and MongoDB outages, poison jobs,
two controllers, rolling restarts, long jobs and a bounded chaos run - on the real stack."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from pathlib import Path

import psutil
import pytest

from hydra import names
from hydra.broker.redis import get_redis
from hydra.broker.registry import Registry
from hydra.celery import watchdog
from hydra.execution.executors.base import KILL_GRACE
from hydra.model.records import Run
from hydra.settings import get_settings
from hydra.store.runs import RunStore
from hydrastack import WorkerSpec
from tests.helpers import submit, unique, wait_run, wait_ticks, wait_until

pytestmark = pytest.mark.slow


def tree(pid: int) -> list[psutil.Process]:
    """A worker's main process with all its descendants (pool processes and commands)."""
    assert pid, "no such process"  # psutil.Process(None) would be this test process
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def signal_tree(pid: int, sig: int) -> None:
    procs = tree(pid)
    for proc in procs:
        try:
            proc.send_signal(sig)
        except psutil.NoSuchProcess:
            pass
    if sig == signal.SIGKILL:  # dead before anyone restarts it (zombies count as dead)
        wait_until(
            lambda: all(not p.is_running() or p.status() == psutil.STATUS_ZOMBIE for p in procs),
            10,
            message="killed processes gone",
        )


def attempts(job_id: str) -> list[Run]:
    return sorted(RunStore().for_job(job_id, limit=1000), key=lambda r: r.attempt)


def ledger_command(ledger: Path, seconds: float | str) -> str:
    """Appends 'start', then 'end' or 'killed' lines (run id, epoch time) to the ledger (bash's
    $EPOCHREALTIME: no `date` child, which the SIGTERM ending the command could kill mid-line)."""
    line = f'"$HYDRA_RUN_ID $EPOCHREALTIME" >> {ledger}'
    return f"echo start {line}; trap 'echo killed {line}; exit 143' TERM; sleep {seconds} & wait $!; echo end {line}"


def read_ledger(ledger: Path) -> list[tuple[str, str, float]]:
    if not ledger.exists():
        return []
    rows = []
    for line in ledger.read_text().splitlines():
        kind, run_id, at = line.split()
        rows.append((kind, run_id, float(at)))
    return rows


#: What a worker logs when the result backend is refused an attempt's end (hydra.celery.backend),
#: and when it ignores a message for an attempt that ended or is held (hydra.celery.worker.admit).
LATE_RESULT = "late result discarded"
SUPERSEDED = "superseded message ignored"


def logged(stack, name: str, text: str) -> int:
    """How many lines of process ``name``'s log contain ``text``."""
    return sum(text in line for line in stack.log_path(name).read_text(errors="replace").splitlines())


def tagged_worker(worker_factory, tag: str, name: str | None = None, concurrency: int = 1, **kw) -> WorkerSpec:
    return worker_factory(WorkerSpec(name or unique("w"), f"os.linux,tag.{tag}", concurrency=concurrency, **kw))


def test_a_killed_workers_running_and_queued_runs_fail_over_within_10s(api, stack, worker_factory):
    tag = unique("fo").lower()
    victim = tagged_worker(worker_factory, tag)
    affinity = {"os": ["linux"], "tags": [tag]}
    running = submit(api, "sleep 30", affinity=affinity)
    queued = submit(api, "echo second", affinity=affinity)
    wait_run(running["run_id"], statuses=["running"])
    assert RunStore().get(queued["run_id"]).worker_id == victim.node
    survivor = tagged_worker(worker_factory, tag, concurrency=2)

    signal_tree(stack.pid(victim.process_name), signal.SIGKILL)
    killed = time.monotonic()
    for created in (running, queued):
        lost = wait_run(created["run_id"], statuses=["lost"], timeout=15)
        assert lost.worker_id == victim.node and lost.ended_by.startswith("controller@")
        second = wait_until(
            lambda created=created: next(
                (r for r in attempts(created["job_id"]) if r.attempt == 2 and r.status in ("running", "succeeded")),
                None,
            ),
            15,
            message="attempt 2 started",
        )
        assert second.worker_id == survivor.node and second.retry_of == created["run_id"]
    assert time.monotonic() - killed <= 10.0
    assert wait_run(attempts(queued["job_id"])[-1].id).stdout == "second\n"
    assert Registry().queued(names.worker_queue(victim.node)) == 0  # nothing left to run later


#: How long a resumed worker's watchdog takes at most to stop an attempt that was ended
#: elsewhere, from the configured timings: its slower read (the end fence in MongoDB: every
#: FENCE_EVERY, giving up after FENCE_TIMEOUT) sees the end, then SIGTERM and the kill grace.
#: The documented bound is tighter (the stop flag in Redis, every 0.25 s); this one leaves
#: room for a loaded machine without being a stopwatch.
STOP_BOUND = watchdog.FENCE_EVERY + watchdog.FENCE_TIMEOUT + KILL_GRACE


def run_processes(run_id: str) -> list[psutil.Process]:
    """The processes of a run's command (each carries HYDRA_RUN_ID in its environment)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("HYDRA_RUN_ID") == run_id:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def test_a_frozen_worker_cannot_overwrite_or_rerun_after_it_resumes(api, stack, worker_factory, shared):
    """The rule, not a stopwatch: the resumed attempt is stopped by its watchdog (it would
    otherwise sleep on for minutes), its late result is refused, and the job completed
    exactly once. The waits are bounds derived from the settings, with room for a loaded
    machine."""
    tag = unique("frz").lower()
    frozen = tagged_worker(worker_factory, tag)
    affinity = {"os": ["linux"], "tags": [tag]}
    ledger = shared / "ledger"
    # Attempt 1 sleeps far longer than the test: only its watchdog can end it once resumed
    # (a short sleep would have run out while it was frozen). Attempt 2 is short.
    command = ledger_command(ledger, '"$([ "$HYDRA_ATTEMPT" = 1 ] && echo 300 || echo 2)"')
    created = submit(api, command, affinity=affinity, timeout=600)
    wait_until(lambda: read_ledger(ledger), 30, message="attempt 1 started")
    assert len(run_processes(created["run_id"])) >= 1
    healthy = tagged_worker(worker_factory, tag)

    settings = get_settings()
    # Seen offline after offline_after heartbeat intervals (2 s), then failed over by a tick.
    detect = settings.offline_after * 2.0 + settings.leader_ttl + 10 * settings.controller_tick
    pid = stack.pid(frozen.process_name)
    signal_tree(pid, signal.SIGSTOP)  # worker, pool process and command, all frozen
    first = wait_run(created["run_id"], statuses=["lost"], timeout=3 * detect)
    second = wait_until(
        lambda: next((r for r in attempts(created["job_id"]) if r.attempt == 2), None),
        3 * detect,
        message="attempt 2",
    )
    second = wait_run(second.id, timeout=60)
    assert second.status == "succeeded" and second.worker_id == healthy.node

    late = logged(stack, frozen.process_name, LATE_RESULT)
    signal_tree(pid, signal.SIGCONT)
    resumed = time.time()
    # The old attempt stops: every process of its command is gone, and it never ran to its end.
    wait_until(lambda: not run_processes(first.id), 3 * STOP_BOUND, message="the resumed attempt to stop")
    stopped = time.time()
    assert not any(k == "end" and r == first.id for k, r, _ in read_ledger(ledger)), "attempt 1 ran to its end"
    # The resumed worker's result for attempt 1 reaches the result backend, which is refused
    # the end fence (the controller recorded "lost") and logs it as discarded.
    wait_until(
        lambda: logged(stack, frozen.process_name, LATE_RESULT) > late, 30, message="the late result to try to land"
    )
    assert RunStore().get(first.id).status == "lost"  # not overwritten by the late result
    assert RunStore().get(second.id).status == "succeeded"
    assert [r.attempt for r in attempts(created["job_id"])] == [1, 2]  # completed exactly once

    # The overlap bound: attempt 2 ran while attempt 1 was frozen, and attempt 1 was stopped
    # within STOP_BOUND of its resumption (its TERM trap's line when it had time to write it,
    # else the moment its processes were seen gone).
    rows = read_ledger(ledger)
    second_start = min(at for kind, run_id, at in rows if run_id == second.id and kind == "start")
    assert second_start < resumed
    killed = [at for kind, run_id, at in rows if run_id == first.id and kind == "killed"]
    first_end = killed[0] if killed else stopped
    assert first_end - resumed <= STOP_BOUND, f"attempt 1 stopped {first_end - resumed:.2f}s after it resumed"

    # A message for the superseded attempt is not executed, even delivered straight to the worker.
    from hydra import run_command

    superseded = logged(stack, frozen.process_name, SUPERSEDED)
    run_command.apply_async(
        kwargs={  # the job as stored: a message for a stored job may not bring a command of its own
            "command": command,
            "user": "tester",
            "affinity": affinity,
            "job_id": created["job_id"],
        },
        task_id=first.id,
        queue=names.worker_queue(frozen.node),
    )
    wait_until(
        lambda: logged(stack, frozen.process_name, SUPERSEDED) > superseded,
        10,
        message="the worker to ignore the superseded message",
    )
    assert sum(1 for kind, run_id, _ in read_ledger(ledger) if kind == "start" and run_id == first.id) == 1


def chains(job_ids: list[str]) -> dict[str, list[Run]]:
    """Every attempt of these jobs, by job, in attempt order (one query: FerretDB scans)."""
    found: dict[str, list[Run]] = {job_id: [] for job_id in job_ids}
    for run in RunStore().of_jobs(job_ids):
        found[run.job_id].append(run)
    return {job_id: sorted(runs, key=lambda r: r.attempt) for job_id, runs in found.items()}


def _settled(chain: list[Run]) -> bool:
    """The chain has reached its end: the last attempt is final and nothing follows it."""
    return bool(chain) and chain[-1].status in ("succeeded", "failed", "timed_out", "cancelled", "dead_letter")


def _exactly_one_success_each(job_ids: list[str], timeout: float = 90) -> None:
    try:
        everything = wait_until(
            lambda: (c := chains(job_ids)) and all(_settled(a) for a in c.values()) and c,
            timeout,
            interval=1.0,
            message=f"{len(job_ids)} jobs to settle",
        )
    except AssertionError:
        unsettled = {
            j: [(r.status, r.worker_id, r.queue, r.pending_reason) for r in c]
            for j, c in chains(job_ids).items()
            if not _settled(c)
        }
        raise AssertionError(f"{len(unsettled)} of {len(job_ids)} jobs did not settle: {unsettled}") from None
    for job_id, chain in everything.items():
        statuses = [r.status for r in chain]
        assert statuses.count("succeeded") == 1 and statuses[-1] == "succeeded", (job_id, statuses)


def test_redis_flushed_under_load_loses_no_accepted_job(api, stack):
    jobs = [submit(api, f"sleep {random.choice([0.2, 0.5, 1.0])}; echo {i}")["job_id"] for i in range(30)]
    time.sleep(1.0)
    stack._redis().flushall()  # as Redis's operator: Hydra's own user may not flush it
    jobs += [submit(api, "echo after-flush")["job_id"] for _ in range(5)]
    _exactly_one_success_each(jobs)


def test_redis_killed_and_restarted_loses_no_accepted_job(api, stack):
    jobs = [submit(api, f"sleep {random.choice([0.2, 0.5, 1.0])}")["job_id"] for _ in range(20)]
    time.sleep(0.5)
    stack.kill("redis")
    during = api.post("/jobs/", json={"name": "during-outage", "user": "tester", "command": "echo ok"})
    assert during.status_code == 201 and during.json["status"] == "pending"
    assert api.get("/health").status_code == 503 and "redis" in api.get("/health").json["down"]
    time.sleep(2)
    stack.start_redis()
    _exactly_one_success_each([*jobs, during.json["job_id"]])
    wait_until(lambda: api.get("/health").status_code == 200, 30, message="health back")


def test_mongodb_down_for_10s_under_load_loses_no_run_record(api, stack):
    # Healthy first: a controller restarted by an earlier test may not have marked itself
    # alive yet, and /health would then name it down too.
    wait_until(lambda: api.get("/health").status_code == 200, 60, interval=0.5, message="a healthy stack")
    before = [submit(api, f"sleep {s}; echo done")["job_id"] for s in (1, 2, 3, 4, 5, 6, 8, 10)]
    time.sleep(0.5)
    stack.stop("mongo")
    try:
        response = api.post("/jobs/", json={"name": "x", "user": "tester", "command": "echo"})
        assert response.status_code == 503 and response.is_json and "mongodb" in response.json["message"]
        health = api.get("/health")
        assert health.status_code == 503 and health.json["down"] == ["mongodb"]
        time.sleep(10)
    finally:
        stack.start_mongo()
    _exactly_one_success_each(before)
    for job_id in before:
        assert attempts(job_id)[-1].stdout == "done\n"


def test_a_poison_job_is_dead_lettered_and_others_keep_flowing(api, stack, worker_factory):
    """A job whose pool process dies each time (as the OOM killer would do it: a job cannot
    kill its pool process itself, it runs unprivileged in its own pid namespace). Its
    daemon, detached with ``setsid env -i`` (no session, no HYDRA_RUN_ID), dies with each
    attempt all the same: it is in the run's cgroup."""
    tag = unique("poison").lower()
    tagged_worker(worker_factory, tag, concurrency=2)
    marker = f"sleep 31{os.getpid() % 100}.7"
    poison = submit(api, f"(setsid env -i {marker} &); sleep 30", affinity={"os": ["linux"], "tags": [tag]})
    healthy = [submit(api, "echo fine", affinity={"os": ["linux"], "tags": [tag]})["job_id"] for _ in range(6)]
    for attempt in (1, 2, 3):
        run = wait_until(
            lambda n=attempt: next((r for r in attempts(poison["job_id"]) if r.attempt == n), None),
            30,
            message=f"attempt {attempt}",
        )
        wait_run(run.id, statuses=["running"], timeout=30)
        wait_until(lambda: _marked(marker), 10, message="the poison's daemon runs")
        os.kill(RunStore().start_of(run.id).pid, signal.SIGKILL)  # its pool process dies
    chain = wait_until(
        lambda: (a := attempts(poison["job_id"])) and a[-1].status == "dead_letter" and a,
        60,
        message="poison job dead-lettered",
    )
    assert [r.status for r in chain] == ["lost", "lost", "dead_letter"]
    assert chain[-1].outcome == "lost" and "lost 3 times" in chain[-1].decision
    _exactly_one_success_each(healthy)
    wait_until(lambda: not _marked(marker), 10, message="no orphan of the poison job")


def _marked(marker: str) -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["cmdline"]) if marker in " ".join(p.info["cmdline"] or [])]


def test_standby_controller_takes_over_and_fails_over_once(api, stack, worker_factory):
    redis = get_redis()
    standby = stack.spawn("controller-b", stack.controller_command())
    try:
        leader_before = redis.get(names.LEADER_KEY)
        assert leader_before and str(stack.pid("controller")) in leader_before
        tag = unique("ha").lower()
        victim = tagged_worker(worker_factory, tag, concurrency=2)
        affinity = {"os": ["linux"], "tags": [tag]}
        jobs = [submit(api, "sleep 20", affinity=affinity) for _ in range(2)]
        for created in jobs:
            wait_run(created["run_id"], statuses=["running"])
        tagged_worker(worker_factory, tag, concurrency=2)

        stack.kill("controller")
        killed = time.monotonic()
        wait_until(lambda: str(standby.pid) in (redis.get(names.LEADER_KEY) or ""), 15, message="standby leads")
        assert time.monotonic() - killed <= 5.0 + 1.0  # lease TTL + one tick (with slack)

        signal_tree(stack.pid(victim.process_name), signal.SIGKILL)
        for created in jobs:
            wait_run(created["run_id"], statuses=["lost"], timeout=20)
        wait_ticks(12)  # 3 s of the standby's ticks: no second failover follows
        for created in jobs:
            chain = attempts(created["job_id"])
            assert [r.attempt for r in chain] == [1, 2]  # failed over exactly once
            assert chain[0].ended_by.endswith(str(standby.pid)) or str(standby.pid) in chain[0].ended_by
    finally:
        stack.stop("controller-b")
        stack.start_controller()


def test_rolling_restart_loses_and_duplicates_nothing(api, stack, worker_factory):
    tag = unique("roll").lower()
    specs = [tagged_worker(worker_factory, tag, concurrency=2) for _ in range(2)]
    affinity = {"os": ["linux"], "tags": [tag]}
    jobs = [submit(api, f"sleep {random.choice([0.3, 0.8, 1.5])}", affinity=affinity)["job_id"] for _ in range(30)]
    for spec in specs:
        time.sleep(1.0)
        stack.stop(spec.process_name)  # SIGTERM: Celery's warm shutdown
        stack.start_worker(spec)
    _exactly_one_success_each(jobs)
    for job_id in jobs:
        assert [r.status for r in attempts(job_id)] == ["succeeded"]  # nothing lost, nothing redone


def test_a_job_longer_than_the_visibility_timeout_starts_once(api, stack, worker_factory, shared):
    tag = unique("vis").lower()
    tagged_worker(worker_factory, tag, concurrency=2, env={"HYDRA_VISIBILITY_TIMEOUT": "2"})
    ledger = shared / "ledger"
    created = submit(api, ledger_command(ledger, 8), affinity={"os": ["linux"], "tags": [tag]})
    run = wait_run(created["run_id"], timeout=40)
    assert run.status == "succeeded"
    assert [kind for kind, _, _ in read_ledger(ledger)] == ["start", "end"]
    assert [r.attempt for r in attempts(created["job_id"])] == [1]


def test_chaos_every_accepted_job_ends_recorded_and_succeeds_once(api, stack, worker_factory):
    tag = unique("chaos").lower()
    # Without mingle/gossip (start-up sync Hydra does not use) a killed worker is back sooner.
    specs = [
        tagged_worker(
            worker_factory,
            tag,
            name=unique(f"chaos{i}"),
            concurrency=3,
            extra_args=["--without-mingle", "--without-gossip"],
        )
        for i in range(3)
    ]
    affinity = {"os": ["linux"], "tags": [tag]}
    rng, durations = random.Random(1234), random.Random(4321)
    jobs: list[str] = []

    def submit_all() -> None:
        for _ in range(300):
            jobs.append(
                submit(api, f"sleep {durations.uniform(0.1, 3.0):.2f}", affinity=affinity, max_lost=50)["job_id"]
            )

    # The kills start with the submissions: on a loaded machine submitting 300 jobs can take
    # as long as running them, and a chaos that began only afterwards would find little left.
    submitter = threading.Thread(target=submit_all, daemon=True)
    submitter.start()
    deadline = time.monotonic() + 150
    kills = 0

    def unfinished() -> int:
        return sum(not _settled(chain) for chain in chains(list(jobs)).values())

    while (submitter.is_alive() or unfinished()) and time.monotonic() < deadline - 40:
        left = unfinished()
        print(f"chaos: {left} jobs unfinished after {kills} kills", flush=True)
        time.sleep(4)
        spec = rng.choice(specs)
        if stack.is_running(spec.process_name):
            signal_tree(stack.pid(spec.process_name), signal.SIGKILL)
            kills += 1
        stack.start_worker(spec, wait=False)
    submitter.join(timeout=60)
    assert len(jobs) == 300
    assert kills >= 5
    _exactly_one_success_each(jobs, timeout=60)


def test_a_worker_restarted_before_it_was_seen_offline_loses_its_runs(api, stack, worker_factory):
    """Killed and restarted under the same name at once (what a container restart looks like,
    pid and all): the attempts its previous process started are failed over all the same."""
    tag = unique("quick").lower()
    worker = tagged_worker(worker_factory, tag, concurrency=2, extra_args=["--without-mingle", "--without-gossip"])
    created = submit(api, "sleep 30", affinity={"os": ["linux"], "tags": [tag]})
    wait_run(created["run_id"], statuses=["running"])
    signal_tree(stack.pid(worker.process_name), signal.SIGKILL)
    stack.start_worker(worker)  # back within the offline threshold
    lost = wait_run(created["run_id"], statuses=["lost"], timeout=20)
    assert "previous process" in lost.error
    second = wait_until(
        lambda: next((r for r in attempts(created["job_id"]) if r.attempt == 2), None), 15, message="attempt 2"
    )
    assert wait_run(second.id, statuses=["running"], timeout=20).worker_id == worker.node


def test_a_message_a_dead_process_had_taken_is_handed_back_when_the_worker_starts(api, stack, worker_factory):
    """A process of the worker took a message and died before it started the attempt (killed
    between delivery and start); kombu keeps such a message unacknowledged until the
    visibility timeout, an hour. When the worker's next process answers, the controller hands
    the message back to its queue, and the attempt runs - the first one, once."""
    import subprocess
    import sys

    from hydra.broker.registry import WorkerRecord
    from hydra.model.affinity import WorkerProfile

    tag = unique("taken").lower()
    spec = WorkerSpec(unique("tkn"), f"os.linux,tag.{tag}", concurrency=1)
    queue = names.worker_queue(spec.node)
    # The worker as the router last knew it (its previous process), before it took the message.
    profile = WorkerProfile(id=spec.node, os="linux", tags=frozenset({tag}), max_concurrency=1)
    registry = Registry()
    registry.put(WorkerRecord(profile=profile, status="online", seen_at=time.time(), last_heartbeat=time.time()))
    registry.set_load(spec.node, 0)
    created = submit(api, "echo ran", affinity={"os": ["linux"], "tags": [tag]})
    assert RunStore().get(created["run_id"]).queue == queue
    taker = (
        "import os, signal, sys\n"
        "from hydra.celery.app import app  # its transport options: the queue's priority keys\n"
        "with app.connection_for_write() as conn:\n"
        "    message = conn.SimpleQueue(sys.argv[1], no_ack=False).get(timeout=20)\n"
        "    print(message.headers['id'], flush=True)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)  # dies holding it, unacknowledged\n"
    )
    took = subprocess.run([sys.executable, "-c", taker, queue], capture_output=True, text=True, timeout=60)
    assert took.stdout.strip() == created["run_id"], took.stderr
    assert Registry().queued(queue) == 0  # only kombu's unacknowledged copy is left

    worker_factory(spec)  # its next process
    run = wait_run(created["run_id"], timeout=30)
    assert (run.status, run.stdout, run.worker_id) == ("succeeded", "ran\n", spec.node)
    assert [r.attempt for r in attempts(created["job_id"])] == [1]


def test_workers_offline_long_enough_are_forgotten(api, stack):
    from hydra.broker.registry import WorkerRecord
    from hydra.celery.app import app
    from hydra.control.controller import Controller
    from hydra.model.affinity import WorkerProfile

    controller = Controller(app, name="forgetful-test")
    gone = WorkerRecord(
        profile=WorkerProfile(id=unique("ghost") + "@h", os="linux"),
        status="offline",
        seen_at=time.time() - controller.settings.forget_after - 60,
    )
    controller.fleet.records[gone.profile.id] = gone
    controller.writer.publish(gone)
    assert Registry().get(gone.profile.id) is not None
    assert controller.gone.forget_long_gone() == [gone.profile.id]
    assert Registry().get(gone.profile.id) is None
    assert gone.profile.id not in {w["id"] for w in api.get("/workers/").json}

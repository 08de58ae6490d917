"""hydra.execution.reaper: a process that enabled the subreaper kills the daemons its commands
leave behind, collects every orphan it adopts (no zombie stays), and never takes a command's
own exit status.

Each test runs in a new process of its own (:func:`as_subreaper`): a subreaper must start
children only through ``execute()``, and pytest's process starts others (the stack, tools)."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from hydra.execution import isolation, reaper
from hydra.execution.command import build_argv, job_environment
from hydra.execution.process import execute
from hydra.execution.reaper import enable_subreaper
from hydra.settings import Settings
from tests.unit.test_executor import marker, run, shell_argv, sleepers

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs prctl")


def as_subreaper(fn, *args):
    """``fn(*args)`` in a new process that enabled the subreaper; its result, or its error."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_enabled, fn, *args).result(timeout=240)


def _enabled(fn, *args):
    assert enable_subreaper() is True
    return fn(*args)


def _zombie_children() -> list[int]:
    """This process's children that have exited but were not collected, once the reaper had
    its chance (a few seconds at most, even on a loaded machine); [] when none is left."""
    deadline = time.monotonic() + 10
    while True:
        zombies = [c.pid for c in psutil.Process().children() if c.status() == psutil.STATUS_ZOMBIE]
        if not zombies or time.monotonic() > deadline:
            return zombies
        time.sleep(0.05)


def _timeout_kills_the_whole_tree(duration: str):
    command = f"sleep {duration} & sleep {duration} & (setsid sleep {duration} &) ; sleep {duration}"
    began = time.monotonic()
    outcome = run(shell_argv(command), timeout=1)
    return outcome.status, outcome.error, outcome.returncode, time.monotonic() - began, _zombie_children()


def test_timeout_kills_the_whole_tree():
    duration = marker()  # the setsid double-fork is adopted, then killed, then collected
    status, error, returncode, took, zombies = as_subreaper(_timeout_kills_the_whole_tree, duration)
    assert (status, error, returncode) == ("timed_out", "timed out after 1s", -15)
    assert took < 5
    assert sleepers(duration) == [] and zombies == []


def _concurrent_orphan(duration: str):
    other: list = []
    # The other command outlasts this one by seconds, so a loaded machine cannot reverse the order.
    thread = threading.Thread(target=lambda: other.append(run(shell_argv("sleep 3; echo ok"))))
    thread.start()
    time.sleep(0.2)
    # A proper daemon: its own session, no parent, stdio not on the command's pipes. The
    # pause lets it leave the session before the command ends (else it is killed at once).
    outcome = run(shell_argv(f"(setsid sleep {duration} >/dev/null 2>&1 &); sleep 0.3"))
    deferred = len(sleepers(duration))
    thread.join(10)
    return outcome.status, deferred, other[0].status, other[0].stdout, _zombie_children()


def test_orphans_wait_for_concurrent_commands_then_die():
    """With two commands running in one process an adopted orphan cannot be told apart, so it
    is killed when the last of them ends - and the other command is left alone."""
    duration = marker()
    status, deferred, other_status, other_stdout, zombies = as_subreaper(_concurrent_orphan, duration)
    assert status == "succeeded"
    assert deferred == 1  # the other command still ran
    assert other_status == "succeeded" and other_stdout == "ok\n"
    assert sleepers(duration) == [] and zombies == []


def _many_commands_leaving_orphans(count: int, duration: str):
    def one(code: int) -> int | None:  # a daemon exiting on its own, before its command's end or after
        return run(shell_argv(f"(setsid sh -c 'exit 7' &); exit {code}")).returncode

    # Commands at once in threads (their orphans come and go meanwhile), then one at a time,
    # as in a pool process, each leaving a daemon that the command's end kills.
    with ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(one, [i % 50 for i in range(count)]))
    for code in range(5):
        codes.append(run(shell_argv(f"(setsid sleep {duration} >/dev/null 2>&1 &); exit {code}")).returncode)
    return codes, _zombie_children()


def test_adopted_orphans_are_collected_and_every_command_keeps_its_exit_status():
    duration = marker()
    codes, zombies = as_subreaper(_many_commands_leaving_orphans, 40, duration)
    assert codes == [i % 50 for i in range(40)] + list(range(5))  # none taken by the reaper (it would read 0)
    assert zombies == []
    assert sleepers(duration) == []


def _reaper_ticks() -> int:
    (thread,) = [t for t in threading.enumerate() if t.name == "hydra-reaper"]
    with open(f"/proc/self/task/{thread.native_id}/stat", "rb") as fh:
        fields = fh.read().rsplit(b")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks


def _idle_reaper_cpu():
    run(shell_argv("(setsid sh -c 'exit 0' &); exit 0"))  # it has woken at least once
    before = _reaper_ticks()
    time.sleep(1.0)  # an observation window, not a wait for something
    return _reaper_ticks() - before


def test_an_idle_reaper_sleeps_in_the_kernel():
    """It waits for a child's exit, or for the next command when there is no child: no polling.
    A reaper that spun would burn tens of ticks in a second even on a busy machine."""
    assert as_subreaper(_idle_reaper_cpu) <= 5


def test_enable_subreaper_is_a_no_op_off_linux(monkeypatch):
    monkeypatch.setattr(reaper, "_subreaper_pid", None)
    monkeypatch.setattr(sys, "platform", "darwin")
    assert enable_subreaper() is False and reaper._subreaper_pid is None


# -- in the sandbox (bubblewrap leaves its init process to the subreaper) -----------------------

root_with_bwrap = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("bwrap") is None, reason="needs root and bubblewrap"
)


def _sandboxed_runs(count: int, work_root: str):
    policy = isolation.Policy.from_settings(replace(Settings(), work_root=work_root))
    assert policy.bwrap is not None
    codes, fds = [], []
    try:
        for i in range(count):
            fds.append(len(os.listdir("/proc/self/fd")))
            with isolation.Confinement(policy, worker_id="reaper-test", run_id=f"r{i}", hydra_user=None, cwd=None) as c:
                argv = c.argv(build_argv(command=f"exit {i % 7}", args=None, shell="sh", os_name="linux"))
                env = c.environment(job_environment(None))
                codes.append(execute(argv, env=env, cwd=c.cwd, timeout=30, output_limit=1024, confinement=c).returncode)
    finally:
        isolation.release_worker(policy, "reaper-test")
    fds.append(len(os.listdir("/proc/self/fd")))
    return codes, _zombie_children(), fds


@root_with_bwrap
def test_sandboxed_runs_leave_no_zombie():
    """Bubblewrap's monitor exits without collecting the sandbox's init process, which the
    subreaper adopts: one zombie per run until the reaper collected them."""
    with tempfile.TemporaryDirectory(dir="/var/tmp") as work_root:
        codes, zombies, fds = as_subreaper(_sandboxed_runs, 30, work_root)
        assert not any(Path(work_root).iterdir())
    assert codes == [i % 7 for i in range(30)]
    assert zombies == []
    assert fds[-1] <= fds[1]  # no descriptor left open by a run (the filter's, the output pipes)


# -- ending a tree without the process table ----------------------------------------------------


def _no_table(*_args, **_kwargs):
    raise AssertionError("the process table was read")


def _leftovers_end_without_the_table(duration: str):
    from hydra.execution import tree

    tree._process_table = _no_table  # this process only (a spawned child of the test)
    psutil.pids = _no_table
    # One leftover in the command's session, one daemon that left it (adopted by this process).
    command = f"sleep {duration} & (setsid sleep {duration} >/dev/null 2>&1 &); sleep 0.2; exit 3"
    outcome = run(shell_argv(command))
    return outcome.returncode, _zombie_children()


def test_a_subreaper_ends_what_a_command_left_without_reading_the_process_table():
    """The leftovers are found from this process's own children down (/proc/<pid>/task/*/children):
    a scan of every process on the machine costs tens of milliseconds per run on a busy host."""
    duration = marker()
    returncode, zombies = as_subreaper(_leftovers_end_without_the_table, duration)
    assert returncode == 3 and zombies == []
    assert sleepers(duration) == []


def _sandboxed_runs_without_the_table(count: int, work_root: str):
    from hydra.execution import tree

    tree._process_table = _no_table
    psutil.pids = _no_table
    policy = isolation.Policy.from_settings(replace(Settings(), work_root=work_root, cgroup="none"))
    assert policy.bwrap is not None and policy.cgroup is None
    codes = []
    try:
        for i in range(count):
            with isolation.Confinement(policy, worker_id="reaper-test", run_id=f"t{i}", hydra_user=None, cwd=None) as c:
                argv = c.argv(build_argv(command=f"exit {i % 7}", args=None, shell="sh", os_name="linux"))
                env = c.environment(job_environment(None))
                codes.append(execute(argv, env=env, cwd=c.cwd, timeout=30, output_limit=1024, confinement=c).returncode)
    finally:
        isolation.release_worker(policy, "reaper-test")
    return codes, _zombie_children()


@root_with_bwrap
def test_sandboxed_runs_without_a_cgroup_never_read_the_process_table():
    """Bubblewrap and no cgroup: each run leaves the sandbox's init process to this process,
    which once sent every run's end into a psutil scan of the whole table."""
    with tempfile.TemporaryDirectory(dir="/var/tmp") as work_root:
        codes, zombies = as_subreaper(_sandboxed_runs_without_the_table, 10, work_root)
    assert codes == [i % 7 for i in range(10)]
    assert zombies == []

"""Commands are isolated (hydra.execution.isolation) on the real stack's workers, which run
as root: an unprivileged OS user, a fresh directory removed afterwards, a cgroup and a
bubblewrap sandbox; a job sees neither another run's environment nor the worker's."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from hydra.store.runs import RunStore
from hydrastack import WorkerSpec
from tests.conftest import CPU
from tests.helpers import submit, unique, wait_run, wait_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the stack's workers switch users only as root")


def test_a_command_runs_unprivileged_in_a_fresh_directory_removed_afterwards(api, stack):
    run = wait_run(submit(api, 'id -un; id -u; pwd; echo "$HOME"; ls -A | wc -l; touch left-behind')["run_id"])
    assert run.status == "succeeded", run.stderr
    user, uid, cwd, home, entries = run.stdout.split("\n")[:5]
    assert user == "hydra-job" and uid != "0"
    assert cwd == home and cwd.endswith(f"/{run.id}") and entries == "0"
    assert not Path(cwd).exists()  # removed with what the command left there


def test_a_job_can_work_in_its_sandbox_but_gets_no_user_namespace(api, stack):
    """What real scripts do: temporary files in /tmp (mktemp, Python's tempfile), cd "$HOME",
    absolute paths into the work directory. What it may not: a user namespace of its own, in
    which it would be root (``unshare -r``), also with a network namespace."""
    script = (
        'set -e; t=$(mktemp); echo "tmp $t"; '
        "python3 -c 'import tempfile; print(\"tempfile\", tempfile.mkdtemp())'; "
        'cd /; cd "$HOME"; echo data > f; cat "$PWD/f"; cat "$HOME/f"; '
        'unshare -r id && echo "unshare -r: allowed" || echo "unshare -r: refused"; '
        'unshare -r -n true && echo "unshare -r -n: allowed" || echo "unshare -r -n: refused"'
    )
    run = wait_run(submit(api, script)["run_id"])
    assert run.status == "succeeded", run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("tmp /tmp/tmp.") and lines[1].startswith("tempfile /tmp/")
    assert lines[2:] == ["data", "data", "unshare -r: refused", "unshare -r -n: refused"]
    assert run.stderr.count("Operation not permitted") == 2


def test_a_job_cannot_read_another_runs_environment_nor_the_workers(api, stack):
    secret = unique("s3cret")
    holder = submit(api, "sleep 8", env={"THE_SECRET": secret})
    wait_run(holder["run_id"], statuses=["running"])
    snoop = (
        "for f in /proc/[0-9]*/environ; do tr '\\0' '\\n' < $f 2>/dev/null; done; "
        f"cat {stack.signing_key_path} 2>&1; ls /proc | grep -cE '^[0-9]+$'"
    )
    run = wait_run(submit(api, snoop)["run_id"])
    assert f"HYDRA_RUN_ID={run.id}" in run.stdout  # it did read environments: its own
    assert secret not in run.stdout and holder["run_id"] not in run.stdout  # but no other run's
    assert stack.broker_url not in run.stdout and stack.mongo_url not in run.stdout  # nor the worker's
    assert f"cat: {stack.signing_key_path}" in run.stdout  # the stack's private key: 0600, hidden from jobs
    assert stack.signing_key_path.read_text().strip() not in run.stdout
    assert int(run.stdout.split()[-1]) < 10  # it sees its own few processes only (own pid namespace)
    assert wait_run(holder["run_id"]).status == "succeeded"


def test_a_job_cannot_kill_its_worker(api, stack):
    pool = {p.pid for p in psutil.Process(stack.pid(CPU.process_name)).children()}
    run = wait_run(
        submit(api, "kill -9 $PPID; kill -9 -1; echo still here", affinity={"os": ["linux"], "tags": []})["run_id"]
    )
    assert "still here" in run.stdout or run.status in ("succeeded", "failed")
    assert run.status != "lost"
    assert wait_run(submit(api, "echo alive")["run_id"]).status == "succeeded"
    assert pool & {p.pid for p in psutil.Process(stack.pid(CPU.process_name)).children()}


@pytest.mark.parametrize("sandbox", ["bwrap", "none"])
def test_the_pool_suicide_orphan_dies_with_its_run(api, stack, worker_factory, sandbox):
    """A daemon detached with ``setsid env -i`` (no session, no HYDRA_RUN_ID, orphaned when its
    pool process dies) is killed all the same: by the run's cgroup, with bubblewrap or without."""
    tag = unique("orphan").lower()
    worker_factory(WorkerSpec(unique("orph"), f"os.linux,tag.{tag}", concurrency=1, env={"HYDRA_SANDBOX": sandbox}))
    seconds = f"30{os.getpid() % 100}.{int(time.time()) % 1000}"
    marker = f"sleep {seconds}"
    created = submit(
        api, f"(setsid env -i {marker} &); sleep 30", affinity={"os": ["linux"], "tags": [tag]}, max_lost=1
    )
    wait_run(created["run_id"], statuses=["running"], timeout=30)

    def daemons():  # the detached sleep itself (not the shell whose command line names it)
        return [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", seconds]]

    wait_until(daemons, 10, message="the daemon runs")
    assert all(p.ppid() != 0 and p.environ().get("HYDRA_RUN_ID") is None for p in daemons())
    os.kill(RunStore().start_of(created["run_id"]).pid, signal.SIGKILL)
    run = wait_run(created["run_id"], timeout=30)
    assert run.status == "dead_letter" and run.outcome == "lost"
    wait_until(lambda: not daemons(), 10, message="no survivor of the dead pool process's run")


def test_a_cwd_outside_the_declared_roots_is_refused_and_recorded(api, stack, tmp_path):
    run = wait_run(submit(api, "pwd", cwd=str(tmp_path))["run_id"])
    assert run.status == "failed" and run.decision == "refused" and run.started_at is None
    assert "is not under this worker's HYDRA_CWD_ROOTS" in run.error


@pytest.mark.parametrize("sandbox", ["bwrap", "none"])
def test_a_cancelled_command_runs_its_term_handler_before_it_is_killed(api, stack, worker_factory, sandbox):
    """Cancel sends SIGTERM to the command, then SIGKILL after the grace: inside bubblewrap
    too, whose own processes would SIGKILL the command at once if they got the SIGTERM."""
    tag = unique("term").lower()
    worker_factory(WorkerSpec(unique("trm"), f"os.linux,tag.{tag}", concurrency=1, env={"HYDRA_SANDBOX": sandbox}))
    command = "trap 'echo cleaned up; exit 143' TERM; echo started; sleep 30 & wait $!"
    created = submit(api, command, affinity={"os": ["linux"], "tags": [tag]})
    wait_run(created["run_id"], statuses=["running"], timeout=30)
    time.sleep(0.5)  # the trap is set: the command has had its first line's time
    assert api.post(f"/runs/{created['run_id']}/cancel").status_code == 202
    run = wait_run(created["run_id"], timeout=20)
    assert run.status == "cancelled"
    assert run.stdout == "started\ncleaned up\n" and run.returncode == 143

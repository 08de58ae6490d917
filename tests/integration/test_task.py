"""Task-level tests: Hydra's task, result backend and worker checks in an embedded worker
(``celery.contrib.pytest``'s ``celery_session_worker``, which the pinned pytest-celery
registers) consuming from the real Redis broker and recording in the real MongoDB - fast, and
without a worker process. (pytest-celery 1.x replaces the function-scoped ``celery_worker``
fixture with its Docker-based one; the session fixture is Celery's own embedded worker.)

The embedded worker only accepts the user ``embedded`` (``--allowed-users``), so the jobs of
other tests never reach it.

Its solo pool sends ``worker_process_init`` in this very process, whose Hydra handler makes a
pool process a subreaper (``hydra.execution.reaper``). Here it must not: the reaper thread
collects *every* child it sees exit that was not started through ``reaper.spawn`` - the
tests' own ``subprocess.Popen`` children included, whose ``wait()`` then finds no child and
reports 0 (CPython's ECHILD fallback). The session fixture below leaves the handler out.
"""

from __future__ import annotations

import ctypes
import threading
import uuid

import pytest

from hydra import names
from hydra.celery.app import run_command
from hydra.errors import CommandFailed
from hydra.store.runs import RunStore
from tests.helpers import wait_run

NODE = f"embedded-{uuid.uuid4().hex[:6]}@tests"
USER = "embedded"


@pytest.fixture(scope="session")
def celery_session_app(stack):
    """Hydra's own app (the fixtures' default would be a bare test app), without the pool
    process's subreaper (see the module docstring)."""
    from celery.signals import worker_process_init

    from hydra.celery import worker
    from hydra.celery.app import app

    worker_process_init.disconnect(worker._pool_process_init)
    yield app
    worker_process_init.connect(worker._pool_process_init)


@pytest.fixture(scope="session")
def celery_worker_parameters():
    return {"hostname": NODE, "queues": ("os.linux",), "allowed_users": USER, "perform_ping_check": False}


@pytest.fixture
def worker(celery_session_worker):
    return celery_session_worker


def send(**kwargs):
    """Publish straight to the embedded worker's own queue (no registry entry needed)."""
    body = {"command": "echo hello", "user": USER, "name": "embedded"}
    body.update(kwargs)
    return run_command.apply_async(kwargs=body, queue=names.worker_queue(NODE))


def test_a_message_runs_in_the_worker_and_the_backend_records_it(worker):
    result = send(command="echo out; echo err >&2")
    assert result.get(timeout=20)["stdout"] == "out\n"
    run = RunStore().get(result.id)
    assert (run.status, run.returncode, run.stderr, run.worker_id, run.ended_by) == (
        "succeeded",
        0,
        "err\n",
        NODE,
        NODE,
    )
    assert RunStore().start_of(result.id).worker_id == NODE


def test_a_failing_command_is_a_failure_celery_can_read_back(worker):
    result = send(command="exit 7")
    with pytest.raises(CommandFailed) as info:
        result.get(timeout=20)
    assert "exit status 7" in str(info.value) and info.value.outcome["returncode"] == 7
    assert RunStore().get(result.id).status == "failed"


def test_the_worker_refuses_a_user_it_does_not_accept_and_says_so(worker):
    result = send(user="mallory")
    run = wait_run(result.id, timeout=20)
    assert run.status == "failed" and f"refused by {NODE}" in run.error and "mallory" in run.error
    assert run.started_at is None
    assert RunStore().start_of(result.id).worker_id is None  # held by the refusal: nothing ran


def test_a_message_for_an_attempt_held_elsewhere_is_not_executed(worker, shared):
    marker = shared / "ran"
    run_id = str(uuid.uuid4())
    assert RunStore().hold(run_id, by="test")  # a cancel took the attempt before any worker
    run_command.apply_async(
        kwargs={"command": f"touch {marker}", "user": USER, "name": "held"},
        queue=names.worker_queue(NODE),
        task_id=run_id,
    )
    # The embedded worker (solo pool, one message at a time) handles its queue in order:
    # once the next message's run has ended, the held one was met and dropped.
    assert send().get(timeout=20)["stdout"] == "hello\n"
    assert not marker.exists() and RunStore().get(run_id).started_at is None


_PR_GET_CHILD_SUBREAPER = 37


def test_the_embedded_worker_leaves_the_test_process_collecting_its_own_children(worker):
    """Not a subreaper, no reaper thread: a test's plain ``subprocess`` child keeps its exit
    status (tests/unit/test_isolation.py's gate test read a stolen one as 0)."""
    libc = ctypes.CDLL(None, use_errno=True)
    flag = ctypes.c_int(-1)
    assert libc.prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(flag), 0, 0, 0) == 0
    assert flag.value == 0
    assert "hydra-reaper" not in {thread.name for thread in threading.enumerate()}

"""Test harness: one real Hydra stack per test session (Redis, FerretDB or MongoDB, the
controller and two workers, as real processes), started on free ports on first use.

The ``HYDRA_*`` variables are set here, at import, before any test imports Hydra, because
Hydra reads its settings once per process. Unit tests do not request the ``stack`` fixture
and start nothing.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from hydrastack import Stack, WorkerSpec
from hydrastack.ports import pick_free_ports

ROOT = Path(tempfile.mkdtemp(prefix="hydra-test-"))
#: A directory commands may use as cwd and write to (declared in HYDRA_CWD_ROOTS; commands run
#: as an unprivileged OS user in a sandbox, so it is world-writable): where tests leave the
#: markers that show whether a command ran. The ``shared`` fixture gives each test its own.
SHARED = Path(tempfile.mkdtemp(prefix="hydra-shared-"))
SHARED.chmod(0o1777)
#: The one internal address webhooks of the test stack may reach (HYDRA_WEBHOOK_ALLOW): the
#: test's own HTTP server listens there; every other internal address is refused.
WEBHOOK_PORT = pick_free_ports(1)[0]
ENV = {
    "HYDRA_CONTROLLER_TICK": "0.25",
    "HYDRA_ROUTER_CACHE": "0.2",
    "HYDRA_CWD_ROOTS": str(SHARED),
    "HYDRA_WEBHOOK_ALLOW": f"127.0.0.1:{WEBHOOK_PORT}",
    "HYDRA_QUEUED_BOUND": "3",
    # A notification whose target did not answer is tried again after 1 s, 2 s, 4 s ... (tests/integration/test_notify.py).
    "HYDRA_NOTIFY_BACKOFF": "1",
    # Every run's full output is kept as a file too (the workers, the API and the controller share ROOT).
    "HYDRA_OUTPUT_DIR": str(ROOT / "output"),
}
STACK = Stack.ephemeral(ROOT / "stack", mongo_db="hydra_test", env=ENV)
os.environ.update(STACK.env_for_clients())
os.environ.update(ENV)

#: The two workers every integration test can count on (tests that kill workers start their own).
GPU = WorkerSpec("gpu1", "os.linux,tag.gpu", concurrency=2)
CPU = WorkerSpec("cpu1", "os.linux", concurrency=2)


@pytest.fixture(scope="session")
def stack():
    STACK.start_redis()
    STACK.start_mongo()
    STACK.start_controller()
    for spec in (GPU, CPU):
        STACK.start_worker(spec, wait=False)
    from tests.helpers import wait_workers_online

    for spec in (GPU, CPU):
        STACK.start_worker(spec)  # waits for "ready."
    wait_workers_online([GPU.node, CPU.node])
    yield STACK
    STACK.down()
    if not os.environ.get("HYDRA_KEEP_TEST_DATA"):
        shutil.rmtree(ROOT, ignore_errors=True)
        shutil.rmtree(SHARED, ignore_errors=True)


@pytest.fixture
def shared():
    """A fresh directory under SHARED that commands can write to (and use as cwd)."""
    path = Path(tempfile.mkdtemp(dir=SHARED))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def api(stack):
    """A Flask test client of the real API app (same process, real Redis and MongoDB),
    sending the stack's admin token."""
    from api import create_app

    client = create_app().test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {stack.admin_token}"
    return client


@pytest.fixture(scope="session")
def auth_headers(stack) -> dict[str, str]:
    """What a client of the stack's gunicorn API sends (the admin token)."""
    return {"Authorization": f"Bearer {stack.admin_token}"}


@pytest.fixture
def worker_factory(stack):
    """Start extra workers for one test; they are stopped (or reaped if killed) afterwards."""
    started: list[WorkerSpec] = []

    def start(spec: WorkerSpec, wait: bool = True, online: bool = True):
        started.append(spec)
        stack.start_worker(spec, wait=wait)
        if online:
            from tests.helpers import wait_workers_online

            wait_workers_online([spec.node])
        return spec

    yield start
    for spec in started:
        stack.stop(spec.process_name, timeout=10)


def pytest_collection_modifyitems(config, items):
    """The history tests load tens of thousands of documents into the shared stack: last."""
    items.sort(key=lambda item: item.get_closest_marker("history") is not None)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On an integration failure, show the tail of the stack's logs."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and "stack" in getattr(item, "fixturenames", ()):
        for name in ("controller", "worker-gpu1", "worker-cpu1"):
            try:
                report.sections.append((f"log {name}", STACK.log_tail(name, 30)))
            except Exception:  # noqa: BLE001
                pass

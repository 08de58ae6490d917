"""Redis high availability: a real Sentinel set-up (Debian's redis-sentinel), the master
killed under load, nothing accepted lost or run twice.

The test builds its own stack on free ports (the session's stack is left alone): a Redis
master (the stack's own, with its ACL users), one replica, three sentinels watching the
master as ``hydra``, FerretDB, a controller, two workers and the API under gunicorn - every
Hydra process with ``HYDRA_BROKER_URL=sentinel://...;...`` and
``HYDRA_BROKER_MASTER_NAME=hydra``, so Celery goes through kombu's Sentinel transport and
Hydra's own keys through redis-py's Sentinel. Jobs are submitted over REST at a steady pace;
midway the master is killed (SIGKILL, no goodbye); the sentinels promote the replica and
submissions go on. In the end every accepted job has exactly one succeeded run and its
command left exactly one mark: what asynchronous replication lost on the way (a queued
message, a registry entry) was published again from MongoDB, and the start fences turned
duplicates into no-ops.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path

import pytest
import redis as redis_py
import requests

from hydra import names
from hydra.client.transport import http_session
from hydrastack import Stack, WorkerSpec
from hydrastack.ports import pick_free_ports
from tests.conftest import ENV
from tests.helpers import job_body, wait_until

pytestmark = pytest.mark.skipif(shutil.which("redis-sentinel") is None, reason="redis-sentinel not installed")

MASTER = "hydra"
JOBS_BEFORE, JOBS_AFTER = 25, 15


def sentinel_conf(path: Path, port: int, master_port: int, password: str) -> None:
    path.write_text(
        "\n".join(
            [
                f"port {port}",
                "bind 127.0.0.1",
                "protected-mode yes",
                f"dir {path.parent}",
                f"sentinel monitor {MASTER} 127.0.0.1 {master_port} 2",
                f"sentinel auth-user {MASTER} default",
                f"sentinel auth-pass {MASTER} {password}",
                f"sentinel down-after-milliseconds {MASTER} 1000",
                f"sentinel failover-timeout {MASTER} 10000",
                f"sentinel parallel-syncs {MASTER} 1",
                "",
            ]
        )
    )
    path.chmod(0o600)


@pytest.fixture
def ha_stack():
    root = Path(tempfile.mkdtemp(prefix="hydra-sentinel-"))
    # Its own MongoDB server too: not the session's (conftest exports HYDRA_MONGO_URL for it).
    session_mongo = os.environ.pop("HYDRA_MONGO_URL", None)
    try:
        stack = Stack.ephemeral(root / "stack", mongo_db="hydra_sentinel", env=dict(ENV))
    finally:
        if session_mongo is not None:
            os.environ["HYDRA_MONGO_URL"] = session_mongo
    taken = {stack.redis_port, stack.mongo_port, stack.api_port, stack.flower_port}
    replica_port, *sentinel_ports = [p for p in pick_free_ports(12) if p not in taken][:4]
    sentinels = ";".join(f"sentinel://127.0.0.1:{p}" for p in sentinel_ports)
    # The master's credentials go in the first URL (as kombu reads them), the db at the end.
    url = sentinels.replace("sentinel://", f"sentinel://hydra:{stack.redis_password}@", 1) + "/0"
    stack.env.update({"HYDRA_BROKER_URL": url, "HYDRA_BROKER_MASTER_NAME": MASTER})
    try:
        stack.start_redis()
        replica_dir = stack.data_dir / "replica"
        replica_dir.mkdir(parents=True)
        stack.spawn(
            "redis-replica",
            [
                shutil.which("redis-server") or "redis-server", "--bind", "127.0.0.1", "--port", str(replica_port),
                "--dir", str(replica_dir), "--appendonly", "yes", "--save", "", "--protected-mode", "yes",
                "--aclfile", str(stack.root / "redis.acl"),
                "--replicaof", "127.0.0.1", str(stack.redis_port),
                "--masteruser", "default", "--masterauth", stack.redis_admin_password,
            ],
        )  # fmt: skip
        for i, port in enumerate(sentinel_ports):
            conf = stack.data_dir / f"sentinel-{i}" / "sentinel.conf"
            conf.parent.mkdir(parents=True)
            sentinel_conf(conf, port, stack.redis_port, stack.redis_admin_password)
            stack.spawn(f"sentinel-{i}", [shutil.which("redis-sentinel") or "redis-sentinel", str(conf)])
        replica = redis_py.Redis(port=replica_port, username="default", password=stack.redis_admin_password)
        wait_until(lambda: replica.info("replication").get("master_link_status") == "up", 30, message="replica in sync")
        probes = [redis_py.Redis(port=p, socket_timeout=2) for p in sentinel_ports]
        wait_until(
            lambda: all(int(p.sentinel_master(MASTER).get("num-other-sentinels", 0)) == 2 for p in probes),
            30,
            interval=0.3,
            message="the sentinels know each other",
        )
        stack.start_mongo()
        stack.ensure_schema()
        stack.bootstrap_token()
        stack.start_controller()
        workers = [WorkerSpec("ha1", "os.linux", concurrency=2), WorkerSpec("ha2", "os.linux", concurrency=2)]
        for spec in workers:
            stack.start_worker(spec)
        stack.start_api()
        yield stack, replica, probes
    finally:
        stack.down()
        if not os.environ.get("HYDRA_KEEP_TEST_DATA"):
            shutil.rmtree(root, ignore_errors=True)


def test_killing_the_master_under_load_loses_no_job_and_runs_none_twice(ha_stack, shared):
    stack, replica, sentinels = ha_stack
    http = http_session()
    http.headers["Authorization"] = f"Bearer {stack.admin_token}"

    def api_workers_online() -> bool:
        answer = http.get(f"{stack.api_url}/workers/", timeout=10)
        return answer.status_code == 200 and sum(w["status"] == "online" for w in answer.json()) == 2

    wait_until(api_workers_online, 60, interval=0.5, message="both workers online through Sentinel")

    accepted: list[str] = []
    refused: list[str] = []

    def submit(n: int, pace: float) -> None:
        for _ in range(n):
            body = job_body(f'echo "$HYDRA_RUN_ID" >> "{shared}/$HYDRA_JOB_ID"; sleep 0.2')
            try:
                answer = http.post(f"{stack.api_url}/jobs/", json=body, timeout=30)
            except requests.RequestException as exc:
                refused.append(repr(exc))
            else:
                # 201: accepted (published, or pending "broker unavailable" for the controller to
                # publish); anything else is a refusal the client sees, never a silent loss.
                (accepted if answer.status_code == 201 else refused).append(
                    answer.json()["job_id"] if answer.status_code == 201 else f"{answer.status_code} {answer.text}"
                )
            time.sleep(pace)

    load = threading.Thread(target=submit, args=(JOBS_BEFORE, 0.15))
    load.start()
    wait_until(lambda: len(accepted) >= 8, 60, message="jobs under way")
    old_master = stack.pid("redis")
    assert old_master is not None
    os.kill(old_master, signal.SIGKILL)
    load.join()

    # The sentinels promote the replica; Hydra's clients and Celery's follow them.
    wait_until(lambda: replica.info("replication")["role"] == "master", 60, interval=0.3, message="replica promoted")
    submit(JOBS_AFTER, 0.1)

    def runs_of(job_id: str) -> list[dict]:
        answer = http.get(f"{stack.api_url}/jobs/{job_id}/runs", timeout=10)
        return answer.json() if answer.status_code == 200 else []

    def all_done() -> bool:
        return all(any(r["status"] == "succeeded" for r in runs_of(j)) for j in accepted)

    wait_until(all_done, 180, interval=1.0, message="every accepted job succeeded")
    time.sleep(2)  # a duplicate would have started by now (visibility aside: fences decide)
    assert len(accepted) >= JOBS_BEFORE + JOBS_AFTER - len(refused) and len(accepted) >= 30, refused
    for job_id in accepted:
        runs = runs_of(job_id)
        succeeded = [r for r in runs if r["status"] == "succeeded"]
        assert len(succeeded) == 1, f"job {job_id}: {[(r['status'], r.get('worker_id')) for r in runs]}"
        marks = (shared / job_id).read_text().split()
        assert len(marks) == 1, f"job {job_id} ran {len(marks)} times: {marks}"
    # And the new master is the one every Hydra process writes to now.
    assert int(replica.hlen(names.WORKERS_KEY)) >= 2
    assert sentinels[0].sentinel_get_master_addr_by_name(MASTER)[1] == replica.connection_pool.connection_kwargs["port"]

"""The API's own CPU per ``POST /jobs/``, in one process, against a real Redis and MongoDB server.

Starts a Redis and the MongoDB server (FerretDB here) on free ports, puts two online workers
into the registry (no worker processes: the messages wait in their queues), patches the
standard library with gevent as the API's gunicorn workers do (``gunicorn.conf.py``, including
``api.green``), and posts ``--jobs`` echo jobs one at a time through the Flask app's test
client, after 50 to warm up. Prints the process's CPU time per submission, and the Redis and
MongoDB servers' CPU per submission from /proc. ``--no-green`` leaves out ``api.green``.

``make bench``'s API figure is taken while the jobs run on the same cores and moves between
runs by more than a change of a few per cent; this one is steadier, so a change can be
measured by alternating runs of this script on the code before and after it.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "deploy", "local"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=400)
    parser.add_argument("--no-green", action="store_true", help="without api.green's redis-py readiness check")
    args = parser.parse_args()

    from gevent import monkey

    monkey.patch_all()
    if not args.no_green:
        from api.green import redis_checks_without_the_hub

        redis_checks_without_the_hub()
    run(args)


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(args: argparse.Namespace) -> None:
    import shutil
    import tempfile
    import time
    from pathlib import Path

    from hydrastack import Stack

    root = Path(tempfile.mkdtemp(prefix="hydra-submit-cpu-"))
    stack = Stack.ephemeral(root / "stack", mongo_db="hydra_submit_cpu")
    os.environ.update(stack.env_for_clients())
    try:
        stack.start_redis()
        stack.start_mongo()
        from api import create_app
        from hydra import clock
        from hydra.broker.registry import Registry, WorkerRecord
        from hydra.model.affinity import WorkerProfile

        registry = Registry()
        for name in ("w1", "w2"):
            profile = WorkerProfile(id=f"{name}@host", os="linux", max_concurrency=100_000, shells=frozenset({"sh"}))
            registry.put(WorkerRecord(profile=profile, status="online", seen_at=clock.epoch() + 3600))
        client = create_app().test_client()
        headers = {"Authorization": f"Bearer {stack.admin_token}"}
        body = {"name": "bench", "command": "echo hello", "shell": "sh", "affinity": {"os": ["linux"]}}

        def post() -> None:
            answer = client.post("/jobs/", json=body, headers=headers)
            assert answer.status_code == 201, answer.text

        for _ in range(50):
            post()
        servers = {name: stack.pid(name) for name in ("redis", "mongo")}
        before = {name: cpu_seconds(pid) for name, pid in servers.items() if pid}
        started, wall = time.process_time(), time.monotonic()
        for _ in range(args.jobs):
            post()
        spent, wall = time.process_time() - started, time.monotonic() - wall
        per_job = {name: (cpu_seconds(servers[name]) - cpu) * 1000 / args.jobs for name, cpu in before.items()}
        print(
            f"API process: {spent * 1000 / args.jobs:.3f} ms CPU per submission ({args.jobs / wall:.1f}/s); "
            + ", ".join(f"{name} server {ms:.2f} ms" for name, ms in per_job.items())
        )
    finally:
        stack.down()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

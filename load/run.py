"""``make load``: Locust, headless, against a live Hydra API for a bounded time; prints
Locust's table (requests, failures, latency percentiles, requests/s per route).

    make load                              # the API of HYDRA_API_URL (make up's: 127.0.0.1:8000)
    make load PRIVATE=1 LOAD_TIME=60s      # a private stack on free ports, stopped afterwards

Options: --users (concurrent Locust users), --spawn-rate, --time (e.g. 60s, 2m), --host
(default HYDRA_API_URL), --private (start a private stack: Redis, MongoDB server, the
controller, two workers of 2 slots, the API under gunicorn), --csv PREFIX (Locust's CSVs).
The users are load/locustfile.py. Exit status: Locust's (1 when any request failed).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "deploy" / "local")]

from hydrastack import Stack, WorkerSpec, venv_bin  # noqa: E402  (light: reads no settings)


def private_stack() -> tuple[Stack, Path]:
    root = Path(tempfile.mkdtemp(prefix="hydra-load-"))
    stack = Stack.ephemeral(root / "stack", mongo_db="hydra_load")
    print("load: starting a private stack (Redis, MongoDB server, controller, 2 workers, API) ...", flush=True)
    stack.start_redis()
    stack.start_mongo()
    stack.start_controller()
    for i in range(2):
        stack.start_worker(WorkerSpec(f"load{i}", "os.linux", concurrency=2))
    stack.start_api()
    return stack, root


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--spawn-rate", type=float, default=4.0)
    parser.add_argument("--time", default="60s")
    parser.add_argument("--host", default=None)
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--csv", default=None)
    args = parser.parse_args()

    stack = root = None
    env = dict(os.environ)
    if args.private:
        stack, root = private_stack()
        env.update(stack.env_for_clients())
    host = args.host or env.get("HYDRA_API_URL") or "http://127.0.0.1:8000"
    command = [
        str(venv_bin() / "locust"),
        "-f", str(REPO / "load" / "locustfile.py"),
        "--headless", "--only-summary",
        "--users", str(args.users), "--spawn-rate", str(args.spawn_rate),
        "--run-time", args.time, "--stop-timeout", "10",
        "--host", host,
        "--loglevel", "WARNING",
    ]  # fmt: skip
    if args.csv:
        command += ["--csv", args.csv]
    print(f"load: {args.users} users for {args.time} against {host} (submit, poll, list, follow)", flush=True)
    try:
        return subprocess.run(command, env=env, cwd=REPO).returncode
    finally:
        if stack is not None:
            stack.down()
            if not os.environ.get("HYDRA_KEEP_LOAD_DATA"):
                shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

"""``make bench`` (second part): do output followers starve the API?

Starts a private stack on free ports (Redis, the MongoDB server, the controller, one worker,
the API under gunicorn as ``make up`` runs it), starts a job that prints a line every 0.1 s,
then measures ``GET /health`` (sequential requests at a steady rate) twice in one run:

1. with nobody following the job's output;
2. with ``--followers`` (default 64) clients following it the way ``hydra logs -f`` does
   (``GET /runs/<id>/output?after=<next>&wait=10``, honouring ``retry_after``).

The goal: the p99 with followers within 2x the p99 without. Prints a table and
writes it as JSON next to the stack's data. Options: --followers, --probes, --rate.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "deploy" / "local")]

from bench.measure import percentile  # noqa: E402
from hydrastack import Stack, WorkerSpec  # noqa: E402  (light: reads no settings)


def say(text: str) -> None:
    print(f"bench/follow: {text}", flush=True)


class FollowBench:
    def __init__(self, args):
        self.args = args
        self.root = Path(tempfile.mkdtemp(prefix="hydra-bench-follow-"))
        self.stack = Stack.ephemeral(self.root / "stack", mongo_db="hydra_bench_follow")
        os.environ.update(self.stack.env_for_clients())
        self.headers = {}
        token = os.environ.get("HYDRA_API_TOKEN")
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.stop_followers = threading.Event()
        self.follower_requests = 0
        self.follower_told_to_wait = 0
        self.follower_errors = 0
        self.lock = threading.Lock()

    def url(self, path: str) -> str:
        return self.stack.api_url + path

    def start(self) -> None:
        say("starting a private stack (Redis, MongoDB server, controller, one worker, API under gunicorn) ...")
        self.stack.start_redis()
        self.stack.start_mongo()
        if "Authorization" not in self.headers:  # every call is authenticated: the stack's admin token
            self.headers["Authorization"] = f"Bearer {self.stack.admin_token}"
        self.stack.start_controller()
        self.stack.start_worker(WorkerSpec("follow1", "os.linux", concurrency=2))
        self.stack.start_api()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            health = requests.get(self.url("/health"), headers=self.headers, timeout=5).json()
            if health.get("workers", {}).get("online"):
                return
            time.sleep(0.5)
        raise SystemExit("bench/follow: the worker did not come online")

    def stop(self) -> None:
        self.stop_followers.set()
        self.stack.down()
        if not os.environ.get("HYDRA_KEEP_BENCH_DATA"):
            shutil.rmtree(self.root, ignore_errors=True)

    def start_job(self, seconds: float) -> str:
        lines = int(seconds * 10)
        body = {
            "name": "follow-bench",
            "user": "bench",
            "command": f"for i in $(seq 1 {lines}); do echo line $i; sleep 0.1; done",
            "shell": "bash",
            "timeout": seconds + 120,
        }
        created = requests.post(self.url("/jobs/"), json=body, headers=self.headers, timeout=30)
        created.raise_for_status()
        run_id = created.json()["run_id"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            run = requests.get(self.url(f"/runs/{run_id}"), headers=self.headers, timeout=10).json()
            if run["status"] == "running":
                return run_id
            time.sleep(0.2)
        raise SystemExit(f"bench/follow: run {run_id} did not start")

    def probe_health(self, count: int, rate: float) -> list[float]:
        """``count`` sequential GET /health at ``rate`` per second; their latencies in ms."""
        session = requests.Session()
        latencies = []
        start = time.monotonic()
        for i in range(count):
            target = start + i / rate
            pause = target - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            begin = time.perf_counter()
            response = session.get(self.url("/health"), headers=self.headers, timeout=60)
            latencies.append((time.perf_counter() - begin) * 1000)
            if response.status_code != 200:
                say(f"warning: /health answered {response.status_code}")
        return latencies

    def follow(self, run_id: str) -> None:
        session = requests.Session()
        after = -1
        while not self.stop_followers.is_set():
            try:
                response = session.get(
                    self.url(f"/runs/{run_id}/output"),
                    params={"after": after, "wait": 10},
                    headers=self.headers,
                    timeout=30,
                )
                page = response.json()
            except (requests.RequestException, ValueError):
                with self.lock:
                    self.follower_errors += 1
                self.stop_followers.wait(1.0)
                continue
            with self.lock:
                self.follower_requests += 1
            after = page.get("next", after)
            if page.get("ended"):
                after = -1  # follow it again from the start: the load stays the same
            if page.get("retry_after") and not page.get("chunks"):
                with self.lock:
                    self.follower_told_to_wait += 1
                self.stop_followers.wait(float(page["retry_after"]))

    def run(self) -> dict:
        args = self.args
        probe_seconds = args.probes / args.rate
        run_id = self.start_job(seconds=2 * probe_seconds + 60)
        time.sleep(2.0)
        say(f"/health without followers: {args.probes} requests at {args.rate:g}/s ...")
        alone = self.probe_health(args.probes, args.rate)
        say(f"starting {args.followers} followers of run {run_id} ...")
        threads = [threading.Thread(target=self.follow, args=(run_id,), daemon=True) for _ in range(args.followers)]
        for thread in threads:
            thread.start()
        time.sleep(3.0)
        before = self.follower_requests
        begun = time.monotonic()
        say(f"/health with {args.followers} followers: {args.probes} requests at {args.rate:g}/s ...")
        crowded = self.probe_health(args.probes, args.rate)
        follower_rate = (self.follower_requests - before) / (time.monotonic() - begun)
        self.stop_followers.set()
        for thread in threads:
            thread.join(timeout=15)
        p99_alone, p99_crowded = percentile(alone, 99), percentile(crowded, 99)
        return {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "store": self.stack.mongo_backend,
            "followers": args.followers,
            "probes": args.probes,
            "rate": args.rate,
            "health_p50_alone_ms": round(percentile(alone, 50), 2),
            "health_p99_alone_ms": round(p99_alone, 2),
            "health_p50_followed_ms": round(percentile(crowded, 50), 2),
            "health_p99_followed_ms": round(p99_crowded, 2),
            "ratio_p99": round(p99_crowded / p99_alone, 2),
            "follower_requests_per_s": round(follower_rate, 1),
            "follower_answers_told_to_wait": self.follower_told_to_wait,
            "follower_errors": self.follower_errors,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--followers", type=int, default=64)
    parser.add_argument("--probes", type=int, default=300, help="GET /health requests per phase")
    parser.add_argument("--rate", type=float, default=10.0, help="GET /health per second")
    args = parser.parse_args()
    bench = FollowBench(args)
    try:
        bench.start()
        result = bench.run()
    finally:
        bench.stop()
    goal = "met" if result["ratio_p99"] <= 2.0 else "MISSED"
    rows = [
        ("GET /health p50 without followers (ms)", result["health_p50_alone_ms"]),
        ("GET /health p99 without followers (ms)", result["health_p99_alone_ms"]),
        (f"GET /health p50 with {result['followers']} followers (ms)", result["health_p50_followed_ms"]),
        (f"GET /health p99 with {result['followers']} followers (ms)", result["health_p99_followed_ms"]),
        ("p99 ratio (goal <= 2)", f"{result['ratio_p99']} ({goal})"),
        ("follower requests/s", result["follower_requests_per_s"]),
        ("follower answers told to wait (retry_after)", result["follower_answers_told_to_wait"]),
    ]
    width = max(len(name) for name, _ in rows)
    print()
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(f"\n{result['when']}; {result['cpus']} CPUs; store: {result['store']}; Python {result['python']}")
    out = REPO / ".hydra" / "bench-follow.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()

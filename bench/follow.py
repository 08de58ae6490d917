"""``make bench`` (second part): do output followers starve the API?

Starts a private stack on free ports (Redis, the MongoDB server, the controller, one worker,
the API under gunicorn as ``make up`` runs it), starts a job that prints a line every 0.1 s,
then measures ``GET /health`` (sequential requests at a steady rate) twice in one run:

1. with nobody following the job's output;
2. with ``--followers`` (default 64) clients following it the way ``hydra logs -f`` does
   (``GET /runs/<id>/output/events``: server-sent events, from the start of the output).

Each line the job prints carries the time it was written; each follower notes when it sees
it. The goals: every follower sees every line (once, in order), each line written while it
follows within 1 s; the /health p99 with followers within 2x the p99 without; no follower
refused or told to come back. Prints a table (``bench.table.follow_table``), writes it as
JSON to ``.hydra/bench-follow.json`` and under ``follow`` in ``.hydra/bench-latest.json``
(what ``bench/run.py`` wrote before it in ``make bench``). Options: --followers, --probes, --rate.
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
from bench.table import follow_table  # noqa: E402
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
        self.delays: list[float] = []  # seconds from a line's writing to a follower seeing it
        self.seen: list[list[int]] = []  # each follower's line numbers, in the order seen
        self.responses: list[requests.Response] = []

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
            "command": f'for i in $(seq 1 {lines}); do echo "line $i $(date +%s.%N)"; sleep 0.1; done',
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

    def follow(self, run_id: str, index: int) -> None:
        """Follow the run from the start of its output until told to stop (reconnecting after
        the last chunk seen if the stream breaks): note each line's number and, for a line
        written after this follower joined, how long it took to be seen."""
        session = requests.Session()
        joined, after, lines = time.time(), -1, self.seen[index]
        partial = ""
        while not self.stop_followers.is_set():
            try:
                response = session.get(
                    self.url(f"/runs/{run_id}/output/events"),
                    params={"after": after},
                    headers={**self.headers, "Accept": "text/event-stream"},
                    stream=True,
                    timeout=(30, 60),
                )
                with self.lock:
                    self.follower_requests += 1
                    self.responses.append(response)
                if response.status_code != 200:
                    with self.lock:
                        self.follower_told_to_wait += 1
                    self.stop_followers.wait(1.0)
                    continue
                for line in response.iter_lines(decode_unicode=True):
                    if not line or not line.startswith("data:"):
                        continue
                    page = json.loads(line[5:])
                    now = time.time()
                    for chunk in page["chunks"]:
                        if chunk["stream"] != "stdout":
                            continue
                        partial += chunk["text"]
                        *complete, partial = partial.split("\n")
                        for text in complete:
                            _, number, stamp = text.split()
                            lines.append(int(number))
                            if float(stamp) > joined:
                                with self.lock:
                                    self.delays.append(now - float(stamp))
                    after = page["next"]
                    if page["ended"]:
                        return
            except (requests.RequestException, ValueError, AttributeError):
                if self.stop_followers.is_set():
                    return
                with self.lock:
                    self.follower_errors += 1
                self.stop_followers.wait(1.0)

    def completeness(self) -> tuple[int, int]:
        """(followers that missed a line or saw one twice, followers that saw no line)."""
        broken = empty = 0
        for lines in self.seen:
            if not lines:
                empty += 1
            elif lines != list(range(1, len(lines) + 1)):
                broken += 1
        return broken, empty

    def run(self) -> dict:
        args = self.args
        probe_seconds = args.probes / args.rate
        run_id = self.start_job(seconds=2 * probe_seconds + 60)
        time.sleep(2.0)
        say(f"/health without followers: {args.probes} requests at {args.rate:g}/s ...")
        alone = self.probe_health(args.probes, args.rate)
        say(f"starting {args.followers} followers of run {run_id} ...")
        self.seen = [[] for _ in range(args.followers)]
        threads = [threading.Thread(target=self.follow, args=(run_id, i), daemon=True) for i in range(args.followers)]
        for thread in threads:
            thread.start()
        time.sleep(3.0)
        before = self.follower_requests
        begun = time.monotonic()
        say(f"/health with {args.followers} followers: {args.probes} requests at {args.rate:g}/s ...")
        crowded = self.probe_health(args.probes, args.rate)
        follower_rate = (self.follower_requests - before) / (time.monotonic() - begun)
        self.stop_followers.set()
        with self.lock:
            for response in self.responses:
                response.close()  # a follower waiting for the next event stops at once
        for thread in threads:
            thread.join(timeout=15)
        broken, empty = self.completeness()
        delays_ms = [d * 1000 for d in self.delays] or [float("nan")]
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
            "lines_seen": sum(len(lines) for lines in self.seen),
            "line_delay_p50_ms": round(percentile(delays_ms, 50), 1),
            "line_delay_p99_ms": round(percentile(delays_ms, 99), 1),
            "line_delay_max_ms": round(max(delays_ms), 1),
            "lines_later_than_1s": sum(1 for d in self.delays if d > 1.0),
            "followers_missing_or_repeating_lines": broken,
            "followers_without_lines": empty,
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
    print()
    print(follow_table(result))
    out = REPO / ".hydra" / "bench-follow.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    latest = REPO / ".hydra" / "bench-latest.json"
    if latest.exists():  # make bench: bench/run.py's results, with this part beside them
        merged = json.loads(latest.read_text())
        merged["follow"] = result
        latest.write_text(json.dumps(merged, indent=1) + "\n")


if __name__ == "__main__":
    main()

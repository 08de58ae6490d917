"""``make bench-ops``: every MongoDB command and Redis round trip of an ``echo`` job, by process.

Starts a private Hydra stack like ``make bench`` (controller, API under gunicorn, two workers
of concurrency 2; no peers) with ``bench/probe`` first on its processes' ``PYTHONPATH``: each
Python process then logs every command pymongo sends and every round trip redis-py makes (see
``bench/probe/sitecustomize.py``), with the code that made it. The bench reads three windows:

* **idle** (``--idle-seconds``): what each process does with nothing to do (heartbeats,
  ticks), as a rate per second;
* **burst**: ``--jobs`` echo jobs posted at once by 8 clients (a backlog waits);
* **paced**: ``--paced-jobs`` jobs at ``--rate`` per second (no backlog);

and prints, per job and per process, the MongoDB commands (by collection) and the Redis round
trips (by the commands each carries), less the idle rate times the window, each with where it
was made; and the Redis server's own count per job (``INFO commandstats`` deltas: commands run
inside Lua scripts count there one by one). The window of each ends one second after the last
end was counted (the tail of the last end inside it). The bench's own reads (the ended counter,
INFO) are left out. Writes ``.hydra/bench-ops.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import redis
import requests

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "deploy" / "local")]

from bench.cpu import children_of  # noqa: E402
from hydra import names  # noqa: E402
from hydrastack import Stack, WorkerSpec  # noqa: E402
from hydrastack.waiting import wait_until  # noqa: E402

PROBE = REPO / "bench" / "probe"
SETTLE = 1.0
#: The bench's own reads of Redis (the ended counter), left out of the server's counts.
OWN = ("hvals", "info")


def say(text: str) -> None:
    print(f"bench-ops: {text}", flush=True)


class Ops:
    def __init__(self, args):
        self.args = args
        self.root = Path(tempfile.mkdtemp(prefix="hydra-ops-"))
        self.probe_dir = self.root / "probe"
        self.probe_dir.mkdir()
        env = {
            "PYTHONPATH": f"{PROBE}:{REPO}",
            "BENCH_PROBE_DIR": str(self.probe_dir),
            "BENCH_PROBE_REPO": str(REPO),
        }
        self.stack = Stack.ephemeral(self.root / "stack", mongo_db="hydra_ops", env=env)
        os.environ.update(self.stack.env_for_clients())
        self.workers = [WorkerSpec(f"ops{i}", "os.linux", concurrency=2) for i in range(2)]

    def start(self) -> None:
        stack = self.stack
        say("starting a private stack with the probe ...")
        stack.start_redis()
        stack.start_mongo()
        stack.start_controller()
        for spec in self.workers:
            stack.start_worker(spec)
        stack.start_api()
        self.admin = redis.Redis.from_url(stack.admin_broker_url)
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {stack.admin_token}"
        wait_until(
            lambda: (
                self.http.get(stack.api_url + "/health", timeout=10).json().get("workers", {}).get("online", 0) >= 2
            ),
            60,
            interval=0.5,
            message="workers online",
        )

    def roles(self) -> dict[int, str]:
        """pid -> role, for the stack's Python processes."""
        stack = self.stack
        found: dict[int, str] = {}
        if api := stack.pid("api"):
            found[api] = "api (gunicorn master)"
            found.update(dict.fromkeys(children_of(api), "api"))
        if controller := stack.pid("controller"):
            found[controller] = "controller"
        for spec in self.workers:
            if main := stack.pid(spec.process_name):
                found[main] = "worker main"
                found.update(dict.fromkeys(children_of(main), "pool"))
        return found

    def ended(self) -> int:
        return sum(int(v) for v in self.admin.hvals(names.METRIC_RUNS_FINISHED))

    def commandstats(self) -> dict[str, int]:
        stats = self.admin.info("commandstats")
        return {key.removeprefix("cmdstat_"): value["calls"] for key, value in stats.items()}

    def submit(self, n: int, pace: float | None) -> None:
        body = {"name": "ops", "command": "echo hello", "shell": "sh", "timeout": 120, "affinity": {"os": ["linux"]}}

        def post(_):
            answer = self.http.post(self.stack.api_url + "/jobs/", json=body, timeout=60)
            assert answer.status_code == 201, answer.text

        with ThreadPoolExecutor(8) as pool:
            start = time.monotonic()
            futures = []
            for i in range(n):
                if pace and (delay := start + i / pace - time.monotonic()) > 0:
                    time.sleep(delay)
                futures.append(pool.submit(post, i))
            for future in futures:
                future.result()

    def window(self, n: int, pace: float | None = None) -> dict:
        """Run ``n`` jobs; the window's bounds, job count and the server's command deltas."""
        ended = self.ended()
        stats = self.commandstats()
        start = time.time()
        self.submit(n, pace)
        polls = 0
        while self.ended() < ended + n:
            polls += 1
            time.sleep(0.1)
        time.sleep(SETTLE)
        end = time.time()
        after = self.commandstats()
        server = {k: v - stats.get(k, 0) for k, v in after.items() if v != stats.get(k, 0) and k not in OWN}
        return {"start": start, "end": end, "jobs": n, "server": server}

    def run(self) -> dict:
        args = self.args
        self.start()
        say("warming up (20 jobs) ...")
        self.window(20)
        say(f"idle window ({args.idle_seconds:g} s) ...")
        idle_stats = self.commandstats()
        idle = {"start": time.time()}
        time.sleep(args.idle_seconds)
        idle["end"] = time.time()
        idle_after = self.commandstats()
        idle["server"] = {k: v - idle_stats.get(k, 0) for k, v in idle_after.items() if k not in OWN}
        say(f"burst: {args.jobs} jobs ...")
        burst = self.window(args.jobs)
        say(f"paced: {args.paced_jobs} jobs at {args.rate:g}/s ...")
        paced = self.window(args.paced_jobs, args.rate)
        events = self.events()
        roles = self.roles()
        return {
            "windows": {
                name: summarise(events, roles, window, idle) for name, window in (("burst", burst), ("paced", paced))
            },
            "idle_seconds": args.idle_seconds,
        }

    def events(self) -> list[dict]:
        found = []
        for path in self.probe_dir.glob("*.jsonl"):
            for line in path.read_text().splitlines():
                try:
                    found.append(json.loads(line))
                except ValueError:  # a line cut short by a process's end
                    pass
        return found

    def stop(self) -> None:
        self.stack.down()
        shutil.rmtree(self.root, ignore_errors=True)


def key_of(event: dict) -> tuple[str, str, str]:
    """(kind, what, where) of a probe event."""
    if event["kind"] == "mongo":
        what = f"{event['op']} {event['coll'] or ''}".strip()
    else:
        names = event["cmds"]
        what = names[0] if len(names) == 1 else "pipeline " + " ".join(f"{c}x{n}" for c, n in Counter(names).items())
    return event["kind"], what, event.get("where") or event.get("lib") or "?"


def summarise(events: list[dict], roles: dict[int, str], window: dict, idle: dict) -> dict:
    """Per job: the probe's events by role, less the idle rate; the server's commands."""
    span = window["end"] - window["start"]
    idle_span = idle["end"] - idle["start"]
    counts: dict[tuple, float] = defaultdict(float)
    for event in events:
        role = roles.get(event["pid"], f"other ({event['pid']})")
        key = (role, *key_of(event))
        if window["start"] <= event["t"] < window["end"]:
            counts[key] += 1
        elif idle["start"] <= event["t"] < idle["end"]:
            counts[key] -= span / idle_span
    n = window["jobs"]
    rows = sorted(
        ([*key, round(value / n, 3)] for key, value in counts.items() if abs(value / n) >= 0.005),
        key=lambda r: (r[0], r[1], -r[4]),
    )
    server = {
        cmd: round((calls - idle["server"].get(cmd, 0) * span / idle_span) / n, 2)
        for cmd, calls in window["server"].items()
    }
    server = dict(sorted(((k, v) for k, v in server.items() if abs(v) >= 0.005), key=lambda kv: -kv[1]))
    totals: dict[str, float] = defaultdict(float)
    for role, kind, _, _, per_job in rows:
        totals[f"{kind} {role}"] += per_job
    return {
        "jobs": n,
        "seconds": span,
        "rows": rows,
        "totals": dict(sorted(totals.items())),
        "server_per_job": server,
        "server_total_per_job": round(sum(server.values()), 1),
    }


def report(results: dict) -> str:
    lines = []
    for name, window in results["windows"].items():
        lines.append(f"\n## {name}: {window['jobs']} jobs in {window['seconds']:.1f} s (per job, less the idle rate)\n")
        lines.append("| process | kind | operation | where | per job |")
        lines.append("|---|---|---|---|---|")
        lines += [f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]:.2f} |" for r in window["rows"]]
        lines.append("\ntotals per job: " + "; ".join(f"{k} {v:.2f}" for k, v in window["totals"].items()))
        lines.append(
            f"Redis server commands per job ({window['server_total_per_job']}): "
            + ", ".join(f"{k} {v}" for k, v in window["server_per_job"].items())
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--paced-jobs", type=int, default=50)
    parser.add_argument("--rate", type=float, default=5.0)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    args = parser.parse_args()
    ops = Ops(args)
    try:
        results = ops.run()
    finally:
        ops.stop()
    print(report(results))
    out = REPO / ".hydra" / "bench-ops.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(f"\n(written to {out.relative_to(REPO)})")


if __name__ == "__main__":
    main()

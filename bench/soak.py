"""``make bench-soak``: a worker that has run 5,000 jobs is no bigger than after 50.

Starts a private stack on free ports (Redis, the MongoDB server, the controller, the API
under gunicorn) and one Hydra worker with two pool processes at this machine's real
isolation settings (as root: another OS user, a cgroup and a bubblewrap sandbox per run).
It submits ``echo`` jobs through the REST API (4 client threads) in batches, and after
each checkpoint (50, 500, 1,000, 2,000, 3,000, 4,000 and 5,000 finished runs, once the
runs' processes are gone) notes for the worker's main process and each pool process:

* processes: the worker's descendants, zombies included (it has no command running then);
* open file descriptors;
* resident memory (RSS).

It passes when at the last checkpoint each is within its margin of the first: processes
equal (no zombie, the same pool processes: none recycled), descriptors at most
``FD_MARGIN`` more in all, and each process's RSS at most ``RSS_MARGIN`` more. Prints a
table and writes it as JSON to .hydra/bench-soak.json; exits 1 when a margin is exceeded.
Options: --jobs, --first.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import psutil
import requests

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "deploy" / "local")]

from bench.measure import load  # noqa: E402
from hydrastack import Stack, WorkerSpec  # noqa: E402  (light: reads no settings)
from hydrastack.waiting import wait_until  # noqa: E402

CLIENT_THREADS = 4
#: Open descriptors the worker's processes may gain in all: a connection pool's extra socket.
FD_MARGIN = 8
#: Resident memory each process may gain (allocator and interpreter caches settling).
RSS_MARGIN = 4 * 1024 * 1024
TERMINAL = {"succeeded", "failed", "timed_out", "cancelled", "lost", "dead_letter"}


class Soak:
    def __init__(self, args):
        self.args = args
        self.root = Path(tempfile.mkdtemp(prefix="hydra-soak-"))
        self.stack = Stack.ephemeral(self.root / "stack", mongo_db="hydra_soak")
        os.environ.update(self.stack.env_for_clients())
        self.worker = WorkerSpec("soak", "os.linux,tag.soak", concurrency=2)
        self.http = requests.Session()

    def start(self) -> None:
        say("starting a private stack (Redis, MongoDB server, controller, API, one worker) ...")
        stack = self.stack
        stack.start_redis()
        stack.start_mongo()
        self.http.headers["Authorization"] = f"Bearer {stack.admin_token}"
        stack.start_controller()
        stack.start_worker(self.worker)
        stack.start_api()
        wait_until(
            lambda: (
                self.http.get(stack.api_url + "/health", timeout=30).json().get("workers", {}).get("online", 0) >= 1
            ),
            60,
            interval=0.5,
            message="the worker online",
        )

    def stop(self) -> None:
        self.stack.down()
        if not os.environ.get("HYDRA_KEEP_BENCH_DATA"):
            shutil.rmtree(self.root, ignore_errors=True)

    def run_jobs(self, count: int) -> None:
        """Submits ``count`` jobs and waits until each has ended (succeeded, or the soak stops)."""
        body = {
            "name": "soak",
            "user": "soak",
            "command": "echo soak",
            "shell": "sh",
            "timeout": 60,
            "affinity": {"os": ["linux"], "tags": ["soak"]},
        }
        url = self.stack.api_url + "/jobs/"

        def post(_):
            answer = self.http.post(url, json=body, timeout=60)
            assert answer.status_code == 201, answer.text
            return answer.json()["run_id"]

        with ThreadPoolExecutor(CLIENT_THREADS) as pool:
            run_ids = list(pool.map(post, range(count)))
        from hydra.store.runs import RunStore

        store = RunStore()
        deadline = time.monotonic() + max(300, count)
        for run_id in run_ids:
            while (run := store.find(run_id)) is None or run.status not in TERMINAL:
                if time.monotonic() > deadline:
                    raise SystemExit(f"soak: run {run_id} did not end in time")
                time.sleep(0.1)
            if run.status != "succeeded":
                raise SystemExit(f"soak: run {run_id} ended {run.status}: {run.error}")

    def measure(self) -> dict:
        """The worker's size once the last runs' processes are gone."""
        main = psutil.Process(self.stack.pid(self.worker.process_name))

        def quiet():
            pools = main.children()
            return all(c.status() == psutil.STATUS_ZOMBIE for p in pools for c in p.children())

        wait_until(quiet, 30, interval=0.1, message="the runs' processes gone")
        pools = main.children()
        descendants = main.children(recursive=True)
        return {
            "processes": 1 + len(descendants),
            "zombies": sum(p.status() == psutil.STATUS_ZOMBIE for p in descendants),
            "pool_pids": sorted(p.pid for p in pools),
            "fds": {"main": main.num_fds(), **{f"pool {p.pid}": p.num_fds() for p in pools}},
            "rss": {"main": main.memory_info().rss, **{f"pool {p.pid}": p.memory_info().rss for p in pools}},
        }

    def run(self) -> dict:
        self.start()
        marks = sorted({self.args.first, 500, 1000, 2000, 3000, 4000, self.args.jobs} - {0})
        marks = [m for m in marks if self.args.first <= m <= self.args.jobs]
        done, points = 0, {}
        started = time.monotonic()
        for mark in marks:
            self.run_jobs(mark - done)
            done = mark
            points[mark] = self.measure()
            say(f"{done} runs in {time.monotonic() - started:.0f}s: {summary(points[mark])}; load {load()}")
        return {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "points": points,
            "verdict": verdict(points[marks[0]], points[marks[-1]]),
        }


def summary(point: dict) -> str:
    return (
        f"{point['processes']} processes ({point['zombies']} zombies), {sum(point['fds'].values())} fds, "
        f"RSS {sum(point['rss'].values()) / 2**20:.1f} MiB"
    )


def verdict(first: dict, last: dict) -> list[str]:
    """What grew beyond its margin between the first and the last checkpoint ([]: nothing)."""
    grew = []
    if last["processes"] != first["processes"] or last["zombies"]:
        grew.append(f"processes {first['processes']} -> {last['processes']} ({last['zombies']} zombies)")
    if last["pool_pids"] != first["pool_pids"]:
        grew.append("the pool processes were replaced")
    fds = sum(first["fds"].values()), sum(last["fds"].values())
    if fds[1] > fds[0] + FD_MARGIN:
        grew.append(f"open files {fds[0]} -> {fds[1]}")
    for name, rss in last["rss"].items():
        if rss > first["rss"].get(name, 0) + RSS_MARGIN:
            grew.append(f"RSS of {name} {first['rss'].get(name, 0) / 2**20:.1f} -> {rss / 2**20:.1f} MiB")
    return grew


def table(results: dict) -> str:
    points = results["points"]
    names = list(next(iter(points.values()))["rss"])
    head = ["runs", "processes", "zombies", "fds (all)", *(f"RSS {n} (MiB)" for n in names)]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for mark, point in points.items():
        cells = [f"{mark:,}", str(point["processes"]), str(point["zombies"]), str(sum(point["fds"].values()))]
        cells += [f"{point['rss'][n] / 2**20:.1f}" for n in names]
        lines.append("| " + " | ".join(cells) + " |")
    margins = f"margins: processes +0, fds +{FD_MARGIN} in all, RSS +{RSS_MARGIN // 2**20} MiB per process"
    verdict_text = "; ".join(results["verdict"]) or "nothing grew beyond its margin"
    return "\n".join([*lines, "", margins, f"verdict: {verdict_text}", f"{results['when']}; {results['cpus']} CPUs"])


def say(text: str) -> None:
    print(f"soak: {text}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=5000, help="runs in all (default 5,000)")
    parser.add_argument("--first", type=int, default=50, help="the baseline checkpoint (default 50 runs)")
    args = parser.parse_args()
    soak = Soak(args)
    try:
        results = soak.run()
    finally:
        soak.stop()
    print()
    print(table(results))
    out = REPO / ".hydra" / "bench-soak.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"\n(written to {out.relative_to(REPO)})")
    if results["verdict"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()

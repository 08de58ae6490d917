"""``make bench-history``: does history slow anything down? The same stack measured with
(almost) no history, then after bulk-loading 100,000 runs of 30,000 jobs, then 1,000,000 runs
of 300,000 jobs (``bench/history.py``: realistic, with fences and some live output).

At each point it measures, on the running stack (FerretDB here unless HYDRA_MONGO_URL):

* a page of 50 of each listing through the REST API - first pages and pages reached by
  following ``X-Next-Cursor`` - p50 / p99;
* the sweeps the controller and failover run (runs in progress, on a worker, unpublished;
  undispatched and scheduled jobs), called through the stores, p50 / p99;
* one controller tick (the leading controller's own timing, over 30 s of ticks);
* submit -> start of 200 jobs at 20 jobs/s; failover kill -> next attempt (3 kills);
* Redis memory.

Each figure is the median of three rounds (``--rounds``): the machine is shared.

"Empty" is a seed of 3,000 jobs and 10,200 runs (20 of them cron jobs), the least history
with which every page of every listing is full; each later load adds two cron jobs holding
a quarter of its runs (the busiest job's runs are listed). Goal: every
figure at 1M within 1.5x of empty. Finally the Redis indexes are dropped and the time the
controller takes to rebuild them from MongoDB is measured. Options: --points, --seed-jobs,
--samples, --skip-rebuild.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "deploy" / "local")]

from bench.failover import failover_workers, time_failovers  # noqa: E402
from bench.measure import load, percentile  # noqa: E402
from hydrastack import Stack, WorkerSpec  # noqa: E402
from hydrastack.waiting import wait_until  # noqa: E402

PAGE = 50


def say(text: str) -> None:
    print(f"bench-history: {text}", flush=True)


def median_of(figures: list[dict]) -> dict:
    """Each figure's median over rounds (the same keys in every round)."""
    return {key: percentile([f[key] for f in figures], 50) for key in figures[0]}


class HistoryBench:
    def __init__(self, args):
        self.args = args
        self.root = Path(tempfile.mkdtemp(prefix="hydra-history-"))
        self.stack = Stack.ephemeral(self.root / "stack", mongo_db="hydra_history", env={"HYDRA_RETENTION_DAYS": "0"})
        os.environ.update(self.stack.env_for_clients())
        os.environ["HYDRA_RETENTION_DAYS"] = "0"
        self.http = requests.Session()
        self.points: list[dict] = []
        self.loaded_jobs = self.loaded_runs = 0
        self.samples: dict = {"cron": [], "users": [], "jobs": []}
        self.batch = 0

    # -- set-up ----------------------------------------------------------------------------
    def start(self) -> None:
        stack = self.stack
        say("starting a private stack ...")
        stack.start_redis()
        stack.start_mongo()
        self.http.headers["Authorization"] = f"Bearer {stack.admin_token}"  # every call is authenticated
        stack.start_controller()
        for i in range(2):
            stack.start_worker(WorkerSpec(f"hist{i}", "os.linux", concurrency=2))
        stack.start_api()
        self.failover_specs = failover_workers("hfo", "hfo")

    def stop(self) -> None:
        self.stack.down()
        if not os.environ.get("HYDRA_KEEP_BENCH_DATA"):
            shutil.rmtree(self.root, ignore_errors=True)

    def load_to(self, jobs: int, runs: int, crons: int) -> float:
        """Bulk-load history until ``jobs`` jobs and ``runs`` runs are stored; returns seconds."""
        from bench.history import load as load_history
        from hydra.broker.index import Index
        from hydra.store.mongo import get_database

        more_jobs, more_runs = jobs - self.loaded_jobs, runs - self.loaded_runs
        if more_jobs <= 0:
            return 0.0
        self.batch += 1
        say(f"loading {more_jobs} jobs, {more_runs} runs of history ...")
        started = time.monotonic()
        loaded = load_history(
            get_database(), Index(), jobs=more_jobs, runs=more_runs, seed=self.batch, days=25, crons=crons, say=say
        )
        self.loaded_jobs, self.loaded_runs = jobs, runs
        self.samples["cron"] += loaded.cron_jobs
        seconds = time.monotonic() - started
        say(f"  loaded in {seconds:.0f} s")
        return seconds

    # -- measuring ---------------------------------------------------------------------------
    def timed_get(self, path: str) -> tuple[float, requests.Response]:
        started = time.perf_counter()
        response = self.http.get(self.stack.api_url + path, timeout=300)
        took = (time.perf_counter() - started) * 1000
        assert response.status_code == 200, (path, response.status_code, response.text[:300])
        return took, response

    def listing(self, path: str, samples: int) -> dict:
        """p50/p99 (ms) of a page: first pages, and pages reached through the cursor."""
        times, sizes = [], []
        cursor = None
        for k in range(samples):
            url = path if cursor is None or k % 3 == 0 else f"{path}{'&' if '?' in path else '?'}cursor={cursor}"
            took, response = self.timed_get(url)
            times.append(took)
            sizes.append(len(response.json()))
            cursor = response.headers.get("X-Next-Cursor") or None
        return {"p50_ms": percentile(times, 50), "p99_ms": percentile(times, 99), "page": max(sizes)}

    def sweeps(self, samples: int) -> dict:
        from hydra.model.status import RunStatus
        from hydra.store.runs import RunStore

        runs = RunStore()
        jobs = runs.jobs
        calls = {
            "runs in progress (reconcile)": lambda: runs.with_status(
                [RunStatus.QUEUED, RunStatus.PENDING, RunStatus.RUNNING]
            ),
            "runs on a worker (failover)": lambda: runs.active_on("hist0@" + __import__("socket").gethostname()),
            "unpublished runs": runs.unpublished,
            "undispatched jobs": jobs.undispatched,
            "scheduled jobs (scheduler load)": jobs.scheduled,
        }
        out = {}
        for name, call in calls.items():
            times = []
            for _ in range(samples):
                started = time.perf_counter()
                call()
                times.append((time.perf_counter() - started) * 1000)
            out[name] = {"p50_ms": percentile(times, 50), "p99_ms": percentile(times, 99)}
        return out

    def ticks(self, seconds: float = 30.0) -> dict:
        from hydra.broker.registry import Registry

        registry = Registry()
        before = registry.ticks()
        time.sleep(seconds)
        count = registry.ticks() - before
        durations = registry.tick_durations()[: max(1, count)]
        return {
            "ticks": count,
            "p50_ms": percentile(durations, 50),
            "p99_ms": percentile(durations, 99),
            "max_ms": max(durations),
        }

    def latency(self, n: int = 200, rate: float = 20.0) -> dict:
        body = {
            "name": "latency",
            "user": f"hist-lat-{int(time.time())}",
            "command": "echo hello",
            "shell": "sh",
            "timeout": 120,
            "affinity": {"os": ["linux"]},
        }
        sent, ids = [], []
        start = time.monotonic()
        for i in range(n):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            sent.append(time.time())
            answer = self.http.post(self.stack.api_url + "/jobs/", json=body, timeout=60)
            assert answer.status_code == 201, answer.text
            ids.append(answer.json()["run_id"])
        from hydra.store.runs import RunStore

        store = RunStore()
        delays = []
        for at, run_id in zip(sent, ids, strict=True):
            while (run := store.find(run_id)) is None or run.started_at is None:
                time.sleep(0.05)
            delays.append((run.started_at.timestamp() - at) * 1000)
        return {"p50_ms": percentile(delays, 50), "p99_ms": percentile(delays, 99)}

    def failover(self, kills: int) -> dict:
        def submit(k: int) -> dict:
            body = {
                "name": "fo",
                "user": f"fo{k}",
                "command": "sleep 120",
                "shell": "sh",
                "affinity": {"os": ["linux"], "tags": ["hfo"]},
            }
            return self.http.post(self.stack.api_url + "/jobs/", json=body, timeout=60).json()

        def cancel(run_id: str) -> None:
            self.http.post(self.stack.api_url + f"/runs/{run_id}/cancel", timeout=60)

        delays = time_failovers(self.stack, self.failover_specs, kills, submit=submit, cancel=cancel)
        return {"p50_s": percentile(delays, 50), "max_s": max(delays)}

    def redis_memory(self) -> dict:
        from hydra.broker.redis import get_redis

        info = get_redis().info("memory")
        return {"used_mb": info["used_memory"] / 2**20, "keys": get_redis().dbsize()}

    def measure(self, label: str) -> dict:
        from hydra.store.jobs import JobStore
        from hydra.store.runs import RunStore

        samples = self.args.samples
        say(f"measuring at {label} (load {load()}) ...")
        rng = random.Random(7)
        cron = self.samples["cron"][-1]  # a cron job of the latest load: the most runs
        page, _ = JobStore().list(limit=200)
        plain = rng.choice([j.id for j in page if not j.schedule])  # one to a few runs
        del RunStore
        urls = {
            "jobs, newest first": f"/jobs/?limit={PAGE}",
            "jobs by status (failed)": f"/jobs/?status=failed&limit={PAGE}",
            "jobs by user": f"/jobs/?user=user07&limit={PAGE}",
            "jobs by user and status": f"/jobs/?user=user03&status=succeeded&limit={PAGE}",
            "runs of a cron job": f"/jobs/{cron}/runs?limit={PAGE}",
            "runs of a job": f"/jobs/{plain}/runs?limit={PAGE}",
            "dead letters": f"/dead-letter/?limit={PAGE}",
            "workers": "/workers/",
        }
        point = {"label": label, "jobs": self.loaded_jobs, "runs": self.loaded_runs, "load": load()}
        # Each figure is the median of a few rounds: other processes share the cores, and one
        # burst of theirs should not make a point look slower or faster than it is.
        rounds = []
        for k in range(self.args.rounds):
            rounds.append(
                {
                    "load": load(),
                    "listings": {name: self.listing(url, samples) for name, url in urls.items()},
                    "sweeps": self.sweeps(samples * 3),
                    "tick": self.ticks(),
                    "latency": self.latency(),
                }
            )
            say(f"  round {k + 1} done (load {load()})")
        point["rounds"] = rounds
        point["listings"] = {name: median_of([r["listings"][name] for r in rounds]) for name in urls}
        point["sweeps"] = {name: median_of([r["sweeps"][name] for r in rounds]) for name in rounds[0]["sweeps"]}
        point["tick"] = median_of([r["tick"] for r in rounds])
        point["latency"] = median_of([r["latency"] for r in rounds])
        point["failover"] = self.failover(self.args.kills)
        point["redis"] = self.redis_memory()
        point["load_end"] = load()
        return point

    def rebuild(self) -> dict:
        """Drop every index key; time until the controller has rebuilt them from MongoDB
        (the jobs' half, then the runs'), and what a listing gets meanwhile."""
        from hydra import names
        from hydra.broker.index import Index
        from hydra.broker.redis import get_redis

        redis = get_redis()
        index = Index()
        say("dropping the Redis indexes; the controller rebuilds them from MongoDB ...")
        # Dropped in a few round trips (one UNLINK per key took minutes at 1M runs, and the
        # controller, which starts rebuilding at the first missing mark, lost its own work to
        # the deletions that followed).
        keys = list(redis.scan_iter(match=names.INDEX_PREFIX + "*", count=10_000))
        for start in range(0, len(keys), 10_000):
            redis.unlink(*keys[start : start + 10_000])
        dropped = time.monotonic()
        started = time.perf_counter()
        response = self.http.get(self.stack.api_url + f"/jobs/?limit={PAGE}", timeout=300)
        meanwhile = {"status": response.status_code, "ms": (time.perf_counter() - started) * 1000}
        wait_until(lambda: index.built("jobs"), 7200, interval=1.0, message="the jobs' indexes")
        jobs_s = time.monotonic() - dropped
        took, _ = self.timed_get(f"/jobs/?limit={PAGE}")
        wait_until(index.built, 7200, interval=1.0, message="the runs' indexes")
        return {
            "jobs_s": jobs_s,
            "runs_s": time.monotonic() - dropped,
            "meanwhile": meanwhile,
            "jobs_page_after_jobs_ms": took,
            "load": load(),
        }

    def run(self) -> dict:
        self.start()
        # The seed: every page full, and the installation's cron jobs (later loads add two each:
        # the number of schedules is work to do, not history).
        self.load_to(self.args.seed_jobs, int(self.args.seed_jobs * 3.4), crons=20)
        self.points.append(self.measure("empty"))
        self.save()
        for spec in self.args.points.split(","):
            runs, jobs = (int(x) for x in spec.split(":"))
            seconds = self.load_to(jobs, runs, crons=2)
            point = self.measure(f"{runs // 1000}k")
            point["load_seconds"] = seconds
            self.points.append(point)
            self.save()
        self.rebuilt = None if self.args.skip_rebuild else self.rebuild()
        return self.save()

    def save(self) -> dict:
        """The results so far, also written to .hydra/bench-history-latest.json."""
        results = {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "store": self.stack.mongo_backend,
            "points": self.points,
            "rebuild": getattr(self, "rebuilt", None),
        }
        out = REPO / ".hydra" / "bench-history-latest.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(results, indent=2, default=str))
        return results


def table(results: dict) -> str:
    points = results["points"]
    base, last = points[0], points[-1]
    head = (
        ["metric (ms unless noted)"]
        + [f"{p['label']} ({p['runs']:,} runs)" for p in points]
        + [f"{last['label']} / empty (goal <= 1.5)"]
    )
    rows = [head]

    def add(name, get, fmt="{:.1f}", ratio_of=None):
        values = [get(p) for p in points]
        cells = [
            " / ".join(fmt.format(v) for v in value) if isinstance(value, tuple) else fmt.format(value)
            for value in values
        ]
        ratio = ratio_of(base, last) if ratio_of else None
        rows.append([name, *cells, "" if ratio is None else f"{ratio:.2f}"])

    for name in base["listings"]:
        add(
            f"page of 50: {name}, p50 / p99",
            lambda p, n=name: (p["listings"][n]["p50_ms"], p["listings"][n]["p99_ms"]),
            ratio_of=lambda b, lst, n=name: lst["listings"][n]["p99_ms"] / b["listings"][n]["p99_ms"],
        )
    for name in base["sweeps"]:
        add(
            f"sweep: {name}, p50 / p99",
            lambda p, n=name: (p["sweeps"][n]["p50_ms"], p["sweeps"][n]["p99_ms"]),
            ratio_of=lambda b, lst, n=name: lst["sweeps"][n]["p99_ms"] / max(b["sweeps"][n]["p99_ms"], 0.5),
        )
    add(
        "controller tick, p50 / p99",
        lambda p: (p["tick"]["p50_ms"], p["tick"]["p99_ms"]),
        ratio_of=lambda b, lst: lst["tick"]["p99_ms"] / b["tick"]["p99_ms"],
    )
    add(
        "submit -> start at 20 jobs/s, p50 / p99",
        lambda p: (p["latency"]["p50_ms"], p["latency"]["p99_ms"]),
        ratio_of=lambda b, lst: lst["latency"]["p99_ms"] / b["latency"]["p99_ms"],
    )
    add(
        "failover kill -> next attempt, p50 / max (s)",
        lambda p: (p["failover"]["p50_s"], p["failover"]["max_s"]),
        "{:.2f}",
        ratio_of=lambda b, lst: lst["failover"]["max_s"] / b["failover"]["max_s"],
    )
    add("Redis used memory (MB)", lambda p: p["redis"]["used_mb"], "{:.0f}")
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(head))]
    lines = ["| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines.append(
        f"\n{results['when']}; store: {results['store']}; load average (1, 5, 15 min) at each point: "
        + "; ".join(f"{p['label']} {p['load']} .. {p['load_end']}" for p in points)
    )
    for p in points[1:]:
        lines.append(f"bulk load to {p['label']}: {p['load_seconds']:.0f} s")
    rebuild = results.get("rebuild")
    if rebuild:
        meanwhile = rebuild["meanwhile"]
        lines.append(
            f"indexes dropped at {last['label']}: the controller rebuilt the jobs' in {rebuild['jobs_s']:.0f} s "
            f"(a jobs page then: {rebuild['jobs_page_after_jobs_ms']:.0f} ms) and the runs' in "
            f"{rebuild['runs_s']:.0f} s; a jobs page before, from MongoDB's own query: HTTP {meanwhile['status']} "
            f"after {meanwhile['ms']:.0f} ms (load {rebuild['load']})"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", default="100000:30000,1000000:300000", help="runs:jobs, comma separated")
    parser.add_argument("--seed-jobs", type=int, default=3000)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3, help="rounds per point; each figure is their median")
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--skip-rebuild", action="store_true")
    args = parser.parse_args()
    bench = HistoryBench(args)
    try:
        results = bench.run()
    finally:
        results = bench.save()
        bench.stop()
    print()
    print(table(results))
    print("\n(written to .hydra/bench-history-latest.json)")


if __name__ == "__main__":
    main()

"""``make bench``: Hydra against bare Celery, in one run, on one machine.

Starts a private stack on free ports (Redis, the MongoDB server - FerretDB here unless
HYDRA_MONGO_URL or mongod -, the controller, the API under gunicorn, two Hydra workers) and
two bare Celery workers of the same size on the same Redis, then measures:

1. throughput: N ``echo`` jobs submitted through Hydra's REST API (8 client threads), and the
   same command as N bare Celery tasks; jobs per second from the first submission to the
   last finish, and their ratio;
2. submit -> start latency at a steady 50 jobs/s (the time from the client's POST to the
   worker starting the attempt; for bare Celery, from apply_async to the task starting);
3. failover: a worker running a job is killed (SIGKILL of its whole process tree) K times;
   the time from the kill to the next attempt starting on the other worker.

Prints a table (and writes it as JSON next to the stack's data). Options: --jobs, --rate,
--latency-jobs, --kills, --skip-failover.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
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

from hydrastack import Stack, WorkerSpec, venv_bin  # noqa: E402  (light: reads no settings)

WORKERS = 2
CONCURRENCY = 2
CLIENT_THREADS = 8
TERMINAL = ["succeeded", "failed", "timed_out", "cancelled", "lost", "retrying", "dead_letter"]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def wait_for(predicate, timeout: float, interval: float = 0.5, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise SystemExit(f"bench: timed out waiting for {what}")


class Bench:
    def __init__(self, args):
        self.args = args
        self.root = Path(tempfile.mkdtemp(prefix="hydra-bench-"))
        self.stack = Stack.ephemeral(self.root / "stack", mongo_db="hydra_bench")
        os.environ.update(self.stack.env_for_clients())
        self.redis_db = self.stack.broker_url.rsplit("/", 1)[0]
        self.http = requests.Session()
        self.results: dict = {}

    # -- set-up --------------------------------------------------------------------------
    def start(self) -> None:
        stack = self.stack
        say("starting a private stack (Redis, MongoDB server, controller, API, workers) ...")
        stack.start_redis()
        stack.start_mongo()
        stack.start_controller()
        self.hydra_workers = [WorkerSpec(f"bench{i}", "os.linux", concurrency=CONCURRENCY) for i in range(WORKERS)]
        for spec in self.hydra_workers:
            stack.start_worker(spec)
        stack.start_api()
        bare_env = {"BARE_BROKER_URL": f"{self.redis_db}/1", "BARE_RESULT_URL": f"{self.redis_db}/2"}
        os.environ.update(bare_env)
        self.bare_names = []
        for i in range(WORKERS):
            name = f"bare{i}"
            stack.spawn(
                name,
                [
                    str(venv_bin() / "celery"),
                    "-A",
                    "bench.bare",
                    "worker",
                    "-c",
                    str(CONCURRENCY),
                    "-n",
                    f"{name}@%h",
                    "--loglevel",
                    "WARNING",
                ],
                env=bare_env,
            )
            self.bare_names.append(name)
        from bench.bare import app as bare_app

        self.bare_app = bare_app
        wait_for(lambda: len(bare_app.control.ping(timeout=1.0) or []) >= WORKERS, 60, what="bare workers")
        wait_for(
            lambda: self.api("GET", "/health").get("workers", {}).get("online", 0) >= WORKERS,
            60,
            what="Hydra workers online",
        )

    def stop(self) -> None:
        self.stack.down()
        for name in getattr(self, "bare_names", []):
            self.stack.stop(name)
        if not os.environ.get("HYDRA_KEEP_BENCH_DATA"):
            shutil.rmtree(self.root, ignore_errors=True)

    def api(self, method: str, path: str, **kw) -> dict:
        response = self.http.request(method, self.stack.api_url + path, timeout=60, **kw)
        return response.json()

    # -- Hydra ---------------------------------------------------------------------------
    def body(self, user: str, command: str = "echo hello", **extra) -> dict:
        return {
            "name": "bench",
            "user": user,
            "command": command,
            "shell": "sh",
            "timeout": 120,
            "affinity": {"os": ["linux"]},
            **extra,
        }

    def submit_all(self, bodies: list[dict], pace: float | None = None) -> list[tuple[float, dict]]:
        """POST the bodies from CLIENT_THREADS threads (at ``pace`` per second when given);
        returns (client time just before the POST, answer) per job."""
        local = __import__("threading").local()

        def post(body):
            session = getattr(local, "session", None) or requests.Session()
            local.session = session
            sent = time.time()
            answer = session.post(self.stack.api_url + "/jobs/", json=body, timeout=60)
            assert answer.status_code == 201, answer.text
            return sent, answer.json()

        with ThreadPoolExecutor(CLIENT_THREADS) as pool:
            futures = []
            start = time.monotonic()
            for i, body in enumerate(bodies):
                if pace:
                    delay = start + i / pace - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                futures.append(pool.submit(post, body))
            return [f.result() for f in futures]

    def hydra_runs(self, run_ids: list[str], timeout: float) -> list:
        """Wait until every run ended; read each by _id (a filtered count would make FerretDB
        decode the whole collection every poll, and the bench would measure itself)."""
        from hydra.store.runs import RunStore

        store = RunStore()
        deadline = time.monotonic() + timeout
        done = []
        for run_id in run_ids:
            while (run := store.find(run_id)) is None or run.status not in TERMINAL:
                if time.monotonic() > deadline:
                    raise SystemExit(f"bench: run {run_id} did not end in {timeout:g}s")
                time.sleep(0.2)
            done.append(run)
        return done

    def hydra_throughput(self, n: int) -> dict:
        user = f"bench-tp-{int(time.time())}"
        first = time.time()
        sent = self.submit_all([self.body(user) for _ in range(n)])
        submitted = time.time()
        runs = self.hydra_runs([answer["run_id"] for _, answer in sent], timeout=max(300, n))
        last = max(r.finished_at for r in runs).timestamp()
        ok = sum(r.status == "succeeded" for r in runs)
        return {
            "jobs": n,
            "succeeded": ok,
            "seconds": last - first,
            "per_second": n / (last - first),
            "submit_per_second": len(sent) / (submitted - first),
        }

    def hydra_latency(self, n: int, rate: float) -> dict:
        user = f"bench-lat-{int(time.time())}"
        sent = self.submit_all([self.body(user) for _ in range(n)], pace=rate)
        runs = self.hydra_runs([answer["run_id"] for _, answer in sent], timeout=max(300, n))
        delays = [(run.started_at.timestamp() - at) * 1000 for (at, _), run in zip(sent, runs, strict=True)]
        return {
            "jobs": n,
            "rate": rate,
            "p50_ms": percentile(delays, 50),
            "p99_ms": percentile(delays, 99),
            "max_ms": max(delays),
        }

    # -- bare Celery -----------------------------------------------------------------------
    def bare_throughput(self, n: int) -> dict:
        from bench.bare import run

        first = time.time()
        results = [run.apply_async(args=["echo hello"]) for _ in range(n)]
        outcomes = [r.get(timeout=max(300, n)) for r in results]
        last = max(o["finished"] for o in outcomes)
        return {
            "jobs": n,
            "succeeded": sum(o["returncode"] == 0 for o in outcomes),
            "seconds": last - first,
            "per_second": n / (last - first),
        }

    def bare_latency(self, n: int, rate: float) -> dict:
        from bench.bare import run

        sent, results = [], []
        start = time.monotonic()
        for i in range(n):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            sent.append(time.time())
            results.append(run.apply_async(args=["echo hello"]))
        delays = [(r.get(timeout=300)["started"] - at) * 1000 for at, r in zip(sent, results, strict=True)]
        return {
            "jobs": n,
            "rate": rate,
            "p50_ms": percentile(delays, 50),
            "p99_ms": percentile(delays, 99),
            "max_ms": max(delays),
        }

    # -- failover ------------------------------------------------------------------------------
    def failover(self, kills: int) -> dict:
        from hydra.store.jobs import JobStore
        from hydra.store.runs import RunStore

        stack, jobs, runs = self.stack, JobStore(), RunStore()
        specs = {
            f"fo{i}@{__import__('socket').gethostname()}": WorkerSpec(f"fo{i}", "os.linux,tag.failover", concurrency=1)
            for i in range(2)
        }
        for spec in specs.values():
            stack.start_worker(spec)
        delays = []
        for k in range(kills):
            self.wait_online(list(specs))
            created = self.api(
                "POST",
                "/jobs/",
                json=self.body(f"bench-fo-{k}", "sleep 120", affinity={"os": ["linux"], "tags": ["failover"]}),
            )
            first = wait_for(
                lambda created=created: (r := runs.find(created["run_id"])) and r.status == "running" and r,
                60,
                interval=0.05,
                what="the job to start",
            )
            victim = specs[first.worker_id]
            procs = [psutil.Process(stack.pid(victim.process_name))]
            procs += procs[0].children(recursive=True)
            for proc in procs:
                proc.send_signal(signal.SIGKILL)
            killed = time.time()

            def next_started(created=created):
                job = jobs.find(created["job_id"])
                if job is None or job.last_run_id in (None, created["run_id"]):
                    return None
                run = runs.find(job.last_run_id)
                return run if run and run.started_at else None

            second = wait_for(next_started, 60, interval=0.05, what="the next attempt to start")
            delays.append(second.started_at.timestamp() - killed)
            say(
                f"  kill {k + 1}/{kills}: attempt {second.attempt} started on {second.worker_id} "
                f"{delays[-1]:.2f} s after the kill"
            )
            self.api("POST", f"/runs/{second.id}/cancel")
            psutil.wait_procs(procs, timeout=10)
            stack.start_worker(victim)
        return {"kills": kills, "p50_s": percentile(delays, 50), "p99_s": percentile(delays, 99), "max_s": max(delays)}

    def wait_online(self, worker_ids: list[str]) -> None:
        from hydra.broker.registry import Registry

        registry = Registry()
        wait_for(
            lambda: all((r := registry.get(w)) and r.status == "online" for w in worker_ids),
            60,
            interval=0.2,
            what=f"{worker_ids} online",
        )

    # -- run -------------------------------------------------------------------------------------
    def run(self) -> dict:
        args = self.args
        self.start()
        say("warming up (50 jobs each) ...")
        self.hydra_throughput(50)
        self.bare_throughput(50)
        say(f"throughput: {args.jobs} echo jobs through Hydra ...")
        hydra_tp = self.hydra_throughput(args.jobs)
        say(f"throughput: {args.jobs} echo tasks through bare Celery ...")
        bare_tp = self.bare_throughput(args.jobs)
        say(f"latency: {args.latency_jobs} jobs at {args.rate}/s through Hydra, then bare Celery ...")
        hydra_lat = self.hydra_latency(args.latency_jobs, args.rate)
        bare_lat = self.bare_latency(args.latency_jobs, args.rate)
        failover = None
        if not args.skip_failover:
            say(f"failover: {args.kills} kills ...")
            failover = self.failover(args.kills)
        self.results = {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "store": self.stack.mongo_backend,
                "workers": f"{WORKERS} x concurrency {CONCURRENCY}",
            },
            "hydra_throughput": hydra_tp,
            "bare_throughput": bare_tp,
            "hydra_latency": hydra_lat,
            "bare_latency": bare_lat,
            "failover": failover,
        }
        return self.results


def table(results: dict) -> str:
    h, b = results["hydra_throughput"], results["bare_throughput"]
    hl, bl = results["hydra_latency"], results["bare_latency"]
    rows = [
        ("metric", "Hydra", "bare Celery", "Hydra / goal"),
        (
            f"throughput, {h['jobs']} echo jobs (jobs/s)",
            f"{h['per_second']:.1f}",
            f"{b['per_second']:.1f}",
            f"ratio {h['per_second'] / b['per_second']:.2f} (goal >= 0.8)",
        ),
        ("  jobs succeeded", f"{h['succeeded']}/{h['jobs']}", f"{b['succeeded']}/{b['jobs']}", ""),
        ("  REST submissions/s (8 clients)", f"{h['submit_per_second']:.1f}", "", ""),
        (f"submit->start p50 at {hl['rate']:g} jobs/s (ms)", f"{hl['p50_ms']:.1f}", f"{bl['p50_ms']:.1f}", ""),
        (
            f"submit->start p99 at {hl['rate']:g} jobs/s (ms)",
            f"{hl['p99_ms']:.1f}",
            f"{bl['p99_ms']:.1f}",
            "goal <= 50 ms",
        ),
    ]
    failover = results.get("failover")
    if failover:
        rows.append(
            (f"failover kill->next attempt p50 ({failover['kills']} kills, s)", f"{failover['p50_s']:.2f}", "n/a", "")
        )
        rows.append(("failover kill->next attempt p99 (s)", f"{failover['p99_s']:.2f}", "n/a", "goal <= 8 s"))
    widths = [max(len(str(row[i])) for row in rows) for i in range(4)]
    lines = ["| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    m = results["machine"]
    lines.append(
        f"\n{results['when']}; {m['cpus']} CPUs; store: {m['store']}; workers: {m['workers']} "
        f"(Hydra and bare Celery alike); Python {m['python']}"
    )
    return "\n".join(lines)


def say(text: str) -> None:
    print(f"bench: {text}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--latency-jobs", type=int, default=500)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--skip-failover", action="store_true")
    args = parser.parse_args()
    bench = Bench(args)
    try:
        results = bench.run()
    finally:
        bench.stop()
    print()
    print(table(results))
    out = REPO / ".hydra" / "bench-latest.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"\n(written to {out.relative_to(REPO)})")


if __name__ == "__main__":
    main()

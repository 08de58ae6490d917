"""``make bench``: Hydra against its peers, in one run, on one machine.

Starts a private stack on free ports (Redis, the MongoDB server - FerretDB here unless
HYDRA_MONGO_URL or mongod -, the controller, the API under gunicorn, two Hydra workers), and
for each peer two Celery workers of the same size on the same Redis (``bench/bare.py``):
**bare Celery** with the Redis result backend, and **Celery with its MongoDB result
backend** on the same MongoDB server as Hydra (on FerretDB with the ``_id`` index added the
way Hydra adds it). Then it measures:

1. throughput: N ``echo`` jobs submitted through Hydra's REST API (8 client threads), and the
   same command as N tasks of each peer (``apply_async``, then each result awaited); jobs
   per second from the first submission to the last finish, and the ratios;
2. CPU per job in each of those bursts, by process (``bench/cpu.py``: /proc, less each
   process's idle rate read over a quiet window first): the headline figure, because it
   holds on a shared machine where wall-clock throughput does not;
3. submit -> start latency at a steady 50 jobs/s, three rounds in a row (the time from the
   client's POST to the worker starting the attempt; for bare Celery, from apply_async to
   the task starting);
4. submit -> command running at a steady 5 jobs/s: the command (``date +%s.%N``) prints the
   time it runs, compared with the client's time just before its POST (one host clock);
5. failover: a worker running a job is killed (SIGKILL of its whole process tree) K times;
   the time from the kill to the next attempt starting on the other worker.

The machine's load average is noted before each phase (other processes share the cores).
Prints a table (and writes it as JSON under .hydra/, CPU per job under ``cpu_ms_per_job``).
Options: --jobs, --rate, --latency-jobs, --latency-rounds, --command-jobs, --command-rate,
--idle-seconds, --kills, --skip-failover, --skip-mongo-peer, --py-spy (profiles of the
throughput bursts, ``bench/profile.py``).
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

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "deploy" / "local")]

from bench import cpu  # noqa: E402
from bench.failover import failover_workers, time_failovers  # noqa: E402
from bench.measure import load, percentile  # noqa: E402
from bench.profile import Profiler  # noqa: E402
from bench.table import table  # noqa: E402
from hydrastack import Stack, WorkerSpec, ferretdb, venv_bin  # noqa: E402  (light: reads no settings)
from hydrastack.waiting import wait_until  # noqa: E402

WORKERS = 2
CONCURRENCY = 2
CLIENT_THREADS = 8
TERMINAL = ["succeeded", "failed", "timed_out", "cancelled", "lost", "retrying", "dead_letter"]
#: A burst's CPU window closes this long after its last end, so that the tail of that end
#: (the ack, the task events) falls inside it; the idle rate takes this second's idle CPU off.
SETTLE = 1.0
#: The command of the submit -> command running phase: it prints the time it runs.
CLOCK_COMMAND = "date +%s.%N"


class Bench:
    def __init__(self, args):
        self.args = args
        self.root = Path(tempfile.mkdtemp(prefix="hydra-bench-"))
        self.stack = Stack.ephemeral(self.root / "stack", mongo_db="hydra_bench")
        os.environ.update(self.stack.env_for_clients())
        self.redis_db = self.stack.broker_url.rsplit("/", 1)[0]
        self.http = requests.Session()
        self.results: dict = {}
        self.cpu_detail: dict = {}
        self.profiler = Profiler(args.py_spy, REPO / ".hydra" / "profiles") if args.py_spy else None

    # -- set-up --------------------------------------------------------------------------
    def start(self) -> None:
        stack = self.stack
        say("starting a private stack (Redis, MongoDB server, controller, API, workers) ...")
        stack.start_redis()
        stack.start_mongo()
        # Every API call is authenticated: the clients send the admin token the stack made.
        self.http.headers["Authorization"] = f"Bearer {stack.admin_token}"
        stack.start_controller()
        self.hydra_workers = [WorkerSpec(f"bench{i}", "os.linux", concurrency=CONCURRENCY) for i in range(WORKERS)]
        for spec in self.hydra_workers:
            stack.start_worker(spec)
        stack.start_api()
        self.peers = {"bare": (f"{self.redis_db}/1", f"{self.redis_db}/2")}
        if not self.args.skip_mongo_peer:
            # The peer's results go to the same server and database as Hydra's (its user may
            # write there), in Celery's own collection (celery_taskmeta).
            base, _, query = stack.mongo_url.partition("?")
            mongo = f"{base.rstrip('/')}/{stack.mongo_db}" + (f"?{query}" if query else "")
            self.peers["mongo"] = (f"{self.redis_db}/3", mongo)
        self.bare_names = []
        self.peer_apps = {}
        from bench.bare import make_app

        for peer, (broker, backend) in self.peers.items():
            env = {"BARE_BROKER_URL": broker, "BARE_RESULT_URL": backend}
            for i in range(WORKERS):
                name = f"{peer}{i}"
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
                    env=env,
                )
                self.bare_names.append(name)
            app = make_app(broker, backend)
            self.peer_apps[peer] = app
            wait_until(
                lambda app=app: len(app.control.ping(timeout=1.0) or []) >= WORKERS,
                60,
                interval=0.5,
                message=f"{peer} workers",
            )
        wait_until(
            lambda: self.api("GET", "/health").get("workers", {}).get("online", 0) >= WORKERS,
            60,
            interval=0.5,
            message="Hydra workers online",
        )

    def systems(self) -> list[cpu.System]:
        """The processes of Hydra and of each peer, by role (bench/cpu.py)."""
        peers = {peer: [n for n in self.bare_names if n.startswith(peer)] for peer in self.peers}
        return cpu.stack_systems(self.stack, [spec.process_name for spec in self.hydra_workers], peers)

    def stop(self) -> None:
        if self.profiler:
            self.profiler.stop()
        self.stack.down()
        for name in getattr(self, "bare_names", []):
            self.stack.stop(name)
        cpu.remove_cpuacct_groups()
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
            session = getattr(local, "session", None)
            if session is None:
                session = local.session = requests.Session()
                session.headers.update(self.http.headers)
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

    def ended(self) -> int:
        """Attempts ended so far (the metric the end-fence winner counts, one Redis read):
        the burst waits on it rather than reading every run while the window is open."""
        from hydra import names
        from hydra.broker.redis import get_redis

        return sum(int(v) for v in get_redis().hvals(names.METRIC_RUNS_FINISHED))

    def hydra_throughput(self, n: int, meter: cpu.Meter | None = None) -> dict:
        user = f"bench-tp-{int(time.time())}"
        ended = self.ended()
        before = meter.start() if meter else None
        if meter:
            self.profile("hydra")
        first = time.time()
        sent = self.submit_all([self.body(user) for _ in range(n)])
        submitted = time.time()
        wait_until(lambda: self.ended() >= ended + n, max(300, n), interval=0.1, message=f"{n} jobs to end")
        if meter and before:
            time.sleep(SETTLE)
            self.cpu_detail["hydra"] = meter.finish("hydra", before, n)
            self.profile(None)
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

    def hydra_latency(self, n: int, rate: float, command: str | None = None) -> dict:
        """submit -> start (the attempt's ``started_at``); with ``command`` (CLOCK_COMMAND),
        submit -> the time the command printed."""
        user = f"bench-lat-{int(time.time())}"
        sent = self.submit_all([self.body(user, command or "echo hello") for _ in range(n)], pace=rate)
        runs = self.hydra_runs([answer["run_id"] for _, answer in sent], timeout=max(300, n))
        delays = [
            ((float(run.stdout) if command else run.started_at.timestamp()) - at) * 1000
            for (at, _), run in zip(sent, runs, strict=True)
        ]
        result = {
            "jobs": n,
            "rate": rate,
            "p50_ms": percentile(delays, 50),
            "p99_ms": percentile(delays, 99),
            "max_ms": max(delays),
        }
        if command:  # where it goes: up to the claim (started_at), then to the command running
            started = [(run.started_at.timestamp() - at) * 1000 for (at, _), run in zip(sent, runs, strict=True)]
            isolation = [(float(run.stdout) - run.started_at.timestamp()) * 1000 for run in runs]
            result["to_started_p50_p99_ms"] = [percentile(started, 50), percentile(started, 99)]
            result["started_to_running_p50_p99_ms"] = [percentile(isolation, 50), percentile(isolation, 99)]
        return result

    # -- the peers (bench/bare.py) -----------------------------------------------------------
    def peer_throughput(self, peer: str, n: int, meter: cpu.Meter | None = None) -> dict:
        run = self.peer_apps[peer].tasks["bare.run"]
        before = meter.start() if meter else None
        if meter:
            self.profile(peer)
        first = time.time()
        results = [run.apply_async(args=["echo hello"]) for _ in range(n)]
        outcomes = [r.get(timeout=max(300, n)) for r in results]
        if meter and before:
            time.sleep(SETTLE)
            self.cpu_detail[peer] = meter.finish(peer, before, n)
            self.profile(None)
        last = max(o["finished"] for o in outcomes)
        return {
            "jobs": n,
            "succeeded": sum(o["returncode"] == 0 for o in outcomes),
            "seconds": last - first,
            "per_second": n / (last - first),
        }

    def peer_latency(self, peer: str, n: int, rate: float, command: str | None = None) -> dict:
        """As hydra_latency: from apply_async to the task starting, or to the command's time."""
        run = self.peer_apps[peer].tasks["bare.run"]
        sent, results = [], []
        start = time.monotonic()
        for i in range(n):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            sent.append(time.time())
            results.append(run.apply_async(args=[command or "echo hello"]))
        outcomes = [r.get(timeout=300) for r in results]
        delays = [
            ((float(o["stdout"]) if command else o["started"]) - at) * 1000
            for at, o in zip(sent, outcomes, strict=True)
        ]
        return {
            "jobs": n,
            "rate": rate,
            "p50_ms": percentile(delays, 50),
            "p99_ms": percentile(delays, 99),
            "max_ms": max(delays),
        }

    def index_mongo_peer(self) -> None:
        """FerretDB: give the peer's collection the _id index Hydra's collections get
        (hydrastack.ferretdb.add_id_indexes), as a user following Hydra's notes would."""
        if self.stack.mongo_backend == "ferretdb":
            ferretdb.add_id_indexes(self.stack.ferretdb_sqlite_dir)

    def profile(self, system: str | None) -> None:
        """With --py-spy: profile ``system``'s processes until the next call (None: stop)."""
        if self.profiler is None:
            return
        self.profiler.stop()
        if system is None:
            return
        targets = {}
        for role, pids in self.meter.systems[system].pids().items():
            if role not in ("mongo", "redis"):
                targets.update({f"{system}-{role.replace(' ', '-')}-{pid}": pid for pid in pids})
        self.profiler.start(targets)

    # -- failover ------------------------------------------------------------------------------
    def failover(self, kills: int) -> dict:
        def submit(k: int) -> dict:
            body = self.body(f"bench-fo-{k}", "sleep 120", affinity={"os": ["linux"], "tags": ["failover"]})
            return self.api("POST", "/jobs/", json=body)

        def report(k: int, second, delay: float) -> None:
            say(
                f"  kill {k + 1}/{kills}: attempt {second.attempt} started on {second.worker_id} {delay:.2f} s after the kill"
            )

        delays = time_failovers(
            self.stack,
            failover_workers("fo", "failover"),
            kills,
            submit=submit,
            cancel=lambda run_id: self.api("POST", f"/runs/{run_id}/cancel"),
            report=report,
        )
        return {"kills": kills, "p50_s": percentile(delays, 50), "p99_s": percentile(delays, 99), "max_s": max(delays)}

    # -- run -------------------------------------------------------------------------------------
    def run(self) -> dict:
        args = self.args
        self.start()
        loads = {}
        say("warming up (50 jobs each) ...")
        self.hydra_throughput(50)
        for peer in self.peers:
            self.peer_throughput(peer, 50)
        if "mongo" in self.peers:
            self.index_mongo_peer()
        # Each burst starts with an idle window: every process's CPU over --idle-seconds of quiet.
        self.meter = meter = cpu.Meter(self.systems(), args.idle_seconds)
        say(f"throughput: {args.jobs} echo jobs through Hydra (after {args.idle_seconds:g} s idle) ...")
        loads["hydra_throughput"] = load()
        hydra_tp = self.hydra_throughput(args.jobs, meter)
        peers_tp = {}
        for peer in self.peers:
            say(f"throughput: {args.jobs} echo tasks through the {peer} peer (after {args.idle_seconds:g} s idle) ...")
            loads[f"{peer}_throughput"] = load()
            peers_tp[peer] = self.peer_throughput(peer, args.jobs, meter)
        rounds = []
        for k in range(args.latency_rounds):
            say(f"latency round {k + 1}: {args.latency_jobs} jobs at {args.rate}/s through Hydra, then bare Celery ...")
            loads[f"latency_{k + 1}"] = load()
            rounds.append(
                {
                    "hydra": self.hydra_latency(args.latency_jobs, args.rate),
                    "bare": self.peer_latency("bare", args.latency_jobs, args.rate),
                }
            )
        say(f"submit->command running: {args.command_jobs} jobs at {args.command_rate:g}/s, Hydra then bare Celery ...")
        loads["command_latency"] = load()
        running = {
            "hydra": self.hydra_latency(args.command_jobs, args.command_rate, CLOCK_COMMAND),
            "bare": self.peer_latency("bare", args.command_jobs, args.command_rate, CLOCK_COMMAND),
        }
        failover = None
        if not args.skip_failover:
            say(f"failover: {args.kills} kills ...")
            loads["failover"] = load()
            failover = self.failover(args.kills)
        loads["end"] = load()
        self.results = {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "store": self.stack.mongo_backend,
                "workers": f"{WORKERS} x concurrency {CONCURRENCY}",
            },
            "load": loads,
            "hydra_throughput": hydra_tp,
            "peer_throughput": peers_tp,
            "cpu_ms_per_job": {system: detail["ms_per_job"] for system, detail in self.cpu_detail.items()},
            "cpu_detail": {
                system: {**detail["detail"], "idle_window_s": meter.idle_seconds}
                for system, detail in self.cpu_detail.items()
            },
            "latency": rounds,
            "command_latency": running,
            "failover": failover,
        }
        return self.results


def say(text: str) -> None:
    print(f"bench: {text}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--latency-jobs", type=int, default=500)
    parser.add_argument("--latency-rounds", type=int, default=3)
    parser.add_argument("--command-jobs", type=int, default=100)
    parser.add_argument("--command-rate", type=float, default=5.0)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--py-spy", metavar="PATH", help="py-spy binary: profile the throughput bursts")
    parser.add_argument("--skip-mongo-peer", action="store_true")
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

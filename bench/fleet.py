"""``make bench-fleet``: a simulated fleet of 1,000 workers against one real controller.

Starts a private stack on free ports (Redis, the MongoDB server, one controller) and, in this
process, 1,000 lightweight heartbeat senders: Celery event dispatchers sending
``worker-heartbeat`` events every ``--freq`` seconds, each under its own worker name, as
``celery worker -E`` does - not 1,000 Celery processes. The workers' profiles (linux, two tags
each from a pool of eight, concurrency 4) are written into the registry before the
controller starts, which adopts them when it takes the lead (``Ticker.became_leader``),
as a standby does; nothing consumes their queues.

Then, for ``--seconds``:

* jobs are submitted at ``--rate`` per second through Hydra's own publish path
  (``run_command.apply_async``: validate, route with the affinity router, record in MongoDB,
  sign, send), and every routing decision (``AffinityRouter.place``) is timed;
* the controller's CPU time (user + system, from /proc) is read before and after, and divided
  by the heartbeats sent meanwhile; a first phase without submissions gives the heartbeat
  cost alone;
* ``--lost`` workers stop beating at once; the time from each one's last heartbeat until
  the controller marks it offline in the registry is the detection time (goal: <= 3
  heartbeat intervals).

Prints a table and writes it as JSON next to the stack's data.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import platform
import random
import shutil
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "deploy" / "local")]

from bench.measure import percentile  # noqa: E402
from hydrastack import Stack  # noqa: E402  (light: reads no settings)

TAG_POOL = ["gpu", "ssd", "big", "fast", "arm", "net", "disk", "mem"]


def say(text: str) -> None:
    print(f"bench-fleet: {text}", file=sys.stderr, flush=True)


def profiles(n: int):
    from hydra.model.affinity import WorkerProfile

    rng = random.Random(15)
    return [
        WorkerProfile(
            id=f"sim{i:04d}@fleet",
            os="linux",
            tags=frozenset(rng.sample(TAG_POOL, 2)),
            max_concurrency=4,
            shells=frozenset({"bash", "sh"}),
        )
        for i in range(n)
    ]


def seed(registry, fleet) -> None:
    """Write the profiles into the registry, as a controller would after asking each worker."""
    from hydra.broker.registry import WorkerRecord

    now = time.time()
    for profile in fleet:
        registry.put(WorkerRecord(profile=profile, status="online", seen_at=now, last_heartbeat=now))
        registry.set_load(profile.id, 0)


def beat(n: int, freq: float, senders: int, sent, last_beat, silenced, stop) -> None:
    """The heartbeat process: ``senders`` threads, each sending for its share of the fleet."""
    from hydra import app

    fleet = profiles(n)
    lock = threading.Lock()

    def send(indexes: list[int]) -> None:
        with app.connection_for_write() as conn:
            dispatchers = {
                i: app.events.Dispatcher(conn, hostname=fleet[i].id, enabled=True, groups=["worker"]) for i in indexes
            }
            period = freq / max(1, len(indexes))
            next_at = time.monotonic()
            for i in itertools.cycle(indexes):
                if stop.is_set():
                    break
                if not silenced[i]:
                    dispatchers[i].send("worker-heartbeat", freq=freq, active=0, processed=0)
                    last_beat[i] = time.time()
                    with lock:
                        sent.value += 1
                next_at += period
                delay = next_at - time.monotonic()
                if delay > 0:
                    stop.wait(delay)

    threads = [threading.Thread(target=send, args=(list(range(k, n, senders)),)) for k in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def submit(rate: float, threads: int, stop, results) -> None:
    """The submitting process: ``threads`` threads publishing jobs through Hydra's pipeline
    at ``rate`` per second in all; each routing decision inside it is timed (wall clock)."""
    from hydra import app, run_command

    router = app.pipeline.router
    decisions: list[float] = []
    place = router.place

    def timed_place(message):
        began = time.perf_counter()
        try:
            return place(message)
        finally:
            decisions.append((time.perf_counter() - began) * 1000)

    router.place = timed_place  # type: ignore[method-assign]
    submitted: list[float] = []
    errors: list[str] = []

    def loop(k: int) -> None:
        rng = random.Random(k)
        interval = threads / rate
        next_at = time.monotonic() + k * interval / threads
        while not stop.is_set():
            tags = rng.sample(TAG_POOL, rng.randint(0, 1))
            try:
                run_command.apply_async(
                    kwargs={"command": "true", "user": "rich", "affinity": {"os": ["linux"], "tags": tags}}
                )
                submitted.append(time.monotonic())
            except Exception as exc:  # noqa: BLE001 - counted and shown
                errors.append(f"{exc.__class__.__name__}: {exc}")
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                stop.wait(delay)
            else:
                next_at = time.monotonic()

    workers = [threading.Thread(target=loop, args=(k,)) for k in range(threads)]
    began = time.monotonic()
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    results.put({"decisions": decisions, "submitted": len(submitted), "seconds": time.monotonic() - began,
                 "errors": errors[:3], "error_count": len(errors)})  # fmt: skip


def sweep(admin_url: str, runs=((10, 0.0), (100, 0.0), (1000, 0.0), (1000, 0.02)), decisions: int = 300) -> list[dict]:
    """``AffinityRouter.place`` alone against registries of 10, 100 and 1,000 simulated
    workers (linux, 2 tags each, concurrency 4), ``decisions`` each, back to back, and then one every 20 ms as the probe of the full simulation calls it (a process
    idle between decisions wakes up to each: colder caches, the VM's wake-up): wall clock and
    this thread's CPU time per decision. Uses Redis database 1 (the fleet's registry is in
    database 0), as the operator (it empties it between runs)."""
    import redis

    from hydra.broker.registry import Registry
    from hydra.dispatch.router import AffinityRouter

    client = redis.Redis.from_url(admin_url.rsplit("/", 1)[0] + "/1", decode_responses=True)
    rows = []
    for size, spacing in runs:
        client.flushdb()
        registry = Registry(client)
        seed(registry, profiles(size))
        router = AffinityRouter(registry)
        rng = random.Random(size)
        wall, cpu = [], []
        for i in range(decisions + 50):
            message = {"user": "rich", "affinity": {"os": ["linux"], "tags": rng.sample(TAG_POOL, rng.randint(0, 1))}}
            began, began_cpu = time.perf_counter(), time.thread_time()
            placement = router.place(message)
            spent_cpu, spent = time.thread_time() - began_cpu, time.perf_counter() - began
            if i >= 50:  # the first decisions decode the registry and learn the requirements
                wall.append(spent * 1000)
                cpu.append(spent_cpu * 1000)
            if placement.worker is not None:
                registry.add_load(placement.worker.id, 1)
            if spacing:
                time.sleep(spacing)
        rows.append({"workers": size, "spacing": spacing, "groups": len(registry.roster().groups),
                     "wall_p50": percentile(wall, 50), "wall_p99": percentile(wall, 99),
                     "cpu_p50": percentile(cpu, 50), "cpu_p99": percentile(cpu, 99)})  # fmt: skip
    client.flushdb()
    client.close()
    return rows


class FleetBench:
    def __init__(self, args):
        self.args = args
        self.root = Path(tempfile.mkdtemp(prefix="hydra-bench-fleet-"))
        self.stack = Stack.ephemeral(self.root / "stack", mongo_db="hydra_bench_fleet")
        os.environ.update(self.stack.env_for_clients())
        self.results: dict = {}
        self.children: list[multiprocessing.Process] = []

    def controller_cpu(self) -> float:
        times = psutil.Process(self.stack.pid("controller")).cpu_times()
        return times.user + times.system

    def probe(self, registry, seconds: float, every: float = 0.02) -> tuple[list[float], list[float]]:
        """``AffinityRouter.place`` called alone in this process,
        at ``1/every`` decisions a second, with the fleet and the submissions going on: wall
        clock and this thread's CPU time per decision (ms)."""
        from hydra.dispatch.router import AffinityRouter

        router = AffinityRouter(registry)
        rng = random.Random(11)
        wall, cpu = [], []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            message = {"user": "rich", "affinity": {"os": ["linux"], "tags": rng.sample(TAG_POOL, rng.randint(0, 1))}}
            began, began_cpu = time.perf_counter(), time.thread_time()
            placement = router.place(message)
            cpu.append((time.thread_time() - began_cpu) * 1000)
            wall.append((time.perf_counter() - began) * 1000)
            assert placement.worker is not None
            time.sleep(every)
        return wall, cpu

    def lose(self, registry, fleet, lost: list[int], silenced, last_beat) -> dict:
        """``lost`` workers stop beating; how long until the controller marks each offline,
        from its last heartbeat; and how far the controller was behind those heartbeats."""
        say(f"{len(lost)} workers stop beating")
        for i in lost:
            silenced[i] = 1
        began = time.time()
        detected: dict[int, float] = {}
        while len(detected) < len(lost) and time.time() - began < self.args.freq * 10:
            for i in lost:
                if i not in detected:
                    record = registry.get(fleet[i].id)
                    if record is not None and record.status == "offline":
                        detected[i] = time.time()
            time.sleep(0.05)
        times = [detected[i] - last_beat[i] for i in lost if i in detected]
        # When the controller processed each one's last heartbeat (seen_at, its clock) against
        # when that heartbeat was sent: how far behind the event stream it was.
        lags = [r.seen_at - last_beat[i] for i in lost if (r := registry.get(fleet[i].id)) is not None]
        return {
            "lost": len(lost),
            "detected": len(times),
            "p50": percentile(times, 50),
            "max": max(times) if times else float("nan"),
            "lag_max": max(lags) if lags else float("nan"),
        }

    def run(self) -> dict:
        args = self.args
        stack = self.stack
        ctx = multiprocessing.get_context("fork")
        say(f"starting a private stack (Redis, MongoDB server) under {self.root} ...")
        stack.start_redis()
        stack.start_mongo()
        from hydra.broker.registry import Registry

        say("place() alone against 10, 100 and 1,000 simulated workers ...")
        self.results["sweep"] = sweep(stack.admin_broker_url)
        self.results["load_before"] = os.getloadavg()[0]
        registry = Registry()
        fleet = profiles(args.workers)
        say(f"writing {args.workers} worker profiles into the registry; starting the controller ...")
        seed(registry, fleet)
        stack.start_controller()
        deadline = time.monotonic() + 120
        while registry.controller_alive() is None:
            if time.monotonic() > deadline:
                raise SystemExit("bench-fleet: the controller never took the lead")
            time.sleep(0.2)

        sent = ctx.Value("q", 0)
        last_beat = ctx.Array("d", args.workers)
        chosen = random.Random(3).sample(range(args.workers), 2 * args.lost)
        lost_alone, lost_loaded = chosen[: args.lost], chosen[args.lost :]
        silenced = ctx.Array("b", args.workers)
        stop_beats, stop_submits = ctx.Event(), ctx.Event()
        beats = ctx.Process(
            target=beat, args=(args.workers, args.freq, args.senders, sent, last_beat, silenced, stop_beats)
        )
        beats.start()
        self.children.append(beats)
        say(f"{args.workers} workers beating every {args.freq:g} s; settling ...")
        time.sleep(args.freq * 3)

        # -- phase 1: heartbeats alone ---------------------------------------------------------
        say("phase 1: heartbeats alone")
        cpu0, sent0, t0 = self.controller_cpu(), sent.value, time.monotonic()
        alone, alone_cpu = self.probe(registry, args.seconds / 2)
        cpu1, sent1, t1 = self.controller_cpu(), sent.value, time.monotonic()
        self.results["heartbeats_per_s"] = (sent1 - sent0) / (t1 - t0)
        self.results["cpu_ms_per_heartbeat_alone"] = (cpu1 - cpu0) * 1000 / max(1, sent1 - sent0)
        self.results["controller_cpu_alone"] = (cpu1 - cpu0) / (t1 - t0)
        self.results["probe_alone_p50_ms"] = percentile(alone, 50)
        self.results["probe_alone_p99_ms"] = percentile(alone, 99)
        self.results["probe_alone_cpu_p50_ms"] = percentile(alone_cpu, 50)
        self.results["probe_alone_cpu_p99_ms"] = percentile(alone_cpu, 99)
        self.results["alone"] = self.lose(registry, fleet, lost_alone, silenced, last_beat)

        # -- phase 2: heartbeats and submissions -------------------------------------------------
        say(f"phase 2: heartbeats and {args.rate:g} submissions/s")
        results = ctx.Queue()
        submitter = ctx.Process(target=submit, args=(args.rate, args.threads, stop_submits, results))
        cpu2, sent2, t2 = self.controller_cpu(), sent.value, time.monotonic()
        submitter.start()
        self.children.append(submitter)
        loaded, loaded_cpu = self.probe(registry, args.seconds / 2)

        self.results["loaded"] = self.lose(registry, fleet, lost_loaded, silenced, last_beat)
        stop_submits.set()
        submitted = results.get(timeout=60)
        submitter.join(timeout=30)
        cpu3, sent3, t3 = self.controller_cpu(), sent.value, time.monotonic()
        stop_beats.set()
        beats.join(timeout=30)

        decisions = submitted["decisions"]
        self.results["cpu_ms_per_heartbeat_loaded"] = (cpu3 - cpu2) * 1000 / max(1, sent3 - sent2)
        self.results["controller_cpu_loaded"] = (cpu3 - cpu2) / (t3 - t2)
        self.results["submitted"] = submitted["submitted"]
        self.results["submit_rate"] = submitted["submitted"] / submitted["seconds"]
        self.results["submit_errors"] = submitted["error_count"]
        self.results["first_error"] = (submitted["errors"] or [None])[0]
        self.results["decisions"] = len(decisions)
        self.results["route_p50_ms"] = percentile(decisions, 50)
        self.results["route_p99_ms"] = percentile(decisions, 99)
        self.results["probes"] = len(alone) + len(loaded)
        self.results["probe_loaded_p50_ms"] = percentile(loaded, 50)
        self.results["probe_loaded_p99_ms"] = percentile(loaded, 99)
        self.results["probe_loaded_cpu_p50_ms"] = percentile(loaded_cpu, 50)
        self.results["probe_loaded_cpu_p99_ms"] = percentile(loaded_cpu, 99)
        silent = {fleet[i].id for i in chosen}
        self.results["false_offline"] = sum(
            1 for wid, r in registry.records().items() if r.status == "offline" and wid not in silent
        )
        self.results["freq"] = args.freq
        self.results["workers"] = args.workers
        self.results["rate"] = args.rate
        self.results["threads"] = args.threads
        self.results["load_after"] = os.getloadavg()[0]
        self.results["when"] = datetime.now(UTC).isoformat(timespec="seconds")
        self.results["cpus"] = os.cpu_count()
        self.results["store"] = stack.mongo_backend
        self.results["python"] = platform.python_version()
        return self.results

    def stop(self) -> None:
        for child in self.children:
            if child.is_alive():
                child.terminate()
                child.join(timeout=5)
        self.stack.down()


def table(r: dict) -> str:
    freq = r["freq"]
    rows = [
        (f"workers (simulated, heartbeat every {freq:.0f} s)", f"{r['workers']}", ""),
        ("heartbeats received by the controller (/s)", f"{r['heartbeats_per_s']:.0f}", ""),
        (
            f"submissions (/s, goal {r['rate']:.0f})",
            f"{r['submit_rate']:.1f}",
            f"{r['submitted']} sent, {r['submit_errors']} errors",
        ),
        (
            "router decision place() alone, heartbeats only: p50 / p99 (ms)",
            f"{r['probe_alone_p50_ms']:.3f} / {r['probe_alone_p99_ms']:.3f}",
            "goal p99 <= 1 ms",
        ),
        (
            "router decision place() alone, with submissions: p50 / p99 (ms)",
            f"{r['probe_loaded_p50_ms']:.3f} / {r['probe_loaded_p99_ms']:.3f}",
            f"{r['probes']} decisions in all",
        ),
        (
            "  its CPU time, heartbeats only / with submissions: p50 / p99 (ms)",
            f"{r['probe_alone_cpu_p50_ms']:.3f} / {r['probe_alone_cpu_p99_ms']:.3f}, "
            f"{r['probe_loaded_cpu_p50_ms']:.3f} / {r['probe_loaded_cpu_p99_ms']:.3f}",
            "wall minus CPU: waiting for a core or Redis",
        ),
        (
            f"router decision inside the {r['threads']} submitting threads: p50 / p99 (ms)",
            f"{r['route_p50_ms']:.3f} / {r['route_p99_ms']:.3f}",
            f"{r['decisions']} decisions",
        ),
        ("controller CPU per heartbeat, heartbeats only (ms)", f"{r['cpu_ms_per_heartbeat_alone']:.3f}", ""),
        ("controller CPU per heartbeat, with submissions (ms)", f"{r['cpu_ms_per_heartbeat_loaded']:.3f}", ""),
        (
            "controller CPU use, heartbeats only / with submissions (cores)",
            f"{r['controller_cpu_alone']:.2f} / {r['controller_cpu_loaded']:.2f}",
            "",
        ),
    ]
    for phase, label in (("alone", "heartbeats only"), ("loaded", "with submissions")):
        d = r[phase]
        rows += [
            (
                f"lost-worker detection p50 / max, {label} (s)",
                f"{d['p50']:.2f} / {d['max']:.2f}",
                f"{d['detected']}/{d['lost']} detected; controller lag <= {d['lag_max']:.2f} s",
            ),
            (
                f"lost-worker detection max, {label} (heartbeat intervals)",
                f"{d['max'] / freq:.2f}",
                "goal <= 3",
            ),
        ]
    rows.append(("workers marked offline while still beating", f"{r['false_offline']}", "should be 0"))
    width = [max(len(row[i]) for row in rows) for i in range(3)]
    head = ("metric", "value", "note")
    width = [max(w, len(h)) for w, h in zip(width, head, strict=True)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(head, width, strict=True)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in width) + "|")
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(row, width, strict=True)) + " |" for row in rows]
    lines.append("")
    lines.append(
        "| workers | decisions      | load groups | place() wall p50 / p99 (ms) | place() CPU p50 / p99 (ms) |"
    )
    lines.append(
        "|---------|----------------|-------------|-----------------------------|----------------------------|"
    )
    for row in r["sweep"]:
        spacing = f"every {row['spacing'] * 1000:.0f} ms" if row["spacing"] else "back to back"
        lines.append(
            f"| {row['workers']:<7} | {spacing:<14} | {row['groups']:<11} | {row['wall_p50']:.3f} / {row['wall_p99']:.3f}"
            f"{'':<13} | {row['cpu_p50']:.3f} / {row['cpu_p99']:.3f}{'':<12} |"
        )
    lines.append("")
    lines.append(
        f"{r['when']}; {r['cpus']} CPUs; load average {r['load_before']:.1f} before the fleet ran, "
        f"{r['load_after']:.1f} after; store: {r['store']}; Python {r['python']}"
    )
    if r.get("first_error"):
        lines.append(f"first submission error: {r['first_error']}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=1000)
    parser.add_argument("--freq", type=float, default=2.0, help="heartbeat interval (s), as Celery's default")
    parser.add_argument("--rate", type=float, default=100.0, help="job submissions per second")
    parser.add_argument("--seconds", type=float, default=40.0, help="length of the two phases together")
    parser.add_argument("--lost", type=int, default=10, help="workers that stop beating")
    parser.add_argument("--senders", type=int, default=2, help="threads sending heartbeats")
    parser.add_argument("--threads", type=int, default=4, help="threads submitting jobs")
    parser.add_argument("--keep", action="store_true", help="keep the stack's data directory")
    args = parser.parse_args()
    bench = FleetBench(args)
    try:
        results = bench.run()
    finally:
        bench.stop()
    text = table(results)
    print(text)
    (bench.root / "fleet.json").write_text(json.dumps(results, indent=1))
    if not args.keep:
        shutil.rmtree(bench.root, ignore_errors=True)


if __name__ == "__main__":
    main()

"""The MongoDB server's CPU per job on FerretDB, for Hydra's operations, A against B.

Starts one private FerretDB per variant through hydrastack (``Stack.start_mongo``: the
stack's own command line, SCRAM user, Hydra's schema and the ``_id`` expression indexes),
then replays the MongoDB operations of one ``echo`` job (docs/performance.md, "The job
path") from ``--threads`` threads: the API's three inserts (job, audit event, run), the
worker's ``_id`` read of the run with a projection, the start fence, the end fence read, the
flow record read, the end fence, the run's and the job's ``$set`` by ``_id``. Rounds of
``--jobs`` jobs alternate between the variants, so a change of the machine's load falls on
both alike; each round prints the server's CPU per job (utime + stime from /proc) and the
client's (this process), and the end prints each variant's median and range.

A variant is ``NAME`` or ``NAME:SPEC``; SPEC is ``;``-separated items, each one of

* ``env:KEY=VALUE``: FerretDB's environment, over ``hydrastack.ferretdb.environment()``'s
  (e.g. ``env:GOGC=200``; ``env:GOGC=`` removes the variable: Go's default);
* ``flag:--x=y``: an argument added to FerretDB's command line;
* ``pragma:name(value)``: a SQLite pragma added to ``--sqlite-url``;
* ``client:key=value``: this variant's client is ``pymongo.MongoClient(url, tz_aware=True,
  key=value, ...)`` (an int, ``true``/``false`` or a string) instead of
  ``hydra.store.mongo.get_client()``, which the other variants use;
* ``base``: FerretDB as hydrastack starts it (the default: nothing changed).

Example: the stack's FerretDB against FerretDB without its Go runtime settings (as before
they were kept), 6 rounds of 300 jobs each::

    .venv/bin/python bench/ferretdb_ops.py --jobs 300 --rounds 6 stack 'go-defaults:env:GOMAXPROCS=;env:GOGC='
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "deploy" / "local"))
sys.path.insert(0, str(REPO))


@dataclass
class Variant:
    name: str
    env: dict[str, str] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    pragmas: list[str] = field(default_factory=list)
    client: dict[str, object] = field(default_factory=dict)
    results: list[tuple[float, float]] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str) -> Variant:
        name, _, spec = text.partition(":")
        variant = cls(name)
        for item in filter(None, (part.strip() for part in spec.split(";"))):
            kind, _, value = item.partition(":")
            if kind == "env":
                key, _, val = value.partition("=")
                variant.env[key] = val
            elif kind == "flag":
                variant.flags.append(value)
            elif kind == "pragma":
                variant.pragmas.append(value)
            elif kind == "client":
                key, _, val = value.partition("=")
                variant.client[key] = _option(val)
            elif kind != "base":
                raise SystemExit(f"unknown item {item!r} in variant {text!r}")
        return variant


def _option(text: str) -> object:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return int(text)
    except ValueError:
        return text


def cpu_seconds(pid: int | str = "self") -> float:
    """utime + stime of a process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def job_document(job_id: str, run_id: str) -> dict:
    now = datetime.now(UTC)
    return {
        "_id": job_id,
        "name": "bench",
        "namespace": "default",
        "user": "admin",
        "command": "echo hello",
        "shell": "sh",
        "args": [],
        "env": {},
        "affinity": {"os": ["linux"], "tags": [], "hostnames": []},
        "timeout": 3600,
        "retries": 0,
        "retry_delay": 0,
        "priority": 5,
        "status": "queued",
        "last_run_id": run_id,
        "schedule": None,
        "deleted_at": None,
        "created_at": now,
        "updated_at": now,
        "labels": {"team": "bench"},
        "description": "a job the size of an echo job",
        "max_output_bytes": 1048576,
        "resources": {"cpu": None, "memory": None},
    }


def run_document(job_id: str, run_id: str) -> dict:
    now = datetime.now(UTC)
    return {
        "_id": run_id,
        "job_id": job_id,
        "namespace": "default",
        "user": "admin",
        "attempt": 1,
        "status": "queued",
        "worker_id": "w1@host",
        "queued_at": now,
        "digest": uuid.uuid4().hex + uuid.uuid4().hex,
        "trigger": {"kind": "api", "by": "admin"},
        "exit_code": None,
        "started_at": None,
        "ended_at": None,
    }


def one_job(db) -> None:
    """The MongoDB operations of one successful echo job, in the order Hydra makes them."""
    from hydra import names

    job_id, run_id = uuid.uuid4().hex, uuid.uuid4().hex
    now = datetime.now(UTC)
    db[names.JOB_DEFINITIONS].insert_one(job_document(job_id, run_id))
    db[names.AUDIT_EVENTS].insert_one(
        {"_id": uuid.uuid4().hex, "at": now, "actor": "admin", "namespace": "default",
         "action": "job.submit", "target": job_id, "detail": {"name": "bench"}}
    )  # fmt: skip
    db[names.JOB_RUNS].insert_one(run_document(job_id, run_id))
    db[names.JOB_RUNS].find_one({"_id": run_id}, {"digest": 1})
    fences = db[names.RUN_FENCES]
    fences.insert_one({"_id": f"{run_id}:start", "worker_id": "w1@host", "at": now})
    fences.find_one({"_id": f"{run_id}:end"})
    db[names.RUN_FLOWS].find_one({"_id": run_id}, {"upstream": 1, "next": 1})
    fences.insert_one({"_id": f"{run_id}:end", "status": "succeeded", "at": now})
    ended = {"status": "succeeded", "exit_code": 0, "ended_at": now, "started_at": now}
    db[names.JOB_RUNS].update_one({"_id": run_id}, {"$set": ended})
    db[names.JOB_DEFINITIONS].update_one({"_id": job_id}, {"$set": {"status": "succeeded", "updated_at": now}})


class Server:
    def __init__(self, variant: Variant, root: Path):
        from hydrastack import Stack, ferretdb

        self.variant = variant
        self.stack = Stack.ephemeral(root / variant.name, mongo_db="hydra_bench_ops")
        original = ferretdb.command

        def command(*args, **kw):
            argv = original(*args, **kw)
            if variant.pragmas:
                argv = [
                    a + "".join(f"&_pragma={p}" for p in variant.pragmas) if a.startswith("--sqlite-url=") else a
                    for a in argv
                ]
            return argv + variant.flags

        original_env = ferretdb.environment

        def environment(*args, **kw):
            return {**original_env(*args, **kw), **{k: v or None for k, v in variant.env.items()}}

        ferretdb.command, ferretdb.environment = command, environment
        try:
            self.stack.start_mongo()
        finally:
            ferretdb.command, ferretdb.environment = original, original_env
        self.pid = self.stack.pid("mongo")
        with open(f"/proc/{self.pid}/cmdline", "rb") as fh:
            argv = fh.read().decode().split("\0")
        with open(f"/proc/{self.pid}/environ", "rb") as fh:
            go_env = [
                v for v in fh.read().decode().split("\0") if v.startswith(("GOGC=", "GOMAXPROCS=", "GOMEMLIMIT="))
            ]
        print(f"{variant.name}: pid {self.pid}: {' '.join(argv[1:])} {' '.join(go_env)}", flush=True)

    def client(self):
        import pymongo

        from hydra.store import mongo

        os.environ["HYDRA_MONGO_URL"] = self.stack.mongo_url
        os.environ["HYDRA_MONGO_DB"] = self.stack.mongo_db
        from hydra.settings import get_settings

        get_settings.cache_clear()
        if not self.variant.client:
            mongo._clients.clear()
            mongo._databases.clear()
            return mongo.get_client()
        return pymongo.MongoClient(self.stack.mongo_url, tz_aware=True, **self.variant.client)


def burst(db, jobs: int, threads: int) -> None:
    left = iter(range(jobs))
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                if next(left, None) is None:
                    return
            one_job(db)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variants", nargs="+", help="NAME[:SPEC] (see above)")
    parser.add_argument("--jobs", type=int, default=300, help="jobs per round")
    parser.add_argument("--rounds", type=int, default=4, help="rounds per variant")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=50, help="jobs before the first round")
    parser.add_argument("--pause", type=float, default=0, help="seconds to wait before starting (e.g. to attach perf)")
    args = parser.parse_args()

    variants = [Variant.parse(text) for text in args.variants]
    root = Path(tempfile.mkdtemp(prefix="hydra-ferretdb-ops-"))
    servers = []
    try:
        for variant in variants:
            servers.append(Server(variant, root))
        clients = [server.client() for server in servers]
        databases = [client[server.stack.mongo_db] for client, server in zip(clients, servers, strict=True)]
        for db in databases:
            burst(db, args.warmup, args.threads)
        if args.pause:
            print(f"pausing {args.pause}s; pids: {[s.pid for s in servers]}", flush=True)
            time.sleep(args.pause)
        for rnd in range(args.rounds):
            order = list(zip(servers, databases, strict=True))
            if rnd % 2:
                order.reverse()
            for server, db in order:
                s0, c0, t0 = cpu_seconds(server.pid), cpu_seconds(), time.monotonic()
                burst(db, args.jobs, args.threads)
                s1, c1, t1 = cpu_seconds(server.pid), cpu_seconds(), time.monotonic()
                per_job = ((s1 - s0) * 1000 / args.jobs, (c1 - c0) * 1000 / args.jobs)
                server.variant.results.append(per_job)
                load = os.getloadavg()[0]
                print(
                    f"round {rnd + 1} {server.variant.name:>12}: server {per_job[0]:.2f} ms/job, "
                    f"client {per_job[1]:.2f} ms/job, {args.jobs / (t1 - t0):.0f} jobs/s, load {load:.1f}",
                    flush=True,
                )
        print()
        for server in servers:
            srv = [r[0] for r in server.variant.results]
            cli = [r[1] for r in server.variant.results]
            with open(f"/proc/{server.pid}/status") as fh:
                memory = {k: v.strip() for k, _, v in (line.partition(":") for line in fh) if k in ("VmHWM", "VmRSS")}
            print(
                f"{server.variant.name:>12}: server median {statistics.median(srv):.2f} ms/job "
                f"({min(srv):.2f}-{max(srv):.2f}), client median {statistics.median(cli):.2f} "
                f"({min(cli):.2f}-{max(cli):.2f}), server RSS {memory.get('VmRSS')} (peak {memory.get('VmHWM')})"
            )
    finally:
        for client in locals().get("clients", []):
            client.close()
        for server in servers:
            server.stack.down()
        import shutil

        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

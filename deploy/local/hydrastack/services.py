"""Hydra's services on one machine: ``Stack`` starts, checks and stops them under a root.

What runs (each detached in its own session, so stopping one stops its process group):

========== ============================================================ =================
name       command                                                      healthy when
========== ============================================================ =================
redis      ``redis-server --port P --appendonly yes ...``               PING answers
mongo      ``mongod`` if on PATH, else FerretDB (SQLite); nothing when  ``ping`` answers
           ``HYDRA_MONGO_URL`` is set
controller ``python -m hydra controller``                               Redis key
                                                                        ``hydra:controller:alive``
worker-X   ``celery -A hydra worker -Q ... -n X@%h -c N -E``             log says "X@host ready."
api        ``gunicorn ... "api:create_app()"``                          ``GET /health`` is 200
grpc       ``python -m hydra.rpc``                                      gRPC health: SERVING
flower     ``celery -A hydra flower``                                   ``GET /`` below 500
========== ============================================================ =================

Layout under the root (default ``<repo>/.hydra``): ``run/`` and ``logs/`` as kept by
``hydrastack.processes.Supervisor`` (which ``Stack`` extends), ``data/`` (kept by ``down``),
``stack.json`` (the ports, MongoDB and database last started, for ``Stack.from_root``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from collections.abc import Sequence
from pathlib import Path

from hydra import names
from hydrastack import ferretdb
from hydrastack.commands import Commands
from hydrastack.config import (
    DEFAULT_PORTS,
    DEFAULT_WORKERS,
    MONGO_USER,
    PORT_ENV,
    REDIS_USER,
    REPO,
    START_TIMEOUT,
    WORKER_PREFIX,
    WorkerSpec,
    _env_port,
    venv_bin,
)
from hydrastack.credentials import Credentials
from hydrastack.health import HealthChecks
from hydrastack.identity import config_digest, write_atomic
from hydrastack.ports import pick_free_ports, port_is_free, port_owner
from hydrastack.processes import Proc, StackError, Supervisor

__all__ = [
    "DEFAULT_PORTS",
    "DEFAULT_WORKERS",
    "MONGO_USER",
    "PORT_ENV",
    "REDIS_USER",
    "REPO",
    "START_TIMEOUT",
    "WORKER_PREFIX",
    "Stack",
    "WorkerSpec",
    "venv_bin",
]

#: Stop order groups used by ``down`` (reverse of the start order; a group stops in parallel).
_DOWN_GROUPS = (("flower", "api", "grpc"), ("<workers>",), ("controller",), ("mongo",), ("redis",))

# --- the stack ------------------------------------------------------------------------------


class Stack(Credentials, Commands, HealthChecks, Supervisor):
    """A Hydra stack rooted at ``root`` (pidfiles, logs and data live there).

    The process handling (spawn, pid, is_running, stop, kill, log_tail, wait_healthy) is
    ``Supervisor``'s; addresses and secrets are ``Credentials``' (hydrastack.credentials),
    command lines ``Commands``' (hydrastack.commands), health checks and ``status``
    ``HealthChecks``' (hydrastack.health). This adds starting each service and the order of
    ``up`` and ``down``.
    """

    spawn_hint = " (run `make install`?)"

    def __init__(
        self,
        root: Path,
        *,
        redis_port: int | None = None,
        mongo_port: int | None = None,
        api_port: int | None = None,
        flower_port: int | None = None,
        grpc_port: int | None = None,
        mongo_url: str | None = None,
        mongo_db: str = "hydra",
        env: dict[str, str] | None = None,
        repo: Path = REPO,
        host: str = "127.0.0.1",
    ):
        super().__init__(root)
        #: The address Redis and the MongoDB server listen on and Hydra's processes reach them
        #: at: loopback, or (make chaos) an address on a bridge the test made, so that workers
        #: in network namespaces reach them too. The API and Flower stay on loopback.
        self.host = host
        self.repo = Path(repo).absolute()
        self.redis_port = redis_port if redis_port is not None else _env_port("redis")
        self.mongo_port = mongo_port if mongo_port is not None else _env_port("mongo")
        self.api_port = api_port if api_port is not None else _env_port("api")
        self.flower_port = flower_port if flower_port is not None else _env_port("flower")
        self.grpc_port = grpc_port if grpc_port is not None else _env_port("grpc")
        self._external_mongo_url = mongo_url or os.environ.get("HYDRA_MONGO_URL") or None
        self.mongo_db = mongo_db
        self.env = dict(env or {})
        self.bin = venv_bin(self.repo)
        self._redis_client = None
        self._mongo_client = None

    @classmethod
    def ephemeral(cls, root: Path, **kw) -> Stack:
        """A stack on free ports (those not given in ``kw``), e.g. one per test session."""
        wanted = [p for p in ("redis_port", "mongo_port", "api_port", "flower_port", "grpc_port") if kw.get(p) is None]
        for key, port in zip(wanted, pick_free_ports(len(wanted)), strict=True):
            kw[key] = port
        return cls(root, **kw)

    @classmethod
    def from_root(cls, root: Path, **kw) -> Stack:
        """The stack last started under ``root`` (its ports, MongoDB, database), from
        ``<root>/stack.json``; ``kw`` overrides. Without that file, like ``Stack(root, **kw)``."""
        try:
            saved = json.loads((Path(root) / "stack.json").read_text())
        except (OSError, ValueError):
            saved = {}
        allowed = ("redis_port", "mongo_port", "api_port", "flower_port", "grpc_port", "mongo_url", "mongo_db")
        args = {k: saved[k] for k in allowed if saved.get(k) is not None}
        args.update(kw)
        return cls(root, **args)

    def _save_config(self) -> None:
        config = {
            "redis_port": self.redis_port,
            "mongo_port": self.mongo_port,
            "api_port": self.api_port,
            "flower_port": self.flower_port,
            "grpc_port": self.grpc_port,
            "mongo_url": self._external_mongo_url,
            "mongo_db": self.mongo_db,
            "repo": str(self.repo),
        }
        write_atomic(self.root / "stack.json", json.dumps(config, indent=1) + "\n")

    def __repr__(self) -> str:
        return f"Stack(root={str(self.root)!r}, redis={self.redis_port}, mongo={self.mongo_url!r}, api={self.api_port})"

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc) -> None:
        self.down()

    # --- addresses -----------------------------------------------------------------------

    # --- starting ------------------------------------------------------------------------

    def spawn(
        self, name: str, argv: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path | None = None, **kw
    ) -> Proc:
        """:meth:`Supervisor.spawn`, in the repo by default, with ``process_env(env)`` added to
        the environment. No checks: see ``_ensure`` for "leave a running one alone"."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._save_config()
        full = self.process_env(env, publisher=self.publishes(name))
        return super().spawn(name, argv, env=full, cwd=cwd or self.repo, **kw)

    def _check_port(self, name: str, port: int) -> None:
        if port_is_free(port):
            return
        owner = port_owner(port)
        service = name if name in PORT_ENV else None
        hint = f" or choose another port with {PORT_ENV[service]}=<port>" if service else ""
        raise StackError(
            f"cannot start {name}: port {port} on 127.0.0.1 is already in use"
            + (f" by {owner}" if owner else " (by a process this stack did not start)")
            + f". Stop that process{hint}.",
            name,
        )

    def _ensure(
        self,
        name: str,
        argv: list[str],
        *,
        port: int | None = None,
        env: dict[str, str] | None = None,
        meta: dict | None = None,
        hydra_process: bool = True,
    ) -> Proc:
        """Start ``name`` unless this root's ``name`` already runs with the same configuration
        (command line, cwd and, for Hydra's own processes, the environment the stack sets)."""
        config = config_digest(
            argv, self.process_env(env, publisher=self.publishes(name)) if hydra_process else {}, self.repo
        )
        live = self._live(name)
        if live is not None:
            old = self._meta(name) or {}
            if old.get("config") == config:
                self._say(f"{name}: already running (pid {live.pid})")
                return Proc(name, live.pid, old.get("argv", argv), self.log_path(name), port, reused=True)
            self._say(f"{name}: configuration changed, restarting (pid {live.pid})")
            self.stop(name)
        else:
            self._clear(name)  # stale or absent
        if port is not None:
            self._check_port(name, port)
        proc = self.spawn(name, argv, env=env, port=port, meta={**(meta or {}), "config": config})
        self._say(f"{name}: started (pid {proc.pid}{f', port {port}' if port else ''})")
        return proc

    def start_redis(self, wait: bool = True) -> Proc:
        (self.data_dir / "redis").mkdir(parents=True, exist_ok=True)
        if not shutil.which("redis-server"):
            raise StackError("redis-server not found on PATH: run `make install`", "redis")
        self.write_redis_acl()
        proc = self._ensure("redis", self.redis_command(), port=self.redis_port, hydra_process=False)
        if wait:
            self.wait_healthy(["redis"], START_TIMEOUT["redis"])
        return proc

    def start_mongo(self, wait: bool = True) -> Proc | None:
        """Start mongod or FerretDB (nothing for an external MongoDB); with ``wait``, also
        create the schema (and FerretDB's ``_id`` indexes)."""
        argv = self.mongo_command()
        proc = None
        if argv is not None:
            if self.mongo_backend == "mongod":
                (self.data_dir / "mongo").mkdir(parents=True, exist_ok=True)
                env = {}
            else:
                self.ferretdb_sqlite_dir.mkdir(parents=True, exist_ok=True)
                (self.data_dir / "ferretdb-state").mkdir(parents=True, exist_ok=True)
                env = ferretdb.environment(self.mongo_password)
            proc = self._ensure("mongo", argv, port=self.mongo_port, hydra_process=False, env=env)
        if wait:
            self.wait_healthy(["mongo"], START_TIMEOUT["mongo"])
            self.ensure_mongod_user()
            self.ensure_schema()
            self.bootstrap_token()
        return proc

    def ensure_mongod_user(self) -> None:
        """With mongod (which runs with --auth): create the user ``hydra`` through the localhost
        exception the first time (FerretDB creates its user itself from --setup-username)."""
        if self.mongo_backend != "mongod":
            return
        import pymongo

        client = pymongo.MongoClient(f"mongodb://{self.host}:{self.mongo_port}/", serverSelectionTimeoutMS=15000)
        try:
            if not client.admin.command("usersInfo", MONGO_USER)["users"]:
                client.admin.command(
                    "createUser",
                    MONGO_USER,
                    pwd=self.mongo_password,
                    roles=[{"role": "readWrite", "db": self.mongo_db}, {"role": "dbAdmin", "db": self.mongo_db}],
                )
        finally:
            client.close()

    def ensure_schema(self) -> int:
        """Hydra's collections and indexes (idempotent); with FerretDB also the ``_id``
        expression indexes (see hydrastack.ferretdb). Returns the number of those created.

        Call again after dropping collections on FerretDB.
        """
        import pymongo

        from hydra.store.schema import ensure_schema

        client = pymongo.MongoClient(self.mongo_url, serverSelectionTimeoutMS=15000, tz_aware=True)
        try:
            ensure_schema(client[self.mongo_db])
        finally:
            client.close()
        created = 0
        if self.mongo_backend == "ferretdb":
            created = ferretdb.add_id_indexes(self.ferretdb_sqlite_dir)
            if created:
                self._say(f"mongo: added {created} FerretDB _id index(es)")
        return created

    def bootstrap_token(self) -> bool:
        """The admin token in ``admin_token_path`` (made unless a working one is there);
        True when it was made now."""
        import pymongo

        from hydra.auth.tokens import bootstrap
        from hydra.store.tokens import TokenStore

        client = pymongo.MongoClient(self.mongo_url, serverSelectionTimeoutMS=15000, tz_aware=True)
        try:
            _token, made = bootstrap(TokenStore(client[self.mongo_db]), self.admin_token_path)
        finally:
            client.close()
        if made:
            self._say(f"auth: made the admin token ({self.admin_token_path})")
        return made

    def start_controller(self, wait: bool = True) -> Proc:
        """Start the controller; with ``wait``, until it has set its alive key in Redis."""
        proc = self._ensure("controller", self.controller_command())
        if not proc.reused:
            # A controller we just replaced (killed, crashed) leaves its alive key behind for
            # a few seconds; drop it so "healthy" means the new one ticks (it re-sets the key
            # every tick, so dropping it late costs at most one tick).
            try:
                self._redis().delete(names.CONTROLLER_ALIVE_KEY)
            except Exception:  # noqa: BLE001 - Redis not up: nothing stale to drop
                pass
        if wait:
            self.wait_healthy(["controller"], START_TIMEOUT["controller"])
        return proc

    def start_worker(self, spec: WorkerSpec, wait: bool = True) -> Proc:
        """Start a Celery worker; with ``wait``, until its log says "<node> ready."."""
        proc = self._ensure(
            spec.process_name,
            self.worker_command(spec),
            env=spec.env,
            meta={"node": spec.node, "queues": spec.queues, "concurrency": spec.concurrency},
        )
        if wait:
            self.wait_healthy([spec.process_name], START_TIMEOUT["worker"])
        return proc

    def start_api(self, wait: bool = True) -> Proc:
        """Start gunicorn; with ``wait``, until it answers HTTP (``up`` waits for 200)."""
        proc = self._ensure(
            "api", self.api_command(), port=self.api_port, env={"HYDRA_METRICS_TOKEN": self.metrics_token}
        )
        if wait:
            self.wait_healthy(["api"], START_TIMEOUT["api"], level="started")
        return proc

    def start_grpc(self, wait: bool = True) -> Proc:
        """Start the gRPC server; with ``wait``, until its health service answers."""
        proc = self._ensure(
            "grpc", self.grpc_command(), port=self.grpc_port, env={"HYDRA_GRPC_BIND": self.grpc_address}
        )
        if wait:
            self.wait_healthy(["grpc"], START_TIMEOUT["grpc"], level="started")
        return proc

    def start_flower(self, wait: bool = True) -> Proc:
        # Flower reads FLOWER_BASIC_AUTH itself; an env var keeps the password out of `ps`.
        proc = self._ensure(
            "flower", self.flower_command(), port=self.flower_port, env={"FLOWER_BASIC_AUTH": self.flower_auth}
        )
        if wait:
            self.wait_healthy(["flower"], START_TIMEOUT["flower"])
        return proc

    # --- the whole stack -----------------------------------------------------------------

    def up(self, workers: Sequence[WorkerSpec] = DEFAULT_WORKERS, flower: bool = True, wait: float = 90) -> None:
        """Start what is not running (redis, mongo + schema, controller, workers, api, flower)
        and wait until all are healthy. Idempotent."""
        deadline = time.monotonic() + wait

        def left() -> float:
            return max(1.0, deadline - time.monotonic())

        # Fail before starting anything if a port we need is held by a stranger.
        ports = {"redis": self.redis_port, "api": self.api_port, "grpc": self.grpc_port}
        if self.mongo_backend != "external":
            ports["mongo"] = self.mongo_port
        if flower:
            ports["flower"] = self.flower_port
        for name, port in ports.items():
            if not self.is_running(name):
                self._check_port(name, port)

        self.start_redis(wait=False)
        self.wait_healthy(["redis"], min(left(), START_TIMEOUT["redis"]))
        self.start_mongo(wait=False)
        self.wait_healthy(["mongo"], min(left(), START_TIMEOUT["mongo"]))
        self.ensure_schema()
        self.bootstrap_token()
        started = ["controller"]
        self.start_controller(wait=False)
        for spec in workers:
            self.start_worker(spec, wait=False)
            started.append(spec.process_name)
        self.start_api(wait=False)
        started.append("api")
        self.start_grpc(wait=False)
        started.append("grpc")
        if flower:
            self.start_flower(wait=False)
            started.append("flower")
        self.wait_healthy(started, left())

    def _stop_many(self, stop_names: Sequence[str], sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        if "mongo" in stop_names and self._mongo_client is not None:
            self._mongo_client.close()  # FerretDB waits for open connections at shutdown
            self._mongo_client = None
        super()._stop_many(stop_names, sig, timeout)

    def down(self) -> None:
        """Stop exactly what this root's pidfiles name (reverse start order); data is kept."""
        present = self.names()
        workers = [n for n in present if n.startswith(WORKER_PREFIX)]
        known = {n for group in _DOWN_GROUPS for n in group}
        others = [n for n in present if n not in known and n not in workers]
        for group in _DOWN_GROUPS:
            batch = workers if group == ("<workers>",) else [n for n in group if n in present]
            if batch:
                self._stop_many(batch)
        if others:
            self._stop_many(others)
        self.close()

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
import re
import secrets
import shutil
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hydra import names
from hydrastack import ferretdb
from hydrastack.ports import pick_free_ports, port_is_free, port_owner
from hydrastack.processes import Health, Proc, StackError, Supervisor, _digest, _write_atomic

#: The repository root (this file is deploy/local/hydrastack/services.py).
REPO = Path(__file__).resolve().parents[3]

#: Default ports and the environment variables that override them.
DEFAULT_PORTS = {"redis": 6379, "mongo": 27017, "api": 8000, "flower": 5555, "grpc": 50051}
PORT_ENV = {
    "redis": "HYDRA_REDIS_PORT",
    "mongo": "HYDRA_MONGO_PORT",
    "api": "HYDRA_API_PORT",
    "flower": "HYDRA_FLOWER_PORT",
    "grpc": "HYDRA_GRPC_PORT",
}
WORKER_PREFIX = "worker-"
#: The users Hydra's processes are in Redis and MongoDB.
REDIS_USER = "hydra"
MONGO_USER = "hydra"
#: Stop order groups used by ``down`` (reverse of the start order; a group stops in parallel).
_DOWN_GROUPS = (("flower", "api", "grpc"), ("<workers>",), ("controller",), ("mongo",), ("redis",))

#: Seconds each start_* waits by default when asked to wait.
START_TIMEOUT = {
    "redis": 30.0,
    "mongo": 60.0,
    "controller": 60.0,
    "worker": 60.0,
    "api": 60.0,
    "flower": 60.0,
    "grpc": 60.0,
}


@dataclass
class WorkerSpec:
    """One Celery worker of the stack (process name ``worker-<name>``)."""

    name: str  # Celery node name prefix; the node is f"{name}@{socket.gethostname()}"
    queues: str  # "-Q" value
    concurrency: int = 2
    env: dict[str, str] = field(default_factory=dict)
    extra_args: list[str] = field(default_factory=list)

    @property
    def node(self) -> str:
        return f"{self.name}@{socket.gethostname()}"

    @property
    def process_name(self) -> str:
        return WORKER_PREFIX + self.name


#: What ``make up`` starts.
DEFAULT_WORKERS: tuple[WorkerSpec, ...] = (
    WorkerSpec("gpu1", "os.linux,tag.gpu", 2),
    WorkerSpec("cpu1", "os.linux", 2),
)


def venv_bin(repo: Path = REPO) -> Path:
    """The bin directory whose executables the stack runs (this venv, else ``repo/.venv``)."""
    if sys.prefix != sys.base_prefix:
        return Path(sys.executable).parent
    return Path(repo) / ".venv" / "bin"


def _env_port(service: str) -> int:
    raw = os.environ.get(PORT_ENV[service])
    if raw in (None, ""):
        return DEFAULT_PORTS[service]
    try:
        return int(raw)
    except ValueError:
        raise StackError(f"{PORT_ENV[service]} must be a port number, got {raw!r}") from None


# --- the stack ------------------------------------------------------------------------------


class Stack(Supervisor):
    """A Hydra stack rooted at ``root`` (pidfiles, logs and data live there).

    The process handling (spawn, pid, is_running, stop, kill, log_tail, wait_healthy) is
    ``Supervisor``'s; this adds the services, their health checks and the order of ``up``,
    ``down`` and ``status``.
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
        _write_atomic(self.root / "stack.json", json.dumps(config, indent=1) + "\n")

    def __repr__(self) -> str:
        return f"Stack(root={str(self.root)!r}, redis={self.redis_port}, mongo={self.mongo_url!r}, api={self.api_port})"

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc) -> None:
        self.down()

    # --- addresses -----------------------------------------------------------------------

    @property
    def broker_url(self) -> str:
        """Redis as Hydra's processes reach it: the ACL user ``hydra`` (no CONFIG, DEBUG,
        FLUSHALL or other dangerous commands)."""
        return f"redis://{REDIS_USER}:{self.redis_password}@{self.host}:{self.redis_port}/0"

    @property
    def admin_broker_url(self) -> str:
        """Redis as its operator reaches it (the stack's own checks, tests that flush it)."""
        return f"redis://default:{self.redis_admin_password}@{self.host}:{self.redis_port}/0"

    @property
    def mongo_url(self) -> str:
        """MongoDB as Hydra's processes reach it: the user ``hydra`` (an external MongoDB's URL
        is used as given)."""
        if self._external_mongo_url:
            return self._external_mongo_url
        source = "admin" if self.mongo_backend == "mongod" else self.mongo_db
        return f"mongodb://{MONGO_USER}:{self.mongo_password}@{self.host}:{self.mongo_port}/?authSource={source}"

    # --- credentials: made by the first start, kept under the root (0600), passed to Hydra's
    # processes in their environment and never to a job's (the executor's allowlist) ---

    @property
    def redis_password(self) -> str:
        return self._secret("redis-hydra.password", lambda: secrets.token_urlsafe(24))

    @property
    def redis_admin_password(self) -> str:
        return self._secret("redis-admin.password", lambda: secrets.token_urlsafe(24))

    @property
    def mongo_password(self) -> str:
        return self._secret("mongo-hydra.password", lambda: secrets.token_urlsafe(24))

    def write_redis_acl(self) -> Path:
        """Redis's users: ``default`` (the operator: everything) and ``hydra`` (Hydra's
        processes: no dangerous command but INFO, which the controller reads Redis's run id from)."""
        path = self.root / "redis.acl"
        lines = [
            f"user default on >{self.redis_admin_password} ~* &* +@all",
            f"user {REDIS_USER} on >{self.redis_password} ~* &* +@all -@dangerous +info",
        ]
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write("\n".join(lines) + "\n")
        return path

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def flower_url(self) -> str:
        return f"http://127.0.0.1:{self.flower_port}"

    @property
    def grpc_address(self) -> str:
        """Where the gRPC server listens (``host:port``, for ``grpc.insecure_channel``)."""
        return f"127.0.0.1:{self.grpc_port}"

    def _secret(self, name: str, make) -> str:
        """A secret made once (``make()``) and kept in ``<root>/<name>``, mode 0600."""
        path = self.root / name
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)  # private: no job's OS user reads what the stack keeps
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(make() + "\n")
        return path.read_text().strip()

    @property
    def flower_auth(self) -> str:
        """``user:password`` for Flower's basic auth: HYDRA_FLOWER_AUTH, else a random
        password made once and kept in ``<root>/flower.auth``."""
        return os.environ.get("HYDRA_FLOWER_AUTH") or self._secret(
            "flower.auth", lambda: f"admin:{secrets.token_urlsafe(12)}"
        )

    @property
    def metrics_token(self) -> str:
        """The token that may read /metrics only (for Prometheus), kept in ``<root>/metrics.token``."""
        return self._secret("metrics.token", lambda: secrets.token_urlsafe(32))

    @property
    def admin_token_path(self) -> Path:
        """Where ``up`` keeps the admin token it bootstraps (``bootstrap_token``)."""
        return self.root / "admin.token"

    @property
    def admin_token(self) -> str:
        return self.admin_token_path.read_text().strip()

    @property
    def signing_key_path(self) -> Path:
        """The Ed25519 private key the stack's publishers (API, gRPC, controller, and the
        clients it hands ``env_for_clients`` to) sign task messages with
        (``hydra.dispatch.signing``): ``<root>/signing.pem``, made once, mode 0600; the root
        itself is made private (0700), so no job's OS user can read what the stack keeps.
        Workers and Flower are given its public half only (:meth:`env_for_verifiers`)."""
        from hydra.dispatch import signing

        self._secret("signing.pem", lambda: signing.private_pem(signing.generate()).strip())
        return self.root / "signing.pem"

    @property
    def verify_keys(self) -> str:
        """The public half of the signing key, as a worker's ``HYDRA_VERIFY_KEYS``."""
        from hydra.dispatch import signing

        keys = signing.parse_private_keys(self.signing_key_path.read_bytes(), str(self.signing_key_path))
        return ",".join(signing.public_text(key.public_key()) for key in keys)

    @property
    def mongo_backend(self) -> str:
        """'external' (HYDRA_MONGO_URL / mongo_url), 'mongod' (on PATH) or 'ferretdb'."""
        if self._external_mongo_url:
            return "external"
        if shutil.which("mongod"):
            return "mongod"
        return "ferretdb"

    def env_for_clients(self) -> dict[str, str]:
        return {
            "HYDRA_BROKER_URL": self.broker_url,
            "HYDRA_MONGO_URL": self.mongo_url,
            "HYDRA_MONGO_DB": self.mongo_db,
            "HYDRA_API_URL": self.api_url,
            "HYDRA_TOKEN_FILE": str(self.admin_token_path),
            "HYDRA_SIGNING_KEY_FILE": str(self.signing_key_path),
        }

    def env_for_verifiers(self) -> dict[str, str | None]:
        """What workers and Flower get: the clients' settings with the public keys instead of
        the private one (None: removed from the environment they would inherit)."""
        env: dict[str, str | None] = {**self.env_for_clients(), "HYDRA_VERIFY_KEYS": self.verify_keys}
        env.update(HYDRA_SIGNING_KEY_FILE=None, HYDRA_SIGNING_KEY=None)
        return env

    @staticmethod
    def publishes(name: str) -> bool:
        """Whether the process ``name`` is given the private key (workers and Flower are not)."""
        return not (name.startswith(WORKER_PREFIX) or name == "flower")

    # --- paths ---------------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def ferretdb_sqlite_dir(self) -> Path:
        return self.data_dir / "ferretdb"

    # --- command lines -------------------------------------------------------------------

    def redis_command(self) -> list[str]:
        exe = shutil.which("redis-server") or "redis-server"
        return [
            exe, "--bind", *dict.fromkeys(["127.0.0.1", self.host]), "--port", str(self.redis_port),
            "--dir", str(self.data_dir / "redis"),
            "--appendonly", "yes", "--save", "", "--daemonize", "no", "--protected-mode", "yes",
            "--aclfile", str(self.root / "redis.acl"),
        ]  # fmt: skip

    def mongo_command(self) -> list[str] | None:
        """None when an external MongoDB is used."""
        backend = self.mongo_backend
        if backend == "external":
            return None
        if backend == "mongod":
            return [
                shutil.which("mongod") or "mongod", "--dbpath", str(self.data_dir / "mongo"),
                "--port", str(self.mongo_port), "--bind_ip", ",".join(dict.fromkeys(["127.0.0.1", self.host])), "--auth",
            ]  # fmt: skip
        binary = ferretdb.find_binary()
        if binary is None:
            raise StackError(
                "FerretDB not found (neither `ferretdb` on PATH nor $(go env GOPATH)/bin/ferretdb): "
                "run `make install`, or set HYDRA_MONGO_URL, or put mongod on PATH"
            )
        return [
            *ferretdb.command(
                binary, self.ferretdb_sqlite_dir, self.data_dir / "ferretdb-state", self.mongo_port, self.host
            ),
            # FerretDB's own authentication (SCRAM): measured to hold - unauthenticated and
            # wrong-password clients are refused; see docs/operating/identity.md. The password comes
            # in FERRETDB_SETUP_PASSWORD (start_mongo), not on the command line.
            f"--setup-username={MONGO_USER}",
            f"--setup-database={self.mongo_db}",
            "--test-enable-new-auth",
        ]

    def api_command(self) -> list[str]:
        # --no-control-socket: gunicorn >= 25 otherwise binds ~/.gunicorn/gunicorn.ctl, one
        # path shared by every stack on the machine (make up and each test session).
        return [
            str(self.bin / "gunicorn"), "--bind", f"127.0.0.1:{self.api_port}",
            "--workers", "2", "--threads", "4", "--timeout", "60",
            "--access-logfile", "-", "--no-control-socket", "api:create_app()",
        ]  # fmt: skip

    def controller_command(self) -> list[str]:
        return [str(self.bin / "python"), "-m", "hydra", "controller"]

    def worker_command(self, spec: WorkerSpec) -> list[str]:
        return [
            str(self.bin / "celery"), "-A", "hydra", "worker", "-Q", spec.queues,
            "-n", f"{spec.name}@%h", "-c", str(spec.concurrency), "-E", "--loglevel", "INFO",
            *spec.extra_args,
        ]  # fmt: skip

    def flower_command(self) -> list[str]:
        return [
            str(self.bin / "celery"), "-A", "hydra", "flower",
            "--address=127.0.0.1", f"--port={self.flower_port}",
        ]  # fmt: skip

    def grpc_command(self) -> list[str]:
        return [str(self.bin / "python"), "-m", "hydra.rpc"]

    def process_env(self, extra: dict[str, str] | None = None, *, publisher: bool = True) -> dict[str, str | None]:
        """What the stack adds to os.environ for its processes (clients' URLs - with the public
        keys only unless ``publisher`` -, then env, then extra; None removes a variable)."""
        env: dict[str, str | None] = {**(self.env_for_clients() if publisher else self.env_for_verifiers())}
        env["PYTHONUNBUFFERED"] = "1"
        pythonpath = os.environ.get("PYTHONPATH")
        env["PYTHONPATH"] = str(self.repo) + (os.pathsep + pythonpath if pythonpath else "")
        env.update(self.env)
        env.update(extra or {})
        return env

    # --- pidfiles (see Supervisor._live) -------------------------------------------------

    def _fallback_argv(self, name: str) -> list[str] | None:
        """The command to compare with when a pidfile has no metadata."""
        builders = {
            "redis": self.redis_command,
            "api": self.api_command,
            "controller": self.controller_command,
            "flower": self.flower_command,
            "grpc": self.grpc_command,
        }
        if name in builders:
            return builders[name]()
        if name == "mongo":
            try:
                return self.mongo_command()
            except StackError:
                return ["ferretdb"]
        if name.startswith(WORKER_PREFIX):
            return [str(self.bin / "celery")]
        return None

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
        config = _digest(
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
            else:
                self.ferretdb_sqlite_dir.mkdir(parents=True, exist_ok=True)
                (self.data_dir / "ferretdb-state").mkdir(parents=True, exist_ok=True)
            proc = self._ensure(
                "mongo",
                argv,
                port=self.mongo_port,
                hydra_process=False,
                env={"FERRETDB_SETUP_PASSWORD": self.mongo_password},
            )
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

    # --- health --------------------------------------------------------------------------

    def _redis(self):
        if self._redis_client is None:
            import redis

            self._redis_client = redis.Redis.from_url(self.admin_broker_url, socket_timeout=2, socket_connect_timeout=1)
        return self._redis_client

    def _mongo(self):
        if self._mongo_client is None:
            import pymongo

            # ping needs no credentials (mongod and FerretDB answer it before authentication)
            url = self._external_mongo_url or f"mongodb://{self.host}:{self.mongo_port}/"
            self._mongo_client = pymongo.MongoClient(
                url, serverSelectionTimeoutMS=1000, connectTimeoutMS=1000, socketTimeoutMS=5000
            )
        return self._mongo_client

    def close(self) -> None:
        """Close the clients used for health checks."""
        if self._redis_client is not None:
            self._redis_client.close()
            self._redis_client = None
        if self._mongo_client is not None:
            self._mongo_client.close()
            self._mongo_client = None

    @staticmethod
    def _http_status(url: str, timeout: float = 2.0) -> int | None:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def _grpc_health(self) -> Health:
        """The gRPC server's own health service: started once it answers, healthy when SERVING."""
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        try:
            with grpc.insecure_channel(self.grpc_address) as channel:
                answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
        except grpc.RpcError as exc:
            return Health(False, False, f"no gRPC answer ({exc.code().name})")
        serving = answer.status == health_pb2.HealthCheckResponse.SERVING
        return Health(True, serving, health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status))

    def _worker_ready(self, name: str) -> bool:
        meta = self._meta(name) or {}
        prefix = name[len(WORKER_PREFIX) :]
        pattern = re.compile(rf"\b{re.escape(prefix)}@\S+ ready\.".encode())
        try:
            with open(self.log_path(name), "rb") as fh:
                fh.seek(int(meta.get("log_offset", 0)))
                return pattern.search(fh.read(4 * 1024 * 1024)) is not None
        except OSError:
            return False

    def _external(self, name: str) -> bool:
        """An external MongoDB is no process of ours: nothing to watch, no log."""
        return name == "mongo" and self.mongo_backend == "external"

    def check(self, name: str) -> Health:
        """Is ``name`` started / healthy right now (cheap, short timeouts)?"""
        if self._external(name):
            running = True
        else:
            running = self.is_running(name)
            if not running:
                return Health(False, False, "not running")
        if name == "redis":
            try:
                self._redis().ping()
                return Health(True, True, "PING ok")
            except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
                return Health(False, False, f"PING failed: {exc}")
        if name == "mongo":
            try:
                self._mongo().admin.command("ping")
                return Health(True, True, "ping ok")
            except Exception as exc:  # noqa: BLE001
                return Health(False, False, f"ping failed: {type(exc).__name__}")
        if name == "controller":
            try:
                alive = bool(self._redis().exists(names.CONTROLLER_ALIVE_KEY))
            except Exception as exc:  # noqa: BLE001
                return Health(True, False, f"cannot read {names.CONTROLLER_ALIVE_KEY}: {exc}")
            return Health(True, alive, "alive" if alive else f"{names.CONTROLLER_ALIVE_KEY} not set yet")
        if name == "api":
            code = self._http_status(self.api_url + "/health")
            if code is None:
                return Health(False, False, "no HTTP answer")
            return Health(True, code == 200, f"GET /health -> {code}")
        if name == "flower":
            code = self._http_status(self.flower_url + "/")
            if code is None:
                return Health(False, False, "no HTTP answer")
            return Health(code < 500, code < 500, f"GET / -> {code}")
        if name == "grpc":
            return self._grpc_health()
        if name.startswith(WORKER_PREFIX):
            ready = self._worker_ready(name)
            return Health(True, ready, "ready" if ready else "not ready yet")
        return Health(True, True, "running")

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

    def status(self) -> dict[str, dict]:
        """name -> {pid, running, healthy, port, log, detail, ...} for the services and every pidfile."""
        wanted = ["redis", "mongo", "controller"]
        wanted += [n for n in self.names() if n.startswith(WORKER_PREFIX)]
        wanted += ["api", "grpc", "flower"]
        wanted += [n for n in self.names() if n not in wanted]
        ports = {
            "redis": self.redis_port,
            "mongo": self.mongo_port,
            "api": self.api_port,
            "flower": self.flower_port,
            "grpc": self.grpc_port,
        }
        out: dict[str, dict] = {}
        for name in wanted:
            meta = self._meta(name) or {}
            pid = self.pid(name)
            entry: dict = {
                "pid": pid,
                "running": pid is not None,
                "port": ports.get(name, meta.get("port")),
                "log": str(self.log_path(name)),
            }
            if name == "mongo":
                entry["backend"] = self.mongo_backend
                entry["url"] = self.mongo_url
                if self.mongo_backend == "external":
                    entry["port"] = None
            if name.startswith(WORKER_PREFIX):
                entry["node"] = meta.get("node")
                entry["queues"] = meta.get("queues")
                entry["concurrency"] = meta.get("concurrency")
            if entry["running"] or (name == "mongo" and self.mongo_backend == "external"):
                health = self.check(name)
                entry["healthy"] = health.healthy
                entry["detail"] = health.detail
                if name == "mongo" and self.mongo_backend == "external":
                    entry["running"] = health.started
            else:
                entry["healthy"] = False
                entry["detail"] = "stale pidfile" if self.pidfile(name).exists() else "not running"
            out[name] = entry
        return out

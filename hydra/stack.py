"""Start and stop a whole Hydra stack on one machine (``make up`` / ``make down`` and the tests).

::

    python -m hydra.stack up [--no-flower] [--wait SECONDS] [--root DIR]
    python -m hydra.stack down | status [--json] | logs [-n LINES] [NAME ...]

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
flower     ``celery -A hydra flower``                                   ``GET /`` below 500
========== ============================================================ =================

Layout under the root (default ``<repo>/.hydra``): ``run/<name>.pid`` (the pid) and
``run/<name>.json`` (argv, process start time, configuration digest, log offset),
``logs/<name>.log`` (appended to across restarts), ``data/`` (kept by ``down``).

A pidfile counts only while it names a live process that started when we started it
and whose command line matches: stale pidfiles (process gone, or its pid reused by
another program) are ignored and replaced.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, NamedTuple, Sequence

import psutil

from hydra import ferretdb, names

REPO = Path(__file__).resolve().parent.parent

#: Default ports and the environment variables that override them.
DEFAULT_PORTS = {"redis": 6379, "mongo": 27017, "api": 8000, "flower": 5555}
PORT_ENV = {
    "redis": "HYDRA_REDIS_PORT",
    "mongo": "HYDRA_MONGO_PORT",
    "api": "HYDRA_API_PORT",
    "flower": "HYDRA_FLOWER_PORT",
}
WORKER_PREFIX = "worker-"
#: Stop order groups used by ``down`` (reverse of the start order; a group stops in parallel).
_DOWN_GROUPS = (("flower", "api"), ("<workers>",), ("controller",), ("mongo",), ("redis",))

#: Seconds each start_* waits by default when asked to wait.
START_TIMEOUT = {"redis": 30.0, "mongo": 60.0, "controller": 60.0, "worker": 60.0, "api": 60.0, "flower": 60.0}


class StackError(RuntimeError):
    """A stack process could not be started, or did not become healthy."""

    def __init__(self, message: str, name: str | None = None, log_tail: str = ""):
        super().__init__(message)
        self.name = name
        self.log_tail = log_tail

    def __str__(self) -> str:
        text = super().__str__()
        if self.log_tail:
            text += f"\n--- last lines of {self.name}.log ---\n{self.log_tail.rstrip()}"
        return text


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


@dataclass
class Proc:
    """A process the stack started (or found already running: ``reused``)."""

    name: str
    pid: int
    argv: list[str]
    log: Path
    port: int | None = None
    reused: bool = False


class Health(NamedTuple):
    started: bool  # the process answers at all
    healthy: bool  # it is ready for work
    detail: str = ""


# --- pure helpers ---------------------------------------------------------------------------


def venv_bin(repo: Path = REPO) -> Path:
    """The bin directory whose executables the stack runs (this venv, else ``repo/.venv``)."""
    if sys.prefix != sys.base_prefix:
        return Path(sys.executable).parent
    return Path(repo) / ".venv" / "bin"


def local_port_range() -> tuple[int, int]:
    """The kernel's range for outgoing (ephemeral) ports."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True if a server could bind ``host:port`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def pick_free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct free ports below the kernel's ephemeral range.

    Ports inside the ephemeral range can be taken by outgoing connections; worse, a client
    reconnecting to a stopped server on such a port can connect to itself and hold it.
    """
    low, _ = local_port_range()
    lo, hi = (20000, low - 1) if low > 21000 else (10000, 19999)
    chosen: list[int] = []
    for _ in range(2000):
        if len(chosen) == count:
            return chosen
        port = random.randint(lo, hi)
        if port not in chosen and port_is_free(port, host):
            chosen.append(port)
    # Fallback: let the kernel choose.
    socks = []
    try:
        while len(chosen) < count:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((host, 0))
            socks.append(sock)
            port = sock.getsockname()[1]
            if port not in chosen:
                chosen.append(port)
    finally:
        for sock in socks:
            sock.close()
    return chosen


def port_owner(port: int) -> str | None:
    """'pid 123 (redis-server *:6379)' for the process listening on ``port``, if psutil can tell."""
    try:
        conns = psutil.net_connections(kind="inet")
    except (psutil.AccessDenied, OSError):
        return None
    for conn in conns:
        if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN:
            if conn.pid is None:
                return None
            try:
                proc = psutil.Process(conn.pid)
                cmd = " ".join(" ".join(a for a in proc.cmdline() if a).split()) or proc.name()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                return f"pid {conn.pid}"
            if len(cmd) > 120:
                cmd = cmd[:117] + "..."
            return f"pid {conn.pid} ({cmd})"
    return None


def cmdline_matches(expected: Sequence[str], actual: Sequence[str]) -> bool:
    """Is ``actual`` (psutil's cmdline) the command line ``expected`` we launched?

    Accepts the exact argv, the argv behind a script interpreter (``python <script> ...``
    for shebang scripts), and a process that rewrote its title but kept its program name
    (``redis-server 127.0.0.1:6379``).
    """
    expected = list(expected)
    actual = [a for a in actual]
    while actual and actual[-1] == "":
        actual.pop()
    if not expected or not actual:
        return False
    if actual == expected:
        return True
    if len(actual) > len(expected) and actual[-len(expected):] == expected:
        return True
    first = actual[0].split()
    return bool(first) and os.path.basename(first[0]) == os.path.basename(expected[0])


def read_pidfile(path: Path) -> int | None:
    """The pid in ``path``; None if missing or garbage."""
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    try:
        pid = int(text.split()[0])
    except (ValueError, IndexError):
        return None
    return pid if pid > 0 else None


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _digest(argv: Sequence[str], env: dict[str, str], cwd: Path) -> str:
    blob = json.dumps({"argv": list(argv), "env": dict(sorted(env.items())), "cwd": str(cwd)})
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _tail(path: Path, lines: int) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            block = 8192
            data = b""
            while size > 0 and data.count(b"\n") <= lines:
                step = min(block, size)
                size -= step
                fh.seek(size)
                data = fh.read(step) + data
                block *= 2
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:]) + ("\n" if text else "")


def _env_port(service: str) -> int:
    raw = os.environ.get(PORT_ENV[service])
    if raw in (None, ""):
        return DEFAULT_PORTS[service]
    try:
        return int(raw)
    except ValueError:
        raise StackError(f"{PORT_ENV[service]} must be a port number, got {raw!r}") from None


def start_ticks(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot (Linux ``/proc/<pid>/stat`` field 22).

    Unlike psutil's ``create_time()`` (ticks + the boot time in whole seconds, which moves
    when the wall clock is adjusted) this never changes for a process: with the pid it
    identifies the process exactly. None where /proc is not available.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
        return int(stat[stat.rindex(b")") + 2 :].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _group_members(pgid: int) -> list[psutil.Process]:
    """Live (non-zombie) processes in process group ``pgid``."""
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc)
        except (ProcessLookupError, PermissionError, psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return members


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


# --- the stack ------------------------------------------------------------------------------


class Stack:
    """A Hydra stack rooted at ``root`` (pidfiles, logs and data live there)."""

    def __init__(
        self,
        root: Path,
        *,
        redis_port: int | None = None,
        mongo_port: int | None = None,
        api_port: int | None = None,
        flower_port: int | None = None,
        mongo_url: str | None = None,
        mongo_db: str = "hydra",
        env: dict[str, str] | None = None,
        repo: Path = REPO,
    ):
        self.root = Path(root).absolute()
        self.repo = Path(repo).absolute()
        self.redis_port = redis_port if redis_port is not None else _env_port("redis")
        self.mongo_port = mongo_port if mongo_port is not None else _env_port("mongo")
        self.api_port = api_port if api_port is not None else _env_port("api")
        self.flower_port = flower_port if flower_port is not None else _env_port("flower")
        self._external_mongo_url = mongo_url or os.environ.get("HYDRA_MONGO_URL") or None
        self.mongo_db = mongo_db
        self.env = dict(env or {})
        self.bin = venv_bin(self.repo)
        #: Called with progress messages ("redis: started ..."); the CLI sets it to print.
        self.echo: Callable[[str], None] | None = None
        self._popen: dict[str, subprocess.Popen] = {}
        self._redis_client = None
        self._mongo_client = None

    @classmethod
    def ephemeral(cls, root: Path, **kw) -> "Stack":
        """A stack on free ports (those not given in ``kw``), e.g. one per test session."""
        wanted = [p for p in ("redis_port", "mongo_port", "api_port", "flower_port") if kw.get(p) is None]
        for key, port in zip(wanted, pick_free_ports(len(wanted))):
            kw[key] = port
        return cls(root, **kw)

    @classmethod
    def from_root(cls, root: Path, **kw) -> "Stack":
        """The stack last started under ``root`` (its ports, MongoDB, database), from
        ``<root>/stack.json``; ``kw`` overrides. Without that file, like ``Stack(root, **kw)``."""
        try:
            saved = json.loads((Path(root) / "stack.json").read_text())
        except (OSError, ValueError):
            saved = {}
        allowed = ("redis_port", "mongo_port", "api_port", "flower_port", "mongo_url", "mongo_db")
        args = {k: saved[k] for k in allowed if saved.get(k) is not None}
        args.update(kw)
        return cls(root, **args)

    def _save_config(self) -> None:
        config = {
            "redis_port": self.redis_port,
            "mongo_port": self.mongo_port,
            "api_port": self.api_port,
            "flower_port": self.flower_port,
            "mongo_url": self._external_mongo_url,
            "mongo_db": self.mongo_db,
            "repo": str(self.repo),
        }
        _write_atomic(self.root / "stack.json", json.dumps(config, indent=1) + "\n")

    def __repr__(self) -> str:
        return f"Stack(root={str(self.root)!r}, redis={self.redis_port}, mongo={self.mongo_url!r}, api={self.api_port})"

    def __enter__(self) -> "Stack":
        return self

    def __exit__(self, *exc) -> None:
        self.down()

    # --- addresses -----------------------------------------------------------------------

    @property
    def broker_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def mongo_url(self) -> str:
        return self._external_mongo_url or f"mongodb://127.0.0.1:{self.mongo_port}/"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def flower_url(self) -> str:
        return f"http://127.0.0.1:{self.flower_port}"

    @property
    def flower_auth(self) -> str:
        """``user:password`` for Flower's basic auth: HYDRA_FLOWER_AUTH, else a random
        password made once and kept in ``<root>/flower.auth``."""
        configured = os.environ.get("HYDRA_FLOWER_AUTH")
        if configured:
            return configured
        path = self.root / "flower.auth"
        if not path.exists():
            import secrets

            self.root.mkdir(parents=True, exist_ok=True)
            path.write_text(f"admin:{secrets.token_urlsafe(12)}\n")
            path.chmod(0o600)
        return path.read_text().strip()

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
        }

    # --- paths ---------------------------------------------------------------------------

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def ferretdb_sqlite_dir(self) -> Path:
        return self.data_dir / "ferretdb"

    def pidfile(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def _metafile(self, name: str) -> Path:
        return self.run_dir / f"{name}.json"

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def _say(self, message: str) -> None:
        if self.echo is not None:
            self.echo(message)

    # --- command lines -------------------------------------------------------------------

    def redis_command(self) -> list[str]:
        exe = shutil.which("redis-server") or "redis-server"
        return [
            exe, "--bind", "127.0.0.1", "--port", str(self.redis_port),
            "--dir", str(self.data_dir / "redis"),
            "--appendonly", "yes", "--save", "", "--daemonize", "no", "--protected-mode", "yes",
        ]  # fmt: skip

    def mongo_command(self) -> list[str] | None:
        """None when an external MongoDB is used."""
        backend = self.mongo_backend
        if backend == "external":
            return None
        if backend == "mongod":
            return [
                shutil.which("mongod") or "mongod", "--dbpath", str(self.data_dir / "mongo"),
                "--port", str(self.mongo_port), "--bind_ip", "127.0.0.1",
            ]  # fmt: skip
        binary = ferretdb.find_binary()
        if binary is None:
            raise StackError(
                "FerretDB not found (neither `ferretdb` on PATH nor $(go env GOPATH)/bin/ferretdb): "
                "run `make install`, or set HYDRA_MONGO_URL, or put mongod on PATH"
            )
        return ferretdb.command(
            binary, self.ferretdb_sqlite_dir, self.data_dir / "ferretdb-state", self.mongo_port
        )

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

    def process_env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """What the stack adds to os.environ for its processes (clients' URLs, then env, then extra)."""
        env = self.env_for_clients()
        env["PYTHONUNBUFFERED"] = "1"
        pythonpath = os.environ.get("PYTHONPATH")
        env["PYTHONPATH"] = str(self.repo) + (os.pathsep + pythonpath if pythonpath else "")
        env.update(self.env)
        env.update(extra or {})
        return env

    # --- pidfiles ------------------------------------------------------------------------

    def _meta(self, name: str) -> dict | None:
        try:
            return json.loads(self._metafile(name).read_text())
        except (OSError, ValueError):
            return None

    def _fallback_argv(self, name: str) -> list[str] | None:
        """The command to compare with when a pidfile has no metadata."""
        builders = {
            "redis": self.redis_command,
            "api": self.api_command,
            "controller": self.controller_command,
            "flower": self.flower_command,
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

    def _reap(self, name: str) -> None:
        popen = self._popen.get(name)
        if popen is not None and popen.poll() is not None:
            del self._popen[name]

    def _live(self, name: str) -> psutil.Process | None:
        """The process this root's pidfile for ``name`` names, if it is alive and ours.

        Ours means: the pid and its start time (clock ticks since boot) are the ones
        recorded when we started it; without that record (a bare pidfile), its command
        line must match the one we would run.
        """
        pid = read_pidfile(self.pidfile(name))
        if pid is None:
            return None
        self._reap(name)
        try:
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            meta = self._meta(name)
            if meta and meta.get("pid") == pid:
                ticks, now_ticks = meta.get("start_ticks"), start_ticks(pid)
                if ticks is not None and now_ticks is not None:
                    # Exact identity. (Right after exec the kernel may not have set up the
                    # new command line yet, so do not insist on reading it.)
                    return proc if now_ticks == ticks else None
                if meta.get("create_time") is not None and abs(proc.create_time() - meta["create_time"]) > 2.0:
                    return None  # pid reused
                expected = meta.get("argv")
            else:
                expected = self._fallback_argv(name)
            if not expected or not cmdline_matches(expected, proc.cmdline()):
                return None
            return proc
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            return None

    def _clear(self, name: str) -> None:
        for path in (self.pidfile(name), self._metafile(name)):
            try:
                path.unlink()
            except FileNotFoundError:
                pass

    def names(self) -> list[str]:
        """Names with a pidfile under this root."""
        if not self.run_dir.is_dir():
            return []
        return sorted(p.stem for p in self.run_dir.glob("*.pid"))

    def pid(self, name: str) -> int | None:
        proc = self._live(name)
        return proc.pid if proc else None

    def is_running(self, name: str) -> bool:
        return self._live(name) is not None

    def log_tail(self, name: str, lines: int = 50) -> str:
        return _tail(self.log_path(name), lines)

    # --- starting ------------------------------------------------------------------------

    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        port: int | None = None,
        cwd: Path | None = None,
        meta: dict | None = None,
    ) -> Proc:
        """Start ``argv`` detached as ``name`` (new session, log appended, pidfile written).

        No checks: see ``_ensure`` for "leave a running one alone".
        """
        for directory in (self.run_dir, self.log_dir, self.data_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self._save_config()
        argv = [str(a) for a in argv]
        cwd = Path(cwd) if cwd else self.repo
        extra_env = self.process_env(env)
        full_env = {**os.environ, **extra_env}
        log = self.log_path(name)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with open(log, "ab") as fh:
            fh.write(f"\n===== {stamp} hydra.stack: starting {name}: {' '.join(argv)}\n".encode())
            fh.flush()
            offset = fh.tell()
            try:
                popen = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=fh,
                    stderr=subprocess.STDOUT,
                    cwd=str(cwd),
                    env=full_env,
                    start_new_session=True,
                    close_fds=True,
                )
            except OSError as exc:
                raise StackError(f"cannot start {name}: {argv[0]}: {exc} (run `make install`?)", name) from exc
        try:
            create_time = psutil.Process(popen.pid).create_time()
        except psutil.NoSuchProcess:
            create_time = None
        ticks = start_ticks(popen.pid)
        record = {
            "name": name,
            "pid": popen.pid,
            "argv": argv,
            "cwd": str(cwd),
            "port": port,
            "create_time": create_time,
            "start_ticks": ticks,
            "started_at": time.time(),
            "log_offset": offset,
            "config": _digest(argv, extra_env, cwd),
            **(meta or {}),
        }
        _write_atomic(self._metafile(name), json.dumps(record, indent=1))
        _write_atomic(self.pidfile(name), f"{popen.pid}\n")
        self._popen[name] = popen
        return Proc(name, popen.pid, argv, log, port)

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
        config = _digest(argv, self.process_env(env) if hydra_process else {}, self.repo)
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
            proc = self._ensure("mongo", argv, port=self.mongo_port, hydra_process=False)
        if wait:
            self.wait_healthy(["mongo"], START_TIMEOUT["mongo"])
            self.ensure_schema()
        return proc

    def ensure_schema(self) -> int:
        """Hydra's collections and indexes (idempotent); with FerretDB also the ``_id``
        expression indexes (see hydra.ferretdb). Returns the number of those created.

        Call again after dropping collections on FerretDB.
        """
        import pymongo

        from hydra import db as hydra_db

        client = pymongo.MongoClient(self.mongo_url, serverSelectionTimeoutMS=15000, tz_aware=True)
        try:
            hydra_db.ensure_schema(client[self.mongo_db])
        finally:
            client.close()
        created = 0
        if self.mongo_backend == "ferretdb":
            created = ferretdb.add_id_indexes(self.ferretdb_sqlite_dir)
            if created:
                self._say(f"mongo: added {created} FerretDB _id index(es)")
        return created

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
        proc = self._ensure("api", self.api_command(), port=self.api_port)
        if wait:
            self.wait_healthy(["api"], START_TIMEOUT["api"], level="started")
        return proc

    def start_flower(self, wait: bool = True) -> Proc:
        # Flower reads FLOWER_BASIC_AUTH itself; an env var keeps the password out of `ps`.
        proc = self._ensure("flower", self.flower_command(), port=self.flower_port,
                            env={"FLOWER_BASIC_AUTH": self.flower_auth})
        if wait:
            self.wait_healthy(["flower"], START_TIMEOUT["flower"])
        return proc

    # --- health --------------------------------------------------------------------------

    def _redis(self):
        if self._redis_client is None:
            import redis

            self._redis_client = redis.Redis.from_url(
                self.broker_url, socket_timeout=2, socket_connect_timeout=1
            )
        return self._redis_client

    def _mongo(self):
        if self._mongo_client is None:
            import pymongo

            self._mongo_client = pymongo.MongoClient(
                self.mongo_url, serverSelectionTimeoutMS=1000, connectTimeoutMS=1000, socketTimeoutMS=5000
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

    def _worker_ready(self, name: str) -> bool:
        meta = self._meta(name) or {}
        prefix = name[len(WORKER_PREFIX):]
        pattern = re.compile(rf"\b{re.escape(prefix)}@\S+ ready\.".encode())
        try:
            with open(self.log_path(name), "rb") as fh:
                fh.seek(int(meta.get("log_offset", 0)))
                return pattern.search(fh.read(4 * 1024 * 1024)) is not None
        except OSError:
            return False

    def check(self, name: str) -> Health:
        """Is ``name`` started / healthy right now (cheap, short timeouts)?"""
        if name == "mongo" and self.mongo_backend == "external":
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
        if name.startswith(WORKER_PREFIX):
            ready = self._worker_ready(name)
            return Health(True, ready, "ready" if ready else "not ready yet")
        return Health(True, True, "running")

    def wait_healthy(self, wanted: Iterable[str], timeout: float, level: str = "healthy") -> None:
        """Wait until every name in ``wanted`` is healthy (or just started); raise StackError
        with the log tail of the first one that exits or is still not there at the deadline."""
        pending = list(dict.fromkeys(wanted))
        deadline = time.monotonic() + timeout
        last: dict[str, Health] = {}
        while True:
            for name in list(pending):
                health = self.check(name)
                last[name] = health
                if health.healthy or (level == "started" and health.started):
                    pending.remove(name)
                    self._say(f"{name}: {'healthy' if health.healthy else 'started'} ({health.detail})")
                    continue
                external = name == "mongo" and self.mongo_backend == "external"
                if not external and not self.is_running(name):
                    raise StackError(
                        f"{name} exited during start-up (log: {self.log_path(name)})",
                        name,
                        self.log_tail(name, 40),
                    )
            if not pending:
                return
            if time.monotonic() >= deadline:
                name = pending[0]
                states = "; ".join(f"{n}: {last[n].detail}" for n in pending)
                raise StackError(
                    f"not {level} after {timeout:.0f}s: {states} (log: {self.log_path(name)})",
                    name,
                    self.log_tail(name, 40) if name != "mongo" or self.mongo_backend != "external" else "",
                )
            time.sleep(0.25)

    # --- the whole stack -----------------------------------------------------------------

    def up(self, workers: Sequence[WorkerSpec] = DEFAULT_WORKERS, flower: bool = True, wait: float = 90) -> None:
        """Start what is not running (redis, mongo + schema, controller, workers, api, flower)
        and wait until all are healthy. Idempotent."""
        deadline = time.monotonic() + wait

        def left() -> float:
            return max(1.0, deadline - time.monotonic())

        # Fail before starting anything if a port we need is held by a stranger.
        ports = {"redis": self.redis_port, "api": self.api_port}
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
        started = ["controller"]
        self.start_controller(wait=False)
        for spec in workers:
            self.start_worker(spec, wait=False)
            started.append(spec.process_name)
        self.start_api(wait=False)
        started.append("api")
        if flower:
            self.start_flower(wait=False)
            started.append("flower")
        self.wait_healthy(started, left())

    def _stop_many(self, stop_names: Sequence[str], sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        """Signal the leaders, wait for their groups to go; SIGKILL what is left at the deadline."""
        targets: dict[str, tuple[psutil.Process, list[psutil.Process]]] = {}
        if "mongo" in stop_names and self._mongo_client is not None:
            self._mongo_client.close()  # FerretDB waits for open connections at shutdown
            self._mongo_client = None
        for name in stop_names:
            proc = self._live(name)
            if proc is None:
                pid = read_pidfile(self.pidfile(name))
                if pid is not None and not psutil.pid_exists(pid):
                    # The leader is gone; members of its group may remain (our pgid cannot be
                    # reused while the group exists).
                    for member in _group_members(pid):
                        try:
                            member.kill()
                        except psutil.Error:
                            pass
                self._clear(name)
                self._reap(name)
                continue
            try:
                descendants = proc.children(recursive=True)
            except psutil.Error:
                descendants = []
            targets[name] = (proc, descendants)
            self._say(f"{name}: stopping (pid {proc.pid})")
            try:
                proc.send_signal(sig)
            except psutil.NoSuchProcess:
                pass

        def group_alive(proc: psutil.Process) -> list[psutil.Process]:
            return _group_members(proc.pid)

        deadline = time.monotonic() + timeout
        # 1. leaders exit (they stop their own children: gunicorn, celery prefork)
        while time.monotonic() < deadline and any(_alive(p) for p, _ in targets.values()):
            self._reap_all()
            time.sleep(0.1)
        # 2. orphans left in a group whose leader exited: SIGTERM, a short grace
        orphaned = [p for p, _ in targets.values() if not _alive(p) and group_alive(p)]
        for proc in orphaned:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
        grace = min(deadline, time.monotonic() + 3)
        while orphaned and time.monotonic() < grace and any(group_alive(p) for p in orphaned):
            time.sleep(0.1)
        # 3. SIGKILL whatever is left: the group and the descendants that left it
        for name, (proc, descendants) in targets.items():
            leftovers = group_alive(proc) + [d for d in descendants if _alive(d)]
            if leftovers:
                self._say(f"{name}: killing {len(leftovers)} process(es) still running")
            for victim in leftovers:
                try:
                    victim.kill()
                except psutil.Error:
                    pass
        end = time.monotonic() + 5
        while time.monotonic() < end:
            self._reap_all()
            if not any(_alive(p) or group_alive(p) for p, _ in targets.values()):
                break
            time.sleep(0.1)
        for name in targets:
            self._clear(name)
            self._reap(name)

    def _reap_all(self) -> None:
        for name in list(self._popen):
            self._reap(name)

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        """Stop ``name``'s process group: ``sig`` to the leader, SIGKILL to the group after
        ``timeout``; removes the pidfile. A stale pidfile is just removed."""
        self._stop_many([name], sig, timeout)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to ``name``'s whole process group now (crash simulation). The pidfile
        stays (stale once the process is gone); with SIGKILL, returns once the group is gone."""
        proc = self._live(name)
        if proc is None:
            return
        try:
            pgid = os.getpgid(proc.pid)
        except ProcessLookupError:
            return
        if pgid != proc.pid:  # not a session leader we started: signal only the process
            proc.send_signal(sig)
        else:
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                return
        if sig == signal.SIGKILL:
            end = time.monotonic() + 5
            while time.monotonic() < end:
                self._reap(name)
                if not _alive(proc) and not _group_members(pgid):
                    break
                time.sleep(0.05)

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
        wanted += ["api", "flower"]
        wanted += [n for n in self.names() if n not in wanted]
        ports = {"redis": self.redis_port, "mongo": self.mongo_port, "api": self.api_port, "flower": self.flower_port}
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


# --- CLI ------------------------------------------------------------------------------------


def _print_up(stack: Stack, workers: Sequence[WorkerSpec], flower: bool) -> None:
    backend = stack.mongo_backend
    lines = [
        "",
        f"Hydra is up (root {stack.root})",
        f"  API       {stack.api_url}   (docs: {stack.api_url}/docs, metrics: {stack.api_url}/metrics)",
    ]
    if flower:
        user, _, password = stack.flower_auth.partition(":")
        lines.append(f"  Flower    {stack.flower_url}   (user {user!r}, password {password!r})")
    lines += [
        f"  Redis     {stack.broker_url}",
        f"  MongoDB   {stack.mongo_url}   ({backend}, database {stack.mongo_db!r})",
    ]
    for i, spec in enumerate(workers):
        label = "  Workers   " if i == 0 else "            "
        lines.append(f"{label}{spec.node:<28} queues {spec.queues}  (concurrency {spec.concurrency})")
    lines += [
        f"  Logs      {stack.log_dir}/",
        "",
        "Run `make status` to check on it, `make logs` to read the logs, `make down` to stop.",
    ]
    print("\n".join(lines))


def _print_status(status: dict[str, dict]) -> None:
    rows = [("NAME", "PID", "STATE", "PORT", "DETAIL")]
    for name, entry in status.items():
        if entry.get("running"):
            state = "healthy" if entry.get("healthy") else "starting"
        else:
            state = "stopped"
        if entry.get("backend") == "external":
            state += " (external)"
        detail = entry.get("detail", "")
        if entry.get("queues"):
            detail = f"{entry.get('node')} -Q {entry['queues']}; {detail}"
        if name == "mongo":
            detail = f"{entry.get('backend')}; {detail}"
        rows.append((name, str(entry.get("pid") or "-"), state, str(entry.get("port") or "-"), detail))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hydra.stack", description="Run a local Hydra stack.")
    parser.add_argument("--root", type=Path, default=REPO / ".hydra", help="state directory (default: .hydra)")
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="start everything and wait until healthy")
    p_up.add_argument("--no-flower", action="store_true", help="do not start Flower")
    p_up.add_argument("--wait", type=float, default=90, help="seconds to wait for health (default 90)")
    sub.add_parser("down", help="stop everything this root started (data is kept)")
    p_status = sub.add_parser("status", help="show what runs")
    p_status.add_argument("--json", action="store_true")
    p_logs = sub.add_parser("logs", help="print the tail of the logs")
    p_logs.add_argument("-n", "--lines", type=int, default=50)
    p_logs.add_argument("names", nargs="*")
    args = parser.parse_args(argv)

    try:
        # `up` follows the environment (ports, HYDRA_MONGO_URL); the others look at what runs.
        stack = Stack(args.root) if args.command == "up" else Stack.from_root(args.root)
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stack.echo = lambda msg: print(f"  {msg}", flush=True)

    if args.command == "up":
        workers = list(DEFAULT_WORKERS)
        print(f"Starting Hydra (root {stack.root}) ...", flush=True)
        try:
            stack.up(workers=workers, flower=not args.no_flower, wait=args.wait)
        except StackError as exc:
            print(f"\nerror: {exc}", file=sys.stderr)
            print("\nSome processes may still run: `make status`, `make logs`, `make down`.", file=sys.stderr)
            return 1
        finally:
            stack.close()
        _print_up(stack, workers, not args.no_flower)
        return 0
    if args.command == "down":
        if not stack.names():
            print(f"Nothing to stop (no pidfiles in {stack.run_dir}).")
            return 0
        stack.down()
        print(f"Stopped. Data kept in {stack.data_dir} (`make clean` deletes it).")
        return 0
    if args.command == "status":
        status = stack.status()
        stack.close()
        if args.json:
            print(json.dumps(status, indent=2))
        else:
            _print_status(status)
        return 0
    if args.command == "logs":
        chosen = args.names or sorted(p.stem for p in stack.log_dir.glob("*.log"))
        if not chosen:
            print(f"No logs in {stack.log_dir}.")
        for name in chosen:
            print(f"==> {stack.log_path(name)} <==")
            print(stack.log_tail(name, args.lines), end="")
            print()
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())

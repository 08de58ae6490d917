"""The command line and environment of each of the stack's processes (:class:`Commands`, a
part of ``Stack``): what ``_ensure`` compares with a running process to decide whether its
configuration changed."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from hydrastack import ferretdb
from hydrastack.config import MONGO_USER, WORKER_PREFIX, WorkerSpec
from hydrastack.processes import StackError


class Commands:
    """Command lines, data paths and process environments (mixed into ``Stack``)."""

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
            "--workers", "2", "--worker-class", "gevent", "--timeout", "60",
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

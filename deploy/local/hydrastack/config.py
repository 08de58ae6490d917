"""What a local stack is made of before anything starts: the repository, default ports and the
variables that override them, the users Hydra's processes are in Redis and MongoDB, how long
each start waits, and the workers (:class:`WorkerSpec`; ``make up`` starts ``DEFAULT_WORKERS``)."""

from __future__ import annotations

import os
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

from hydrastack.processes import StackError

#: The repository root (this file is deploy/local/hydrastack/config.py).
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

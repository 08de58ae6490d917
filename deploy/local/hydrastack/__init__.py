"""Start and stop a whole Hydra stack on one machine (``make up`` / ``make down``, the tests, the bench).

::

    python -m hydrastack up [--no-flower] [--wait SECONDS] [--root DIR]
    python -m hydrastack down | status [--json] | logs [-n LINES] [NAME ...]

Lives outside the runtime package (``deploy/local`` is put on ``PYTHONPATH`` by the Makefile,
the tests and the bench). Its modules, read in this order:

* ``ports``: free-port picking and who holds a port,
* ``identity``: which process is which (command lines, pidfiles, start ticks, process
  groups, log tails): pure helpers,
* ``processes``: :class:`Supervisor`, detached processes with pidfiles and logs under one
  root, knowing nothing about Hydra,
* ``ferretdb``: building and starting FerretDB, and the ``_id`` indexes it lacks,
* ``config``: the repository, default ports, start timeouts and :class:`WorkerSpec`,
* ``credentials``, ``commands``, ``health``: the parts of :class:`Stack` that give each
  service its addresses and secrets, its command line, and its health check,
* ``services``: :class:`Stack`, Hydra's services (Redis, MongoDB/FerretDB, controller,
  workers, API, Flower) on top of the supervisor: starting each, ``up`` and ``down``,

and ``__main__`` for the command line.
"""

from hydrastack.identity import cmdline_matches, read_pidfile, start_ticks
from hydrastack.ports import local_port_range, pick_free_ports, port_is_free, port_owner
from hydrastack.processes import Health, Proc, StackError, Supervisor
from hydrastack.services import (
    DEFAULT_PORTS,
    DEFAULT_WORKERS,
    PORT_ENV,
    REPO,
    START_TIMEOUT,
    WORKER_PREFIX,
    Stack,
    WorkerSpec,
    venv_bin,
)

__all__ = [
    "DEFAULT_PORTS",
    "DEFAULT_WORKERS",
    "PORT_ENV",
    "REPO",
    "START_TIMEOUT",
    "WORKER_PREFIX",
    "Health",
    "Proc",
    "Stack",
    "StackError",
    "Supervisor",
    "WorkerSpec",
    "cmdline_matches",
    "local_port_range",
    "pick_free_ports",
    "port_is_free",
    "port_owner",
    "read_pidfile",
    "start_ticks",
    "venv_bin",
]

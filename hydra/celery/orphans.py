"""No command outlives its attempt: what the worker does about commands whose pool process died.

A command's pid is noted in a file while it runs (:func:`command_pidfile`); if the pool
process running it dies (a command that kills its own worker, an out-of-memory kill), the
worker's main process finds the pid there, and every process carrying the run's
``HYDRA_RUN_ID`` in its environment, and ends them (:func:`end_orphaned_command`). At start-up a
worker ends what its previous process left running (:func:`end_leftovers`).
"""

from __future__ import annotations

import contextlib
import functools
import getpass
import logging
import os
import tempfile
from pathlib import Path

import psutil

from hydra.execution.tree import end_processes_with_env, end_session

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=8)
def _runtime_path(worker_id: str) -> Path:
    return Path(tempfile.gettempdir()) / f"hydra-{getpass.getuser()}" / worker_id.replace(os.sep, "_")


def runtime_dir(worker_id: str) -> Path:
    """Where worker ``worker_id`` notes the pids of the commands it runs (one file per run)."""
    path = _runtime_path(worker_id)
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def command_pidfile(run_id: str, worker_id: str):
    """Yields a callback noting the command's pid in a file removed when the command ended.

    If the pool process running the command dies (a command that kills its own worker, an
    out-of-memory kill), the worker's main process finds the pid here and ends the command's
    session (:func:`end_orphaned_command`), so no orphan outlives the attempt. The directory
    is made when the file cannot be written without it (the worker's start made it; a cleaner
    of the temporary directory may have removed it since), not looked for on every run."""
    path = _runtime_path(worker_id) / f"{run_id}.pid"

    def note(pid: int) -> None:
        try:
            path.write_text(str(pid))
        except FileNotFoundError:
            runtime_dir(worker_id)
            path.write_text(str(pid))

    try:
        yield note
    finally:
        path.unlink(missing_ok=True)


def end_orphaned_command(run_id: str, worker_id: str) -> int:
    """Kill what is left of ``run_id``'s command after its pool process died: its session
    (from the pid file, when the pool process lived long enough to write it) and every
    process carrying ``HYDRA_RUN_ID=<run_id>`` in its environment (always)."""
    path = runtime_dir(worker_id) / f"{run_id}.pid"
    ended = 0
    try:
        pid = int(path.read_text())
    except (OSError, ValueError):
        pid = None
    if pid is not None and _is_command_session(pid, path):
        end_session(pid)
        ended += 1
    path.unlink(missing_ok=True)
    ended += end_processes_with_env("HYDRA_RUN_ID", run_id)
    if ended:
        log.warning(
            "ended the orphaned command of a dead pool process",
            extra={"event": "run.orphan_killed", "run_id": run_id, "pid": pid},
        )
    return ended


def _is_command_session(pid: int, pidfile: Path) -> bool:
    """Guard against pid reuse: the process must lead its own session and have started
    just before its pid file was written."""
    try:
        proc = psutil.Process(pid)
        return os.getsid(pid) == pid and abs(proc.create_time() - pidfile.stat().st_mtime) < 5
    except (psutil.NoSuchProcess, ProcessLookupError, OSError):
        return False


def end_leftovers(worker_id: str) -> int:
    """At start-up: end commands that a previous process of this worker left running when it
    was killed (the controller has failed those runs over; they must not run twice).
    ``worker_id`` is the worker's slot (``hydra.names.worker_slot``): the commands of a
    same-named worker of another deployment on this host are not its own."""
    ended = end_processes_with_env("HYDRA_WORKER_SLOT", worker_id)
    directory = runtime_dir(worker_id)
    for stale in directory.glob("*.pid"):
        stale.unlink(missing_ok=True)
    if ended:
        log.warning(
            "ended commands left running by this worker's previous process",
            extra={"event": "worker.leftovers_killed", "worker": worker_id, "count": ended},
        )
    return ended

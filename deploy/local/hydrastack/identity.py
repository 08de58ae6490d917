"""Which process is which, and the files that say so: pure helpers for the supervisor.

Command lines compared with what was launched, pidfiles read and written atomically,
a process's start time in clock ticks (its exact identity with the pid), the live members
of a process group, a configuration digest, and the tail of a log. No state, nothing
started or stopped here (that is ``hydrastack.processes``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import psutil


def cmdline_matches(expected: Sequence[str], actual: Sequence[str]) -> bool:
    """Is ``actual`` (psutil's cmdline) the command line ``expected`` we launched?

    Accepts the exact argv, the argv behind a script interpreter (``python <script> ...``
    for shebang scripts), and a process that rewrote its title but kept its program name
    (``redis-server 127.0.0.1:6379``).
    """
    expected = list(expected)
    actual = list(actual)
    while actual and actual[-1] == "":
        actual.pop()
    if not expected or not actual:
        return False
    if actual == expected:
        return True
    if len(actual) > len(expected) and actual[-len(expected) :] == expected:
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


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one step (a reader sees the old file or the new)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def config_digest(argv: Sequence[str], env: dict[str, str | None], cwd: Path) -> str:
    """A short digest of how a process was started (to tell a changed configuration)."""
    blob = json.dumps({"argv": list(argv), "env": dict(sorted(env.items())), "cwd": str(cwd)})
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def read_tail(path: Path, lines: int) -> str:
    """The last ``lines`` lines of ``path`` (read backwards in growing blocks); "" if missing."""
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


def group_members(pgid: int) -> list[psutil.Process]:
    """Live (non-zombie) processes in process group ``pgid``."""
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc)
        except (ProcessLookupError, PermissionError, psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return members


def alive(proc: psutil.Process) -> bool:
    """Is ``proc`` running and not a zombie?"""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False

"""The children of a process that runs commands: its commands, and the orphans it adopts.

:func:`hydra.execution.process.execute` starts each command through :func:`spawn`, which
notes its pid among this process's *commands*, and collects its exit status itself
(``Popen.wait``) before it calls :func:`release`. Every other child of the process is an
*orphan* it adopted as a subreaper (:func:`enable_subreaper`): a command's daemon whose
parent died, or bubblewrap's own init process, whose parent (the sandbox's monitor, the
command itself) exits without collecting it.

Orphans are collected by one reaper thread per process: it blocks in
``waitid(P_ALL, WEXITED | WNOWAIT)`` until some child has exited, which looks at that
child without collecting it; then, holding the lock :func:`spawn` holds while it starts and
notes a command, it collects the child only if it is not a command (whose status belongs to
its ``execute()``). A command's exit wakes the reaper too: it then waits for that command's
:func:`release` and looks again. So nothing is polled and no process table is read: the
reaper sleeps in the kernel until a child exits, and costs nothing per run.

The rule that makes this safe: a process that enables the subreaper starts children only
through :func:`spawn`. A child started with plain ``subprocess`` there would count as an
orphan, and its exit status could be taken before its ``wait()``. The worker's pool
processes start nothing else; tests that need a subreaper run it in a child process.
"""

from __future__ import annotations

import ctypes
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable

from hydra import clock

log = logging.getLogger(__name__)

_PR_SET_CHILD_SUBREAPER = 36

_lock = threading.Lock()
#: Notified when a command starts or is released.
_changed = threading.Condition(_lock)
_commands: set[int] = set()  # pids of the commands running in this process
_started = 0  # commands ever started here: the reaper waits for the next one when it has no child
# A "busy period" is a stretch of time in which at least one command runs here; the orphans
# adopted during it came from its commands (hydra.execution.tree kills them at its end).
_busy_since = 0.0  # clock.epoch() at the start of the current busy period
_subreaper_pid: int | None = None  # the pid that enabled it (the setting is not inherited by fork)
_reaper_pid: int | None = None  # the pid whose reaper thread runs (threads are not inherited either)


def enable_subreaper() -> bool:
    """Makes this process adopt the orphans of the commands it runs, and collect them when
    they exit (Linux; elsewhere a no-op). Returns True when enabled.

    A command that double-forks a daemon (``(setsid daemon &)``) leaves it in another
    session and without a parent; normally init adopts it and it can no longer be traced to
    the command. With ``PR_SET_CHILD_SUBREAPER`` set, this process adopts it instead, and
    ``execute()`` kills it with the command's other processes; the reaper thread started here
    collects it once it has exited, so no zombie stays behind.

    The worker calls this once in every process that runs commands (a forked child inherits
    neither the setting nor the thread). Such a process must start children only through
    :func:`spawn` (see the module docstring). While several commands run at once (a threaded
    pool), an orphan cannot be told apart, so it lives until the last of them ends - and if
    it holds its command's output pipes, that command's ``execute()`` waits 2 s for them.
    """
    global _subreaper_pid, _reaper_pid
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    zero = ctypes.c_ulong(0)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, ctypes.c_ulong(1), zero, zero, zero) != 0:
        log.warning("prctl(PR_SET_CHILD_SUBREAPER) failed: %s", os.strerror(ctypes.get_errno()))
        return False
    with _lock:
        _subreaper_pid = os.getpid()
        if _reaper_pid != os.getpid():
            _reaper_pid = os.getpid()
            threading.Thread(target=_reap_orphans, name="hydra-reaper", daemon=True).start()
    return True


def spawn(start: Callable[[], subprocess.Popen]) -> subprocess.Popen:
    """Calls ``start`` (which starts a command) and notes the command's pid, both while
    holding the lock the reaper holds when it collects an orphan: the reaper cannot take the
    command for an orphan, even if it exits at once."""
    global _busy_since, _started
    with _changed:
        if not _commands:
            _busy_since = clock.epoch()
        proc = start()
        _commands.add(proc.pid)
        _started += 1
        _changed.notify_all()
    return proc


def release(pid: int) -> None:
    """The command ``pid`` has been collected (``Popen.wait``): it is no longer this
    process's command."""
    with _changed:
        _commands.discard(pid)
        _changed.notify_all()


def adoption() -> tuple[set[int], bool, float]:
    """At once: the commands' pids, whether this process adopts orphans, and since when
    (``clock.epoch()``) at least one command has been running here."""
    with _lock:
        return set(_commands), _subreaper_pid == os.getpid(), _busy_since


def live_children() -> set[int] | None:
    """This process's children that have not exited, from ``/proc/self/task/*/children``
    and their ``stat`` (an exited orphan is the reaper's to collect); None when the kernel
    does not provide those files."""
    try:
        tasks = os.listdir("/proc/self/task")
        children: set[int] = set()
        for task in tasks:
            with open(f"/proc/self/task/{task}/children", "rb") as fh:
                children.update(int(pid) for pid in fh.read().split())
    except FileNotFoundError:
        return None  # a task ended meanwhile, or no CONFIG_PROC_CHILDREN: scan instead
    except (OSError, ValueError):
        return None
    return {pid for pid in children if not _exited(pid)}


def _exited(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 :].split()[:1] == [b"Z"]


def _reap_orphans() -> None:
    """The reaper thread (see the module docstring); runs as long as the process does."""
    while True:
        with _lock:
            started = _started
        try:
            # WNOWAIT: look at an exited child without collecting it (it may be a command).
            found = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOWAIT)
        except ChildProcessError:
            # No child at all, hence no descendant that could be adopted: until a command starts.
            with _changed:
                while _started == started:
                    _changed.wait()
            continue
        except OSError:
            log.exception("the orphan reaper stopped; adopted orphans stay zombies")
            return
        if found is None:
            continue
        pid = found.si_pid
        with _changed:
            if pid not in _commands:
                _waitpid(pid)
            while pid in _commands:  # its execute() collects it; look again once it has
                _changed.wait()


def _waitpid(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # collected meanwhile
        pass

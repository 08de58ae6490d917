"""Ending a command's process tree: what is left of a command when it ends, found and killed.

On POSIX a command runs in a session of its own whose id is its pid; its tree is that session,
the orphans this process adopted from it (``hydra.execution.reaper``), and the descendants of
both. :func:`end_tree` sends them SIGTERM, waits ``grace`` seconds, then SIGKILLs what is left,
pass after pass. With a cgroup (``hydra.execution.isolation.Confinement``) the cgroup's members
are the tree and nothing needs to be searched. The common end - the command exited and left
nothing - is told from /proc (or this process's own children) without reading the whole
process table; so is what is left otherwise by a subreaper (the worker's pool processes), from
its own children down. Only a process that is no subreaper (the worker's main process, ending
what a dead pool process left running) searches the table. On Windows the command's descendants are found through their parent links and
terminated at once.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Iterator

import psutil

from hydra.execution import reaper
from hydra.execution.isolation import Confinement

log = logging.getLogger(__name__)

_WINDOWS = os.name == "nt"
#: SIGKILL passes over the tree; each catches what the previous one's victims forked.
_KILL_ROUNDS = 5
_KILL_WAIT = 1.0
#: psutil's create_time and clock.epoch() may disagree by up to a second (boot-time rounding).
_CLOCK_SLACK = 1.0
#: Sleeps between looks at a run's cgroup that its command left non-empty, before what is left
#: is ended (:func:`_end_confined`): 15 ms in all.
_SETTLE = (0.001, 0.002, 0.004, 0.008)


def end_session(pid: int, grace: float = 2.0) -> None:
    """Ends every process of a command started by ``hydra.execution.process.execute`` (its pid is ``pid``) from
    another process - e.g. the worker's main process, when the pool process that ran it
    died. SIGTERM, ``grace`` seconds, then SIGKILL, like the end of ``hydra.execution.process.execute``."""
    end_tree(pid, 0.0, grace)


def end_processes_with_env(name: str, value: str, grace: float = 2.0) -> int:
    """Ends every process of this user whose environment has ``name=value``, with its session
    and descendants (SIGTERM, ``grace`` seconds, SIGKILL). A command's processes all inherit
    the environment they were started with, so this finds them even when nothing recorded
    their pids - unless they replaced their environment. Returns how many roots were found."""
    roots = []
    for proc in psutil.process_iter():
        try:
            if proc.pid != os.getpid() and proc.environ().get(name) == value:
                roots.append(proc.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
            continue
    for pid in roots:
        end_tree(pid, 0.0, grace)
    return len(roots)


def end_tree(root: int, spawned: float, grace: float, confinement: Confinement | None = None) -> None:
    """Ends every process of the command whose pid is ``root`` (started at ``clock.epoch()``
    ``spawned``): SIGTERM, up to ``grace`` seconds to exit, then SIGKILL for the rest
    (Windows: terminated at once). With a cgroup (``confinement``), its members are the
    command's processes: no process-table search is needed, and none escapes."""
    if confinement is not None:
        empty = confinement.empty()
        if empty is not None and (empty or _end_confined(root, grace, confinement)):
            return
    if _nothing_left(root):
        return
    procs = _job_processes(root, spawned)
    if not procs:
        return
    if not _WINDOWS:
        _terminate(procs, confinement)
        _wait_gone(procs, grace)
    for _ in range(_KILL_ROUNDS):
        if not _WINDOWS:
            # Safe: the unreaped root keeps its pid, so group `root` is still the command's.
            try:
                os.killpg(root, signal.SIGKILL)
            except OSError:  # the group is empty
                pass
        procs = _job_processes(root, spawned)
        if not procs:
            return
        _signal_all(procs, kill=True)
        _wait_gone(procs, _KILL_WAIT)
    log.warning("pid %s: processes survived SIGKILL: %s", root, [p.pid for p in procs])


def _end_confined(root: int, grace: float, confinement: Confinement) -> bool:
    """The run's cgroup is not empty: unless it empties within :data:`_SETTLE`, SIGTERM to what
    is left, ``grace`` seconds, then kill the cgroup. True when nothing is left of the command
    (the unreaped ``root`` aside).

    The settling is for bubblewrap: its init reports the command's exit status to the monitor
    (the command's root process) before it exits itself, so right after the command's end its
    init is often still leaving the cgroup - in about one run in six of a burst of ``echo``
    jobs. Ending it by hand (its process looked up, no SIGTERM for a sandbox process, the grace
    waited in 20 ms steps, then the cgroup killed) cost more CPU and held the pool slot for
    20 ms or more; it is gone within a few milliseconds on its own."""
    for delay in _SETTLE:
        time.sleep(delay)
        if confinement.empty():
            return True
    procs = []
    for pid in confinement.pids():
        if pid == root and _is_zombie(pid):
            continue
        try:
            procs.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue
    _terminate(procs, confinement)
    _wait_gone(procs, grace)
    confinement.kill()
    return bool(confinement.empty())


def _is_zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _nothing_left(root: int) -> bool:
    """Linux fast path for the common end of a command: True when the command itself has
    exited (a zombie, not yet reaped) and no other process is in its session or group, and this process adopted
    no orphan - read straight from /proc/*/stat, a hundred times cheaper than the full
    search of :func:`_job_processes`. False (search fully) when unsure or not on Linux."""
    if not sys.platform.startswith("linux"):
        return False
    me = os.getpid()
    roots, adopting, _ = reaper.adoption()
    try:
        with open(f"/proc/{root}/stat", "rb") as fh:
            stat = fh.read()
        if stat[stat.rfind(b")") + 2 :].split()[0] != b"Z":
            return False  # the command itself still runs (a timeout or a cancel)
    except FileNotFoundError:
        pass  # already reaped
    except (OSError, IndexError):
        return False
    if adopting:
        # A subreaper adopts every orphan of its commands, so whatever is left of this one is
        # (under) a child of this process: nothing is left when its only live children are
        # the commands it runs (exited orphans are the reaper's). Reading its own children
        # costs O(children), where the scan below reads the stat of every process on the machine.
        children = reaper.live_children()
        if children is not None:
            return children <= roots | {root}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return False
    for entry in entries:
        if not entry.isdigit() or int(entry) == root:
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:  # gone meanwhile
            continue
        # pid (comm) state ppid pgrp session ...; comm may contain spaces and parentheses
        fields = stat[stat.rfind(b")") + 2 :].split()
        try:
            ppid, pgrp, session = int(fields[1]), int(fields[2]), int(fields[3])
        except (IndexError, ValueError):
            return False
        if session == root or pgrp == root:
            return False
        if adopting and ppid == me and int(entry) not in roots and fields[0] != b"Z":
            return False
    return True


def _job_processes(root: int, spawned: float) -> list[psutil.Process]:
    """The live processes belonging to the command whose pid is ``root``: the command itself,
    (POSIX) the members of its session and the orphans this process adopted from it, and
    all their descendants.

    The command comes first and parents before their children, so that signalling them in
    this order does not let a parent see a child die and start more work.
    """
    me = os.getpid()
    roots, adopting, busy_since = reaper.adoption()
    # Orphans are only attributed to a command while it is the only one running here.
    adopt, adopt_since = adopting and roots == {root}, busy_since - _CLOCK_SLACK
    if adopting and not _WINDOWS:
        descendants = _descendants(root, roots, adopt, adopt_since)
        if descendants is not None:
            return descendants
    table: dict[int, tuple[psutil.Process, bool]] = {}  # pid -> (process, zombie)
    children: dict[int, list[int]] = {}
    seeds = []
    for proc, ppid, zombie, created in _process_table():
        if _WINDOWS and created < spawned - _CLOCK_SLACK:
            continue  # Windows does not reparent: a ppid may name a dead, reused pid
        table[proc.pid] = (proc, zombie)
        children.setdefault(ppid, []).append(proc.pid)
        if proc.pid == root or (
            not _WINDOWS
            and (
                _session(proc.pid) == root
                or (adopt and ppid == me and proc.pid not in roots and created >= adopt_since)
            )
        ):
            seeds.append(proc.pid)
    found: dict[int, None] = {}  # ordered set
    queue = deque(sorted(seeds, key=lambda pid: pid != root))
    while queue:
        pid = queue.popleft()
        if pid not in found:
            found[pid] = None
            queue.extend(children.get(pid, ()))
    # An exited orphan is left to the reaper (hydra.execution.reaper), which collects it.
    return [table[pid][0] for pid in found if not table[pid][1]]


def _descendants(root: int, roots: set[int], adopt: bool, adopt_since: float) -> list[psutil.Process] | None:
    """:func:`_job_processes` for a subreaper (Linux), without reading the process table: every
    process a command leaves behind is then a descendant of this process - under the command,
    or under an orphan this process adopted - so the tree is read down from this process's own
    children (``/proc/<pid>/task/*/children``), at a cost of the tree's size, not the
    machine's. An adopted orphan belongs to ``root`` when it is in its session, or (``adopt``)
    when it started after ``adopt_since``. None when the kernel has no such files."""
    seeds = [root]
    for pid in _children(os.getpid()) or ():
        if pid == root or pid in roots:
            continue
        if _session(pid) == root or (adopt and _created(pid) >= adopt_since):
            seeds.append(pid)
    tree: dict[int, None] = {}  # ordered set
    queue = deque(seeds)
    while queue:
        pid = queue.popleft()
        if pid in tree:
            continue
        tree[pid] = None
        children = _children(pid)
        if children is None:
            if pid == root or _alive(pid):
                return None  # no CONFIG_PROC_CHILDREN (or unreadable): search the table
            continue
        queue.extend(children)
    procs = []
    for pid in tree:
        try:
            proc = psutil.Process(pid)
            if proc.status() != psutil.STATUS_ZOMBIE:  # an exited orphan is the reaper's
                procs.append(proc)
        except psutil.Error:
            continue
    return procs


def _children(pid: int) -> list[int] | None:
    """The children of ``pid`` (every thread's), or None when they cannot be read; [] when
    ``pid`` is gone."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return []
    except OSError:
        return None
    children: list[int] = []
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children", "rb") as fh:
                children.extend(int(child) for child in fh.read().split())
        except FileNotFoundError:
            if not os.path.exists(f"/proc/{pid}/task/{task}"):
                continue  # the thread ended meanwhile
            return None
        except (OSError, ValueError):
            return None
    return children


def _alive(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")


def _created(pid: int) -> float:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return 0.0


def _process_table() -> Iterator[tuple[psutil.Process, int, bool, float]]:
    """``(process, ppid, is_zombie, create_time)`` of every process that can be inspected.

    Fresh Process objects, not process_iter()'s shared ones: another thread may be
    iterating too, and its ``info`` would overwrite ours.
    """
    for pid in psutil.pids():
        try:
            proc = psutil.Process(pid)
            with proc.oneshot():
                row = proc, proc.ppid(), proc.status() == psutil.STATUS_ZOMBIE, proc.create_time()
        except psutil.Error:  # vanished, or not ours to inspect
            continue
        yield row


def _session(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:  # gone, or not ours to ask about
        return None


def _terminate(procs: list[psutil.Process], confinement: Confinement | None) -> None:
    """SIGTERM to the command's processes among ``procs``, not to the sandbox's own: bubblewrap
    dies of a SIGTERM at once, and its end (``--die-with-parent``, then its pid namespace's)
    SIGKILLs the command, which would never run its TERM handler - the grace would be for
    nothing. Once the command exits, the sandbox's processes exit with it."""
    sandbox = confinement.sandbox if confinement is not None else None
    if sandbox is not None:
        procs = [proc for proc in procs if not _runs(proc, sandbox)]
    _signal_all(procs, kill=False)


def _runs(proc: psutil.Process, executable: str) -> bool:
    try:
        return os.path.realpath(proc.exe()) == executable
    except (psutil.Error, OSError):
        return False


def _signal_all(procs: list[psutil.Process], *, kill: bool) -> None:
    """SIGKILL (``kill``) or SIGTERM to each of ``procs``; on Windows both terminate."""
    for proc in procs:
        try:
            if kill:
                proc.kill()
            else:
                proc.terminate()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass


def _wait_gone(procs: list[psutil.Process], timeout: float) -> None:
    """Waits up to ``timeout`` seconds until none of ``procs`` runs (zombies count as gone)."""
    deadline = time.monotonic() + timeout
    while True:
        procs = [proc for proc in procs if _is_live(proc)]
        if not procs or time.monotonic() >= deadline:
            return
        time.sleep(0.02)


def _is_live(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False

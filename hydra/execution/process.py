"""Runs one command on this machine and reports how it went.

Pure execution logic (no Celery, Flask or MongoDB): the shell executor turns a job into an
argv and an environment (``hydra.execution.command``), calls :func:`execute`, and reports
the :class:`~hydra.model.outcome.Outcome`.

A job's processes end with its command. On POSIX every command starts a new session (and
so a new process group) whose id is the command's pid. When the command ends - on its own,
by timeout or by cancellation - everything still running in that session, every orphan of
the command this process adopted (see ``hydra.execution.reaper.enable_subreaper``), and every descendant of
those get SIGTERM, then SIGKILL after ``kill_grace`` seconds. What escapes: a process
that leaves the session *and* loses its parent while this process is not a subreaper (init
adopts it), and one this process may not signal (setuid). If such a process holds the
command's output pipes, :func:`execute` stops reading them 2 s after the command's end
rather than wait for it. On Windows the command's descendants, found through their parent
links, are terminated at once (Windows has no SIGTERM). Which children of this process are
its commands, and who collects the orphans it adopts, is ``hydra.execution.reaper``.
"""

from __future__ import annotations

import io
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import IO, cast

import psutil

from hydra import clock
from hydra.execution import reaper
from hydra.execution.capture import CappedBuffer
from hydra.execution.command import CMD_PREFIX
from hydra.execution.isolation import Confinement
from hydra.model.outcome import Outcome
from hydra.model.status import RunStatus

log = logging.getLogger(__name__)

_WINDOWS = os.name == "nt"
_CHUNK = 64 * 1024
#: Longest sleep between checks of the command, its timeout and its cancel event.
_POLL_MAX = 0.05
#: How long the output pipes may stay open after the command's processes are gone.
_DRAIN_TIMEOUT = 2.0
#: SIGKILL passes over the tree; each catches what the previous one's victims forked.
_KILL_ROUNDS = 5
_KILL_WAIT = 1.0
#: psutil's create_time and clock.epoch() may disagree by up to a second (boot-time rounding).
_CLOCK_SLACK = 1.0


def execute(
    argv: list[str],
    *,
    env: dict[str, str],
    cwd: str | None,
    timeout: float | None,
    output_limit: int,
    on_output: Callable[[str, bytes], None] | None = None,
    cancel: threading.Event | None = None,
    kill_grace: float = 2.0,
    on_start: Callable[[int], None] | None = None,
    confinement: Confinement | None = None,
) -> Outcome:
    """Runs ``argv`` to its end and returns the :class:`Outcome`; never leaves its processes
    behind (see the module docstring).

    ``env`` is the command's whole environment and ``cwd`` its working directory (None: this
    process's). After ``timeout`` seconds (None: no limit) the command is killed and the
    outcome is ``timed_out``; once ``cancel`` is set (noticed within 0.05 s) it is killed and
    the outcome is ``cancelled``; a cancel set before the start means it never starts.
    Otherwise it is ``succeeded`` on exit code 0, else ``failed``. A command that cannot
    start (missing program or cwd, permission denied) is ``failed`` with ``returncode`` None
    and ``error`` saying why; those never raise.

    stdout and stderr are kept in :class:`~hydra.output.CappedBuffer` s of ``output_limit``
    bytes each. ``on_output(stream, chunk)`` (``"stdout"``/``"stderr"``) is called from a
    reader thread for every chunk as it arrives; its exceptions are logged and ignored. It
    is not called after this returns, but for a call already under way when a process
    outside the command's tree kept the pipes open (see the module docstring).
    ``on_start(pid)`` is called once the command runs (its exceptions are logged and ignored).

    ``confinement`` (``hydra.execution.isolation``): ``argv``, ``env`` and ``cwd`` were made
    with it already; at the end, what is left in the run's cgroup gets SIGTERM, ``kill_grace``
    seconds, then the cgroup is killed - every process of the run, wherever it went.
    """
    started_at, start, spawned = clock.utcnow(), time.monotonic(), clock.epoch()
    if cancel is not None and cancel.is_set():
        return _not_started(RunStatus.CANCELLED, "cancelled", started_at, start)
    try:
        proc = _spawn(argv, env, cwd, confinement.pass_fds if confinement is not None else ())
    except (OSError, ValueError) as exc:  # ValueError: e.g. a NUL byte in argv or env
        return _not_started(RunStatus.FAILED, _start_error(exc, argv[0], cwd), started_at, start)
    if on_start is not None:
        try:
            on_start(proc.pid)
        except Exception:
            log.exception("on_start hook failed")
    try:
        assert proc.stdout is not None and proc.stderr is not None  # both are PIPEs (_spawn)
        readers = [
            _Reader(name, pipe, output_limit, on_output)
            for name, pipe in (("stdout", proc.stdout), ("stderr", proc.stderr))
        ]
        status, error = _wait(proc, start, timeout, cancel)
    finally:  # also when this thread is interrupted (e.g. Celery's soft time limit)
        _end_processes(proc.pid, spawned, kill_grace, confinement)
        returncode = proc.wait()
        reaper.release(proc.pid)
    if status is None:
        status = RunStatus.SUCCEEDED if returncode == 0 else RunStatus.FAILED
        if returncode < 0:
            error = f"killed by signal {_signal_name(-returncode)}"
    deadline = time.monotonic() + _DRAIN_TIMEOUT
    held = [r.name for r in readers if not r.finish(deadline - time.monotonic())]
    if held:
        log.warning(
            "pid %s: %s still held open by a process outside the command's tree; its further output is not recorded",
            proc.pid,
            " and ".join(held),
        )
    out, err = readers[0].buffer, readers[1].buffer
    return Outcome(
        status=status,
        returncode=returncode,
        stdout=out.text(),
        stderr=err.text(),
        stdout_bytes=out.total,
        stderr_bytes=err.total,
        stdout_truncated=out.truncated,
        stderr_truncated=err.truncated,
        pid=proc.pid,
        started_at=started_at,
        finished_at=clock.utcnow(),
        duration=time.monotonic() - start,
        error=error,
    )


def end_session(pid: int, grace: float = 2.0) -> None:
    """Ends every process of a command started by :func:`execute` (its pid is ``pid``) from
    another process - e.g. the worker's main process, when the pool process that ran it
    died. SIGTERM, ``grace`` seconds, then SIGKILL, like the end of :func:`execute`."""
    _end_processes(pid, 0.0, grace)


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
        _end_processes(pid, 0.0, grace)
    return len(roots)


def _not_started(status: RunStatus, error: str, started_at: datetime, start: float) -> Outcome:
    return Outcome(
        status=status,
        returncode=None,
        stdout="",
        stderr="",
        stdout_bytes=0,
        stderr_bytes=0,
        stdout_truncated=False,
        stderr_truncated=False,
        pid=None,
        started_at=started_at,
        finished_at=clock.utcnow(),
        duration=time.monotonic() - start,
        error=error,
    )


def _spawn(argv: list[str], env: dict[str, str], cwd: str | None, pass_fds=()) -> subprocess.Popen:
    """Starts the command in its own session (POSIX) or process group (Windows), with the
    descriptors ``pass_fds`` open in it, as one of this process's commands (``reaper.spawn``)."""
    options: dict = {
        "stdin": subprocess.DEVNULL,
        "stdout": subprocess.PIPE,
        "stderr": subprocess.PIPE,
        "env": env,
        "cwd": cwd,
    }
    if _WINDOWS:
        options["creationflags"] = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)  # Windows only
        args: list[str] | str = _windows_command_line(argv)
    else:
        options["start_new_session"] = True
        options["pass_fds"] = tuple(pass_fds)
        args = argv
    # Started and noted at once, so neither another execute() nor the reaper takes it for an orphan.
    return reaper.spawn(lambda: subprocess.Popen(args, **options))


def _windows_command_line(argv: list[str]) -> str:
    """``argv`` as one Windows command line.

    ``cmd.exe /s /c`` does not parse the quoting :func:`subprocess.list2cmdline` produces:
    it strips the outer pair of quotes and takes the rest verbatim. So a ``cmd.exe`` argv
    from :func:`build_argv` gets its command wrapped in quotes, not escaped.
    """
    if len(argv) == 5 and tuple(a.lower() for a in argv[:4]) == CMD_PREFIX:
        return f'{subprocess.list2cmdline(argv[:4])} "{argv[4]}"'
    return subprocess.list2cmdline(argv)


def _start_error(exc: OSError | ValueError, program: str, cwd: str | None) -> str:
    if cwd is not None and not os.path.isdir(cwd):
        reason = "is not a directory" if os.path.exists(cwd) else "does not exist"
        return f"cwd {reason}: {cwd}"
    if isinstance(exc, ValueError):
        return f"cannot start {program}: {exc}"
    if cwd is not None and exc.filename == cwd:
        return f"cannot use cwd {cwd}: {exc.strerror}"
    if isinstance(exc, FileNotFoundError):
        return f"command not found: {program}"
    if isinstance(exc, PermissionError):
        return f"permission denied: {program}"
    return f"cannot start {program}: {exc.strerror or exc}"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


class _Reader:
    """Copies one of the command's pipes into a CappedBuffer (and to ``on_output``) from a
    daemon thread until EOF, or until :meth:`finish` gives up on it."""

    def __init__(self, name: str, pipe: IO[bytes], limit: int, on_output: Callable[[str, bytes], None] | None):
        self.name = name
        self.buffer = CappedBuffer(limit)
        # Popen's pipes are buffered readers: read1 returns what is there without waiting for more.
        self._pipe = cast(io.BufferedReader, pipe)
        self._on_output = on_output
        self._lock = threading.Lock()
        self._finished = False
        self._thread = threading.Thread(target=self._run, name=f"hydra-{name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with self._pipe:
            while chunk := self._pipe.read1(_CHUNK):
                with self._lock:
                    if self._finished:
                        return
                    self.buffer.write(chunk)
                if self._on_output is not None:
                    try:
                        self._on_output(self.name, chunk)
                    except Exception:
                        log.exception("on_output failed for %s; ignored", self.name)

    def finish(self, timeout: float) -> bool:
        """Waits up to ``timeout`` seconds for EOF, then stops recording either way (a
        thread still blocked on the pipe is abandoned). True when EOF was reached."""
        self._thread.join(max(timeout, 0.0))
        with self._lock:
            self._finished = True
        return not self._thread.is_alive()


def _wait(
    proc: subprocess.Popen, start: float, timeout: float | None, cancel: threading.Event | None
) -> tuple[RunStatus | None, str | None]:
    """Waits until the command exits -> ``(None, None)``, or must be stopped ->
    ``(status, error)``. Leaves the exited command unreaped, so its pid (which is also its
    session and process-group id) cannot be reused while its tree is cleaned up."""
    delay = 0.001  # doubles up to _POLL_MAX: short commands return quickly
    while not _has_exited(proc):
        if cancel is not None and cancel.is_set():
            return RunStatus.CANCELLED, "cancelled"
        if timeout is not None and time.monotonic() - start >= timeout:
            return RunStatus.TIMED_OUT, f"timed out after {timeout:g}s"
        if cancel is not None:
            cancel.wait(delay)
        else:
            time.sleep(delay)
        delay = min(delay * 2, _POLL_MAX)
    return None, None


def _has_exited(proc: subprocess.Popen) -> bool:
    if _WINDOWS:
        return proc.poll() is not None
    try:
        return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:  # someone else reaped it (Popen then reports returncode 0)
        return True


def _end_processes(root: int, spawned: float, grace: float, confinement: Confinement | None = None) -> None:
    """Ends every process of the command whose pid is ``root`` (started at ``clock.epoch()``
    ``spawned``): SIGTERM, up to ``grace`` seconds to exit, then SIGKILL for the rest
    (Windows: terminated at once). With a cgroup (``confinement``), its members are the
    command's processes: no process-table search is needed, and none escapes."""
    if confinement is not None and confinement.empty() is not None and _end_confined(root, grace, confinement):
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
    """SIGTERM to what is left in the run's cgroup, ``grace`` seconds, then kill the cgroup.
    True when nothing is left of the command (the unreaped ``root`` aside)."""
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

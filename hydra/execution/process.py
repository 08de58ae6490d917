"""Runs one command on this machine and reports how it went.

Pure execution logic (no Celery, Flask or MongoDB): the shell executor turns a job into an
argv and an environment (``hydra.execution.command``), calls :func:`execute`, and reports
the :class:`~hydra.model.outcome.Outcome`.

A job's processes end with its command. On POSIX every command starts a new session (and
so a new process group) whose id is the command's pid. When the command ends - on its own,
by timeout or by cancellation - everything still running in that session, every orphan of
the command this process adopted (see ``hydra.execution.reaper.enable_subreaper``), and every descendant of
those get SIGTERM, then SIGKILL after ``kill_grace`` seconds (``hydra.execution.tree``). What escapes: a process
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
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import IO, cast

from hydra import clock
from hydra.execution import reaper, tree
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
    with it already; right after the start it is admitted to its cgroups (a command that
    cannot be is ``failed`` before it runs anything); at the end, what is left in the run's
    cgroup gets SIGTERM, ``kill_grace`` seconds, then the cgroup is killed - every process
    of the run, wherever it went.
    """
    started_at, start, spawned = clock.utcnow(), time.monotonic(), clock.epoch()
    if cancel is not None and cancel.is_set():
        return _not_started(RunStatus.CANCELLED, "cancelled", started_at, start)
    try:
        proc = _spawn(argv, env, cwd, confinement.pass_fds if confinement is not None else ())
    except (OSError, ValueError) as exc:  # ValueError: e.g. a NUL byte in argv or env
        return _not_started(RunStatus.FAILED, _start_error(exc, argv[0], cwd), started_at, start)
    if confinement is not None:
        try:
            confinement.admit()
        except BaseException as exc:
            _abandon(proc)
            if not isinstance(exc, OSError):
                raise
            return _not_started(RunStatus.FAILED, f"cannot put the command in its cgroup: {exc}", started_at, start)
    if on_start is not None:
        try:
            on_start(proc.pid)
        except Exception:
            log.exception("on_start hook failed")
    output: _Pump | _Threads | None = None
    try:
        output = _output(proc, output_limit, on_output)
        status, error = output.wait(start, timeout, cancel)
    except BaseException:
        if output is not None:
            output.close()
        raise
    finally:  # also when this thread is interrupted (e.g. Celery's soft time limit)
        tree.end_tree(proc.pid, spawned, kill_grace, confinement)
        returncode = proc.wait()
        reaper.release(proc.pid)
    if status is None:
        status = RunStatus.SUCCEEDED if returncode == 0 else RunStatus.FAILED
        if returncode < 0:
            error = f"killed by signal {_signal_name(-returncode)}"
    held = output.finish(_DRAIN_TIMEOUT)
    if held:
        log.warning(
            "pid %s: %s still held open by a process outside the command's tree; its further output is not recorded",
            proc.pid,
            " and ".join(held),
        )
    out, err = output.buffers["stdout"], output.buffers["stderr"]
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


def _abandon(proc: subprocess.Popen) -> None:
    """Kills and collects a command whose confinement failed before it ran anything."""
    proc.kill()
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
    proc.wait()
    reaper.release(proc.pid)


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


def _output(proc: subprocess.Popen, limit: int, on_output: Callable[[str, bytes], None] | None) -> _Pump | _Threads:
    """What reads the command's pipes and waits for its exit: on Linux the calling thread
    itself (:class:`_Pump`); elsewhere a thread per pipe (:class:`_Threads`)."""
    assert proc.stdout is not None and proc.stderr is not None  # both are PIPEs (_spawn)
    pipes = {"stdout": proc.stdout, "stderr": proc.stderr}
    if hasattr(os, "pidfd_open"):
        try:
            return _Pump(os.pidfd_open(proc.pid), pipes, limit, on_output)
        except OSError:  # a kernel before 5.3, or a seccomp filter that refuses it
            pass
    return _Threads(proc, pipes, limit, on_output)


def _deliver(on_output: Callable[[str, bytes], None] | None, name: str, chunk: bytes) -> None:
    if on_output is not None:
        try:
            on_output(name, chunk)
        except Exception:
            log.exception("on_output failed for %s; ignored", name)


class _Pump:
    """Reads both pipes of a command and waits for its exit from the thread that runs it:
    one selector over the two pipes and a pidfd (Linux 5.3), which becomes readable when the
    command exits - without collecting it. So the exit wakes it at once (no poll), and a run
    starts no thread. The cancel event is looked at every ``_POLL_MAX`` seconds."""

    def __init__(
        self, pidfd: int, pipes: dict[str, IO[bytes]], limit: int, on_output: Callable[[str, bytes], None] | None
    ):
        self.buffers = {name: CappedBuffer(limit) for name in pipes}
        self._pidfd, self._pipes, self._on_output = pidfd, dict(pipes), on_output
        self._exited = False
        self._selector = selectors.DefaultSelector()
        for name, pipe in pipes.items():
            self._selector.register(pipe.fileno(), selectors.EVENT_READ, name)
        self._selector.register(pidfd, selectors.EVENT_READ, None)

    def wait(
        self, start: float, timeout: float | None, cancel: threading.Event | None
    ) -> tuple[RunStatus | None, str | None]:
        """Until the command exits -> ``(None, None)``, or must be stopped -> ``(status,
        error)``; its output is read meanwhile. Leaves the exited command unreaped, so its pid
        (also its session and process-group id) cannot be reused while its tree is cleaned up."""
        while not self._exited:
            if cancel is not None and cancel.is_set():
                return RunStatus.CANCELLED, "cancelled"
            wait = _POLL_MAX if cancel is not None else None
            if timeout is not None:
                left = start + timeout - time.monotonic()
                if left <= 0:
                    return RunStatus.TIMED_OUT, f"timed out after {timeout:g}s"
                wait = left if wait is None else min(wait, left)
            self._step(wait)
        return None, None

    def finish(self, timeout: float) -> list[str]:
        """Reads on until both pipes reach EOF, for up to ``timeout`` seconds; returns the
        names of those still held open (their further output is not recorded)."""
        deadline = time.monotonic() + timeout
        while self._pipes:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._step(left)
        held = list(self._pipes)
        self.close()
        return held

    def close(self) -> None:
        if self._pidfd < 0:
            return
        for pipe in self._pipes.values():
            pipe.close()
        self._pipes.clear()
        self._selector.close()
        os.close(self._pidfd)
        self._pidfd = -1

    def _step(self, wait: float | None) -> None:
        for key, _ in self._selector.select(wait):
            if key.data is None:  # the pidfd: the command exited
                self._exited = True
                self._selector.unregister(key.fd)
                continue
            try:
                chunk = os.read(key.fd, _CHUNK)
            except OSError:
                chunk = b""
            if not chunk:  # EOF: every writer closed it
                self._selector.unregister(key.fd)
                self._pipes.pop(key.data).close()
                continue
            self.buffers[key.data].write(chunk)
            _deliver(self._on_output, key.data, chunk)


class _Threads:
    """Where there is no pidfd (Windows, macOS): a daemon thread per pipe copies it until EOF,
    and the exit is polled (1 ms, doubling up to ``_POLL_MAX``)."""

    def __init__(
        self,
        proc: subprocess.Popen,
        pipes: dict[str, IO[bytes]],
        limit: int,
        on_output: Callable[[str, bytes], None] | None,
    ):
        self._proc = proc
        self._readers = [_Reader(name, pipe, limit, on_output) for name, pipe in pipes.items()]
        self.buffers = {reader.name: reader.buffer for reader in self._readers}

    def wait(
        self, start: float, timeout: float | None, cancel: threading.Event | None
    ) -> tuple[RunStatus | None, str | None]:
        """As :meth:`_Pump.wait`."""
        delay = 0.001  # doubles up to _POLL_MAX: short commands return quickly
        while not _has_exited(self._proc):
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

    def finish(self, timeout: float) -> list[str]:
        deadline = time.monotonic() + timeout
        return [r.name for r in self._readers if not r.finish(deadline - time.monotonic())]

    def close(self) -> None:
        for reader in self._readers:
            reader.finish(0)


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
                _deliver(self._on_output, self.name, chunk)

    def finish(self, timeout: float) -> bool:
        """Waits up to ``timeout`` seconds for EOF, then stops recording either way (a
        thread still blocked on the pipe is abandoned). True when EOF was reached."""
        self._thread.join(max(timeout, 0.0))
        with self._lock:
            self._finished = True
        return not self._thread.is_alive()


def _has_exited(proc: subprocess.Popen) -> bool:
    if _WINDOWS:
        return proc.poll() is not None
    try:
        return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:  # someone else reaped it (Popen then reports returncode 0)
        return True

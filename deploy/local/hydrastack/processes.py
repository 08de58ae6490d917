"""Generic process supervision: detached processes with pidfiles and logs under one root.

Knows nothing about Redis, MongoDB or Celery (``hydrastack.services`` builds Hydra's
services on top). A :class:`Supervisor` owns a root directory:

* ``run/<name>.pid`` (the pid) and ``run/<name>.json`` (argv, process start time,
  configuration digest, log offset, whatever the caller adds),
* ``logs/<name>.log`` (appended to across restarts).

Each process is started detached in its own session, so stopping one stops its process
group. A pidfile counts only while it names a live process that started when we started it
and whose command line matches: stale pidfiles (process gone, or its pid reused by another
program) are ignored and replaced.

The pure helpers it builds on (process identity, pidfiles, log tails) are in
``hydrastack.identity``; ports are in ``hydrastack.ports``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import psutil

from hydrastack.identity import (
    alive,
    cmdline_matches,
    config_digest,
    group_members,
    read_pidfile,
    read_tail,
    start_ticks,
    write_atomic,
)


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


# --- the supervisor -------------------------------------------------------------------------


class Supervisor:
    """Named detached processes under ``root`` (``run/`` pidfiles, ``logs/`` logs).

    Subclasses say more about particular names through the hooks ``check`` (health),
    ``_fallback_argv`` (the command line a bare pidfile must show) and ``_external``
    (a name with no process of ours to watch).
    """

    #: Appended to "cannot start NAME: ..." when the program cannot be executed.
    spawn_hint = ""

    def __init__(self, root: Path):
        self.root = Path(root).absolute()
        #: Called with progress messages ("redis: started ..."); the CLI sets it to print.
        self.echo: Callable[[str], None] | None = None
        self._popen: dict[str, subprocess.Popen] = {}

    # --- paths ---------------------------------------------------------------------------

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    def pidfile(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def _metafile(self, name: str) -> Path:
        return self.run_dir / f"{name}.json"

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def _say(self, message: str) -> None:
        if self.echo is not None:
            self.echo(message)

    # --- pidfiles ------------------------------------------------------------------------

    def _meta(self, name: str) -> dict | None:
        try:
            return json.loads(self._metafile(name).read_text())
        except (OSError, ValueError):
            return None

    def _fallback_argv(self, name: str) -> list[str] | None:
        """The command to compare with when a pidfile has no metadata (None: not ours)."""
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
        return read_tail(self.log_path(name), lines)

    # --- starting ------------------------------------------------------------------------

    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: dict[str, str | None] | None = None,
        port: int | None = None,
        cwd: Path | None = None,
        meta: dict | None = None,
    ) -> Proc:
        """Start ``argv`` detached as ``name`` (new session, log appended, pidfile written).

        ``env`` is added to os.environ, a None value removing the variable (and is part of
        the recorded configuration digest);
        ``cwd`` defaults to the current directory; ``meta`` is added to ``run/<name>.json``.
        No checks: a running ``name`` is not looked at.
        """
        for directory in (self.run_dir, self.log_dir):
            directory.mkdir(parents=True, exist_ok=True)
        argv = [str(a) for a in argv]
        cwd = Path(cwd) if cwd else Path.cwd()
        extra_env = dict(env or {})
        full_env = {key: value for key, value in {**os.environ, **extra_env}.items() if value is not None}
        log = self.log_path(name)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with open(log, "ab") as fh:
            fh.write(f"\n===== {stamp} hydrastack: starting {name}: {' '.join(argv)}\n".encode())
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
                raise StackError(f"cannot start {name}: {argv[0]}: {exc}{self.spawn_hint}", name) from exc
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
            "config": config_digest(argv, extra_env, cwd),
            **(meta or {}),
        }
        write_atomic(self._metafile(name), json.dumps(record, indent=1))
        write_atomic(self.pidfile(name), f"{popen.pid}\n")
        self._popen[name] = popen
        return Proc(name, popen.pid, argv, log, port)

    # --- health --------------------------------------------------------------------------

    def _external(self, name: str) -> bool:
        """True for a name that is not a process of ours (nothing to watch, no log)."""
        return False

    def check(self, name: str) -> Health:
        """Is ``name`` started / healthy right now? Here running counts as healthy."""
        if not self.is_running(name):
            return Health(False, False, "not running")
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
                if not self._external(name) and not self.is_running(name):
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
                    "" if self._external(name) else self.log_tail(name, 40),
                )
            time.sleep(0.25)

    # --- stopping ------------------------------------------------------------------------

    def _stop_many(self, stop_names: Sequence[str], sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        """Signal the leaders, wait for their groups to go; SIGKILL what is left at the deadline."""
        targets: dict[str, tuple[psutil.Process, list[psutil.Process]]] = {}
        for name in stop_names:
            proc = self._live(name)
            if proc is None:
                pid = read_pidfile(self.pidfile(name))
                if pid is not None and not psutil.pid_exists(pid):
                    # The leader is gone; members of its group may remain (our pgid cannot be
                    # reused while the group exists).
                    for member in group_members(pid):
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
            return group_members(proc.pid)

        deadline = time.monotonic() + timeout
        # 1. leaders exit (they stop their own children: gunicorn, celery prefork)
        while time.monotonic() < deadline and any(alive(p) for p, _ in targets.values()):
            self._reap_all()
            time.sleep(0.1)
        # 2. orphans left in a group whose leader exited: SIGTERM, a short grace
        orphaned = [p for p, _ in targets.values() if not alive(p) and group_alive(p)]
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
            leftovers = group_alive(proc) + [d for d in descendants if alive(d)]
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
            if not any(alive(p) or group_alive(p) for p, _ in targets.values()):
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
                if not alive(proc) and not group_members(pgid):
                    break
                time.sleep(0.05)

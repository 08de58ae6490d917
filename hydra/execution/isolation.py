"""Where and as whom a command runs: an unprivileged OS user, a fresh directory, its own
cgroup and (where bubblewrap is installed) its own pid and mount namespaces.

The worker builds one :class:`Policy` at start-up from its settings and checks it (a worker
that would run jobs as root without the operator's opt-in does not start). For each run it
first asks :func:`refusal` (a job whose OS user or ``cwd`` this worker does not allow is
refused before anything runs), then :func:`confine` makes the run's :class:`Confinement`:

* **OS user.** A worker running as root runs commands as ``HYDRA_RUN_AS`` (default
  ``hydra-job``, which ``make install`` creates) - or, with ``HYDRA_USER_MAP``
  (``alice=alice,bob=svc-bob,*=hydra-job``), as the OS user mapped to the job's Hydra user
  (``*`` is everyone else; without it, the others run as ``HYDRA_RUN_AS``). Root only when
  ``HYDRA_ALLOW_ROOT=true``. The switch is ``setpriv`` (util-linux): uid, gid and the user's
  groups, no capabilities (bounding set emptied too) and ``no_new_privs``, so a setuid
  program cannot get root back. A worker that does not run as root runs commands as itself.
* **Directory.** A fresh ``<HYDRA_WORK_ROOT>/<worker>/<run>`` (mode 0700, owned by the
  command's user, under parents it may pass through but not list) is its working directory
  and ``HOME``, and is removed with everything in it when the run ends. A job's ``cwd`` must
  lie under one of ``HYDRA_CWD_ROOTS``.
* **cgroup** (``hydra.execution.cgroups``): timeout, cancel and a dead pool process kill
  every process of the run; a job's ``resources`` are its limits (``hydra.execution.limits``).
  Every process of the command is in it before the command starts (:meth:`Confinement.admit`).
* **Sandbox** (``HYDRA_SANDBOX``: ``auto`` uses bubblewrap when it works here; ``bwrap``
  requires it; ``none``; ``hydra.execution.sandbox``): the command runs in new pid and IPC
  namespaces and a new session, with the file system read-only but for its own directory,
  the ``cwd`` roots and private ``/tmp``, ``/var/tmp`` and ``/dev/shm``; the other runs'
  directories are hidden, and user namespaces are not available to it.

The fallback, on a machine without bubblewrap, cgroups or root: the same environment
scrubbing and fresh directory (``TMPDIR`` points into it), and the process-tree, session and
subreaper killing of ``hydra.execution.tree``; but then runs of the same OS user can see
each other's processes (map Hydra users to distinct OS users there), and a process that
leaves the session, is orphaned while its pool process is dead and clears ``HYDRA_RUN_ID``
from its environment can outlive its run. :meth:`Policy.not_enforced` lists what a worker's
machine does not give; the worker logs it at start-up.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hydra.execution import cgroups, sandbox
from hydra.execution.limits import Limits

log = logging.getLogger(__name__)

#: The default OS user of commands on a root worker (created by ``make install``).
DEFAULT_RUN_AS = "hydra-job"


class IsolationError(ValueError):
    """The worker's isolation settings cannot be honoured (the worker does not start)."""


@dataclass(frozen=True)
class OsUser:
    name: str
    uid: int
    gid: int


def _lookup(name: str) -> OsUser | None:
    try:
        import pwd
    except ImportError:  # Windows
        return None
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    return OsUser(entry.pw_name, entry.pw_uid, entry.pw_gid)


def parse_user_map(text: str | None) -> dict[str, str]:
    """``"alice=alice, bob=svc-bob, *=nobody"`` -> {"alice": "alice", ...}; ValueError on a bad entry."""
    mapping: dict[str, str] = {}
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        hydra_user, sep, os_user = (part.strip() for part in item.partition("="))
        if not sep or not hydra_user or not os_user:
            raise IsolationError(f"HYDRA_USER_MAP: {item!r} is not <hydra user>=<OS user>")
        mapping[hydra_user] = os_user
    return mapping


def parse_roots(text: str | None) -> tuple[str, ...]:
    roots = []
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        if not os.path.isabs(item):
            raise IsolationError(f"HYDRA_CWD_ROOTS: {item!r} is not an absolute path")
        roots.append(os.path.realpath(item))
    return tuple(roots)


def default_work_root(is_root: bool) -> Path:
    """Root: /var/lib/hydra/runs (not under /tmp, where anyone could plant a symlink first);
    otherwise a directory of this user's under the temporary directory."""
    if is_root:
        return Path("/var/lib/hydra/runs")
    return Path(tempfile.gettempdir()) / f"hydra-runs-{os.getuid() if hasattr(os, 'getuid') else 'user'}"


@dataclass(frozen=True)
class Policy:
    """How this worker isolates commands (see the module docstring)."""

    #: False when the worker cannot switch users (it does not run as root, or not on POSIX).
    switch_users: bool = False
    run_as: str = DEFAULT_RUN_AS
    user_map: Mapping[str, str] = field(default_factory=dict)
    allow_root: bool = False
    cwd_roots: tuple[str, ...] = ()
    work_root: Path = field(default_factory=lambda: default_work_root(False))
    bwrap: str | None = None
    #: The seccomp program that keeps user namespaces from sandboxed commands (hydra.execution.sandbox).
    syscall_filter: bytes | None = field(default=None, repr=False)
    #: Why there is no syscall_filter although there is a sandbox.
    no_filter: str | None = None
    setpriv: str | None = None
    cgroup: cgroups.Kind | None = None

    @classmethod
    def from_settings(cls, settings, *, probe: bool = True) -> Policy:
        """The policy the settings ask for, checked against this machine; raises IsolationError."""
        is_root = hasattr(os, "geteuid") and os.geteuid() == 0
        user_map = parse_user_map(settings.user_map)
        if user_map and not is_root:
            raise IsolationError("HYDRA_USER_MAP needs a worker running as root (it switches users)")
        work_root = Path(settings.work_root) if settings.work_root else default_work_root(is_root)
        if not work_root.is_absolute():
            raise IsolationError(f"HYDRA_WORK_ROOT: {work_root} is not an absolute path")
        mode = settings.sandbox
        if mode not in ("auto", "bwrap", "none"):
            raise IsolationError(f"HYDRA_SANDBOX must be auto, bwrap or none, not {mode!r}")
        bwrap = shutil.which("bwrap") if mode != "none" and os.name == "posix" else None
        syscall_filter, no_filter = None, None
        if bwrap:
            try:
                syscall_filter = sandbox.compile_filter()
            except sandbox.FilterUnavailable as exc:
                no_filter = str(exc)
        if bwrap and probe and not sandbox.bwrap_works(bwrap, syscall_filter):
            bwrap = None
        if mode == "bwrap" and bwrap is None:
            raise IsolationError("HYDRA_SANDBOX=bwrap, but bubblewrap (bwrap) is missing or does not work here")
        try:
            cgroup = cgroups.detect(settings.cgroup) if is_root or settings.cgroup != "auto" else None
        except ValueError as exc:
            raise IsolationError(str(exc)) from None
        setpriv = shutil.which("setpriv") if is_root else None
        if is_root and setpriv is None:
            raise IsolationError("a root worker needs setpriv (util-linux) to run commands as another user")
        policy = cls(
            switch_users=is_root,
            run_as=settings.run_as or DEFAULT_RUN_AS,
            user_map=user_map,
            allow_root=bool(settings.allow_root),
            cwd_roots=parse_roots(settings.cwd_roots),
            work_root=work_root,
            bwrap=bwrap,
            syscall_filter=syscall_filter if bwrap else None,
            no_filter=no_filter,
            setpriv=setpriv,
            cgroup=cgroup,
        )
        if is_root:  # a job of an unmapped user runs as run_as: it must exist; nobody runs as root unasked
            reason = policy._user_refusal(policy.os_user_name(None))
            if reason:
                raise IsolationError(reason)
            for name in user_map.values():
                found = _lookup(name)
                if found is not None and found.uid == 0 and not policy.allow_root:
                    raise IsolationError(f"HYDRA_USER_MAP maps to root ({name!r}) without HYDRA_ALLOW_ROOT=true")
        return policy

    @property
    def can_limit(self) -> bool:
        """Whether runs' memory and cpu can be limited (a cgroup with those controllers)."""
        return self.cgroup is not None and self.cgroup.can_limit

    def describe(self) -> dict:
        return {
            "run_as": self.run_as if self.switch_users else "(the worker's own user)",
            "user_map": dict(self.user_map),
            "allow_root": self.allow_root,
            "cwd_roots": list(self.cwd_roots),
            "work_root": str(self.work_root),
            "sandbox": "bwrap" if self.bwrap else "none",
            "user_namespaces": "blocked (seccomp)" if self.syscall_filter is not None else "allowed",
            "cgroup": self.cgroup.name if self.cgroup else "none",
            "resource_limits": self.can_limit,
            "not_enforced": self.not_enforced(),
        }

    def not_enforced(self) -> list[str]:
        """What this worker cannot give its commands here, each with its consequence."""
        gaps = []
        if not self.switch_users:
            gaps.append("unprivileged OS user: commands run as the worker's own user (the worker is not root)")
        if self.bwrap is None:
            gaps += [
                "sandbox (no working bubblewrap): runs of one OS user can see each other's processes "
                "and environments, and read each other's directories",
                "read-only file system: commands may write wherever their OS user may",
                "private /tmp: TMPDIR is the run's directory, but /tmp is the machine's",
                "user namespaces off: commands may create them (unshare -r) and be root in them",
            ]
        elif self.syscall_filter is None:
            gaps.append(f"user namespaces off ({self.no_filter}): commands may create them (unshare -r)")
        if self.cgroup is None:
            gaps.append(
                "a cgroup per run: a daemon that leaves its session and clears HYDRA_RUN_ID "
                "can outlive its run if its pool process dies"
            )
        return gaps

    def os_user_name(self, hydra_user: str | None) -> str:
        if hydra_user is not None and hydra_user in self.user_map:
            return self.user_map[hydra_user]
        return self.user_map.get("*", self.run_as)

    def _user_refusal(self, name: str) -> str | None:
        found = _lookup(name)
        if found is None:
            return f"no OS user {name!r} on this worker (HYDRA_RUN_AS / HYDRA_USER_MAP)"
        if found.uid == 0 and not self.allow_root:
            return f"the job would run as root ({name!r}); a worker runs jobs as root only with HYDRA_ALLOW_ROOT=true"
        return None

    def os_user(self, hydra_user: str | None) -> OsUser | None:
        """The OS user a job of ``hydra_user`` runs as (None: the worker's own); IsolationError
        when it may not run here."""
        if not self.switch_users:
            return None
        name = self.os_user_name(hydra_user)
        reason = self._user_refusal(name)
        if reason:
            raise IsolationError(reason)
        found = _lookup(name)
        assert found is not None
        return found

    def cwd_refusal(self, cwd: str | None) -> str | None:
        if cwd is None:
            return None
        if not os.path.isabs(cwd):
            return f"cwd {cwd!r} is not an absolute path"
        if not self.cwd_roots:
            return "this worker allows no cwd (it declares no HYDRA_CWD_ROOTS); each run gets a fresh directory"
        real = os.path.realpath(cwd)
        for root in self.cwd_roots:
            if real == root or real.startswith(root.rstrip(os.sep) + os.sep):
                return None
        return f"cwd {cwd!r} is not under this worker's HYDRA_CWD_ROOTS ({', '.join(self.cwd_roots)})"


def refusal(message: dict, policy: Policy) -> str | None:
    """Why this worker may not run the (validated) job message as the policy says; None if it may."""
    if (message.get("executor") or "shell") != "shell":
        return None  # a webhook runs no command (hydra.execution.egress guards where it goes)
    if Limits.of(message.get("resources")) is not None and not policy.can_limit:
        return "this worker cannot enforce resource limits (no memory and cpu cgroup controllers)"
    try:
        policy.os_user(message.get("user"))
    except IsolationError as exc:
        return str(exc)
    return policy.cwd_refusal(message.get("cwd"))


def _safe(name: str) -> str:
    return name.replace(os.sep, "_").replace("\0", "_") or "_"


class Confinement:
    """One run's user, directory, cgroup and sandbox. ``argv`` and ``environment`` say how
    to start its command, ``kill`` ends every process of it, ``close`` (also on exit of a
    ``with``) kills what is left and removes the directory and the cgroup."""

    def __init__(
        self,
        policy: Policy,
        *,
        worker_id: str,
        run_id: str,
        hydra_user: str | None,
        cwd: str | None,
        limits: Limits | None = None,
    ):
        self.policy = policy
        self.user = policy.os_user(hydra_user)
        self.workdir = policy.work_root / _safe(worker_id) / _safe(run_id)
        self.cwd = cwd or str(self.workdir)
        self.limits = limits
        if limits is not None and not policy.can_limit:
            raise IsolationError("this worker cannot enforce resource limits (no memory and cpu cgroup controllers)")
        self.cgroup = policy.cgroup.run(worker_id, run_id, limits) if policy.cgroup else None
        self._filter_fd: int | None = None
        self._gate: sandbox.Gate | None = None
        self._closed = False

    def __enter__(self) -> Confinement:
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self) -> None:
        for directory in (self.policy.work_root, self.workdir.parent):
            directory.mkdir(mode=0o711, parents=True, exist_ok=True)
        self.workdir.mkdir(mode=0o700)
        if self.user is not None:
            os.chown(self.workdir, self.user.uid, self.user.gid)
        if self.cgroup is not None:
            self.cgroup.create()
        if self.policy.bwrap and self.policy.syscall_filter is not None:
            self._filter_fd = sandbox.filter_fd(self.policy.syscall_filter)
        if self.policy.bwrap and self.cgroup is not None:
            self._gate = sandbox.Gate()

    @property
    def pass_fds(self) -> tuple[int, ...]:
        """The descriptors the command must inherit (what :meth:`argv` names in it)."""
        fds = (self._filter_fd,) if self._filter_fd is not None else ()
        return fds + (self._gate.pass_fds if self._gate is not None else ())

    def argv(self, argv: list[str]) -> list[str]:
        """``argv`` behind the cgroup join (a shell; in a sandbox :meth:`admit`), sandbox, user switch."""
        chain: list[str] = []
        if self.cgroup is not None and self._gate is None:
            chain += self.cgroup.join_argv()
        if self.policy.bwrap:
            chain += sandbox.bwrap_argv(
                self.policy.bwrap,
                work_root=self.policy.work_root,
                workdir=self.workdir,
                cwd_roots=self.policy.cwd_roots,
                cwd=self.cwd,
                filter_fd=self._filter_fd,
                gate=self._gate,
            )
        if self.user is not None and self.user.uid != os.geteuid() and self.policy.setpriv:
            chain += [
                self.policy.setpriv,
                f"--reuid={self.user.uid}",
                f"--regid={self.user.gid}",
                "--init-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
                "--no-new-privs",
                "--",
            ]
        return chain + list(argv)

    def admit(self) -> None:
        """Right after the start: the held sandbox into the run's cgroups, then let go
        (``sandbox.Gate``); OSError when it cannot be (it was killed, nothing of it ran)."""
        gate, self._gate = self._gate, None
        if gate is not None and self.cgroup is not None:
            gate.admit(self.cgroup.add)

    def environment(self, env: dict[str, str]) -> dict[str, str]:
        """``env`` with the run's own home, user and temporary directory."""
        env = dict(env)
        env["HOME"] = str(self.workdir)
        if self.user is not None:
            env["USER"] = env["LOGNAME"] = self.user.name
        tmp = "/tmp" if self.policy.bwrap else str(self.workdir)
        for name in ("TMPDIR", "TMP", "TEMP"):
            env[name] = tmp
        return env

    def pids(self) -> list[int]:
        return self.cgroup.pids() if self.cgroup is not None else []

    @property
    def sandbox(self) -> str | None:
        """The sandbox's executable (bubblewrap), whose own processes wrap the command's: they
        get no SIGTERM of their own when the run ends (``hydra.execution.tree``)."""
        return os.path.realpath(self.policy.bwrap) if self.policy.bwrap else None

    def empty(self) -> bool | None:
        """True when no process of the run is left, None when that cannot be told (no cgroup)."""
        return self.cgroup.empty() if self.cgroup is not None else None

    def kill(self) -> None:
        if self.cgroup is not None:
            self.cgroup.kill()

    def out_of_memory(self) -> bool:
        """Whether the OOM killer ended a process of the run (over its memory limit)."""
        return self.limits is not None and self.cgroup is not None and self.cgroup.oom_kills() > 0

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._filter_fd is not None:
            os.close(self._filter_fd)
            self._filter_fd = None
        if self._gate is not None:
            self._gate.close()
        if self.cgroup is not None:
            self.cgroup.remove()
        shutil.rmtree(self.workdir, ignore_errors=True)


def end_run(policy: Policy, worker_id: str, run_id: str) -> bool:
    """From another process (the worker's main one, after a pool process died): kill every
    process of the run and remove its cgroup and directory. True when it had a cgroup with
    processes in it."""
    had = False
    if policy.cgroup is not None:
        group = policy.cgroup.run(worker_id, run_id)
        had = not group.empty()
        group.remove()
    shutil.rmtree(policy.work_root / _safe(worker_id) / _safe(run_id), ignore_errors=True)
    return had


def end_worker_leftovers(policy: Policy, worker_id: str) -> int:
    """At a worker's start: kill what runs of its previous process left behind; returns how
    many run cgroups still had processes."""
    ended = 0
    if policy.cgroup is not None:
        for group in policy.cgroup.runs_of(worker_id):
            ended += not group.empty()
            group.remove()
    shutil.rmtree(policy.work_root / _safe(worker_id), ignore_errors=True)
    return ended


def release_worker(policy: Policy, worker_id: str) -> None:
    """At a worker's warm shutdown: remove its (empty) cgroup and work directories."""
    if policy.cgroup is not None:
        for path in policy.cgroup.worker_dirs(worker_id):
            try:
                path.rmdir()
            except OSError:  # a run's cgroup is still there (it is ended at the next start)
                pass
    try:
        (policy.work_root / _safe(worker_id)).rmdir()
    except OSError:
        pass

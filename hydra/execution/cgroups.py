"""One cgroup per run: every process of a command can be found and killed, whatever it did.

A command's processes can leave its session, lose their parent, clear their environment
(``(setsid env -i sleep 1000 &)``) and outlive the pool process that started them; a cgroup
still holds them all, because a process cannot leave its cgroup without write access to
another one (the cgroups Hydra makes belong to root; commands run unprivileged). So a
timeout, a cancel, or the death of the pool process (``end_run`` from the worker's main
process) kills everything of the run, and a worker's start kills what its previous process
left behind (``end_worker_leftovers``).

Two kinds, picked by ``HYDRA_CGROUP`` (``auto``, ``v2``, ``v1``, ``none``):

* **v2** (the unified hierarchy): ``<mount>/hydra/<worker>/<run>``; killed with
  ``cgroup.kill`` (Linux 5.14+), else by freezing it (``cgroup.freeze``) and SIGKILLing
  each member.
* **v1**: the ``freezer`` and ``pids`` controllers, a ``hydra/<worker>/<run>`` cgroup in
  each; killed by freezing it (``freezer.state``), SIGKILLing each member, thawing.

Resource limits (``hydra.execution.limits``): a run whose job sets ``resources`` also gets a
cgroup in the v1 ``memory``, ``cpu`` and ``cpuacct`` controllers (joined like the others), or
has the limits written in its one v2 directory. :attr:`Kind.can_limit` says whether this
machine gives those controllers; the worker's profile advertises it.

``auto`` takes v2 when it is the machine's only hierarchy, else v1 when both controllers are
mounted, else a hybrid machine's unified hierarchy when it has ``cgroup.kill``; else none.
Every process of a command is in its run's cgroups before the command starts, so nothing it
forks can be outside them. In a bubblewrap sandbox the pool process puts the sandbox's one
process there while bubblewrap holds it back (:meth:`RunCgroup.add`,
``hydra.execution.sandbox.Gate``); without one, the command line is prefixed by
:meth:`RunCgroup.join_argv` (a ``/bin/sh`` that writes its own pid into the cgroups, then
execs the rest). Without cgroups (no
privileges, no Linux) Hydra falls back on sessions, the subreaper and ``HYDRA_RUN_ID``
(``hydra.execution.tree``) - and on bubblewrap's pid namespace when it runs commands
in one (``hydra.execution.isolation``).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import time
from pathlib import Path

from hydra.execution import limits as files
from hydra.execution.limits import Limits

log = logging.getLogger(__name__)

#: The directory under each hierarchy holding Hydra's cgroups.
BASE = "hydra"
V1_CONTROLLERS = ("freezer", "pids")
#: v1 controllers of resource limits (cpuacct: the cpu time used; optional).
V1_LIMIT_CONTROLLERS = ("memory", "cpu", "cpuacct")
#: Writes the pid of the shell itself ("0" means the writer) into each file up to "--", then
#: execs the rest of its arguments: the command starts inside its run's cgroups.
JOIN_SCRIPT = 'for f; do [ "$f" = -- ] && { shift; break; }; echo 0 > "$f" || exit 126; shift; done; exec "$@"'
_POLL = 0.01


def _mounts() -> list[tuple[str, str, set[str]]]:
    """(mount point, fs type, options) of the cgroup file systems."""
    found = []
    try:
        with open("/proc/mounts", encoding="utf-8") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) >= 4 and parts[2] in ("cgroup", "cgroup2"):
                    found.append((parts[1], parts[2], set(parts[3].split(","))))
    except OSError:
        pass
    return found


def detect(mode: str = "auto") -> Kind | None:
    """The cgroup kind to use (None: none usable, or ``mode`` is ``none``). Raises ValueError
    when ``mode`` names a kind this machine cannot give."""
    if mode == "none" or not os.path.exists("/proc/mounts"):
        return None
    if mode not in ("auto", "v1", "v2"):
        raise ValueError(f"HYDRA_CGROUP must be auto, v2, v1 or none, not {mode!r}")
    mounts = _mounts()
    unified = [point for point, kind, _ in mounts if kind == "cgroup2"]
    v1 = {c: point for point, kind, options in mounts if kind == "cgroup" for c in V1_CONTROLLERS if c in options}
    pure_v2 = unified and not any(kind == "cgroup" for _, kind, _ in mounts)
    v2_kind = V2(Path(unified[0])) if unified and os.access(unified[0], os.W_OK) else None
    v1_kind = (
        V1({c: Path(p) for c, p in v1.items()}, _v1_limit_mounts(mounts))
        if len(v1) == len(V1_CONTROLLERS) and all(os.access(p, os.W_OK) for p in v1.values())
        else None
    )
    if mode == "v2":
        if v2_kind is None:
            raise ValueError("HYDRA_CGROUP=v2, but no writable cgroup2 hierarchy is mounted")
        return v2_kind
    if mode == "v1":
        if v1_kind is None:
            raise ValueError("HYDRA_CGROUP=v1, but the freezer and pids controllers are not mounted writable")
        return v1_kind
    if pure_v2 and v2_kind is not None:
        return v2_kind
    if v1_kind is not None:
        return v1_kind
    if v2_kind is not None and (Path(unified[0]) / "cgroup.kill").exists():
        return v2_kind
    return None


def _v1_limit_mounts(mounts: list[tuple[str, str, set[str]]]) -> dict[str, Path]:
    """The writable v1 limit controllers' mount points; empty unless memory and cpu are both there."""
    found = {
        c: Path(point)
        for point, kind, options in mounts
        if kind == "cgroup" and os.access(point, os.W_OK)
        for c in V1_LIMIT_CONTROLLERS
        if c in options
    }
    return found if "memory" in found and "cpu" in found else {}


def _safe(name: str) -> str:
    return name.replace("/", "_").replace("\0", "_") or "_"


class Kind:
    """A cgroup hierarchy (v1 or v2) and how to make, join, kill and remove run cgroups in it."""

    name = "?"
    #: Whether runs' memory and cpu can be limited here (hydra.execution.limits).
    can_limit = False

    def dirs(self, relative: str) -> list[Path]:
        raise NotImplementedError

    def limit_dirs(self, relative: str) -> dict[str, Path]:
        """The directories a limited run joins besides :meth:`dirs`, by controller (v1)."""
        return {}

    def set_limits(self, relative: str, limits: Limits) -> None:
        """Make the limit cgroups of ``relative`` and write ``limits``; OSError if it cannot."""
        raise NotImplementedError

    def oom_kills(self, relative: str) -> int:
        """Processes of ``relative`` the OOM killer ended."""
        return 0

    def run(self, worker_id: str, run_id: str, limits: Limits | None = None) -> RunCgroup:
        return RunCgroup(self, f"{BASE}/{_safe(worker_id)}/{_safe(run_id)}", limits)

    def worker_dirs(self, worker_id: str) -> list[Path]:
        """The directories holding a worker's run cgroups (one per controller for v1)."""
        relative = f"{BASE}/{_safe(worker_id)}"
        return self.dirs(relative) + [path for path in self.limit_dirs(relative).values() if path.is_dir()]

    def runs_of(self, worker_id: str) -> list[RunCgroup]:
        """The run cgroups of a worker that exist now."""
        parent = self.dirs(f"{BASE}/{_safe(worker_id)}")[0]
        try:
            names = sorted(entry.name for entry in parent.iterdir() if entry.is_dir())
        except OSError:
            return []
        return [RunCgroup(self, f"{BASE}/{_safe(worker_id)}/{name}") for name in names]

    def freeze(self, relative: str, frozen: bool) -> None:
        raise NotImplementedError

    def kill(self, relative: str) -> None:
        """SIGKILL every member, with the cgroup frozen so that none can fork meanwhile."""
        self.freeze(relative, True)
        try:
            for pid in self.pids(relative):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        finally:
            self.freeze(relative, False)

    def pids(self, relative: str) -> list[int]:
        return _read_pids(self.dirs(relative)[0] / "cgroup.procs")


def _read_pids(procs: Path) -> list[int]:
    """The pids a ``cgroup.procs`` file lists ([] when it cannot be read: the cgroup is gone)."""
    try:
        with open(procs, "rb") as fh:
            text = fh.read()
    except OSError:
        return []
    return [int(line) for line in text.split() if line.isdigit()]


class V2(Kind):
    name = "v2"

    def __init__(self, mount: Path):
        self.mount = mount
        try:
            controllers = set((mount / "cgroup.controllers").read_text().split())
        except OSError:
            controllers = set()
        self.can_limit = {"memory", "cpu"} <= controllers

    def dirs(self, relative: str) -> list[Path]:
        return [self.mount / relative]

    def set_limits(self, relative: str, limits: Limits) -> None:
        # A controller works in a cgroup only when each parent enables it for its children.
        parts = relative.split("/")
        for depth in range(len(parts)):
            parent = self.mount.joinpath(*parts[:depth])
            (parent / "cgroup.subtree_control").write_text("+memory +cpu")
            (self.mount.joinpath(*parts[: depth + 1])).mkdir(exist_ok=True)
        files.write(self.mount / relative, files.v2_files(limits))

    def oom_kills(self, relative: str) -> int:
        return files.oom_kills_v2(self.mount / relative)

    def freeze(self, relative: str, frozen: bool) -> None:
        path = self.dirs(relative)[0] / "cgroup.freeze"
        try:
            path.write_text("1" if frozen else "0")
        except OSError:
            return
        if frozen:
            events = self.dirs(relative)[0] / "cgroup.events"
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                try:
                    if "frozen 1" in events.read_text():
                        return
                except OSError:
                    return
                time.sleep(_POLL)

    def kill(self, relative: str) -> None:
        path = self.dirs(relative)[0] / "cgroup.kill"
        if path.exists():
            try:
                path.write_text("1")
                return
            except OSError:
                pass
        super().kill(relative)

    def __repr__(self) -> str:
        return f"cgroup v2 at {self.mount}"


class V1(Kind):
    name = "v1"

    def __init__(self, mounts: dict[str, Path], limit_mounts: dict[str, Path] | None = None):
        self.mounts = mounts
        self.limit_mounts = dict(limit_mounts or {})
        self.can_limit = "memory" in self.limit_mounts and "cpu" in self.limit_mounts

    def dirs(self, relative: str) -> list[Path]:
        return [self.mounts[c] / relative for c in V1_CONTROLLERS]

    def limit_dirs(self, relative: str) -> dict[str, Path]:
        # cpu and cpuacct are often mounted together: one directory then
        seen: dict[Path, str] = {}
        for c, point in self.limit_mounts.items():
            seen.setdefault(point / relative, c)
        return {c: path for path, c in seen.items()}

    def _limit_dir(self, relative: str, controller: str) -> Path | None:
        point = self.limit_mounts.get(controller)
        return None if point is None else point / relative

    def set_limits(self, relative: str, limits: Limits) -> None:
        for path in self.limit_dirs(relative).values():
            path.mkdir(parents=True, exist_ok=True)
        for controller, written in files.v1_files(limits).items():
            directory = self._limit_dir(relative, controller)
            if directory is None:
                raise OSError(f"no {controller} cgroup controller")
            files.write(directory, written)

    def oom_kills(self, relative: str) -> int:
        directory = self._limit_dir(relative, "memory")
        return 0 if directory is None else files.oom_kills_v1(directory)

    def freeze(self, relative: str, frozen: bool) -> None:
        state = self.dirs(relative)[0] / "freezer.state"
        try:
            state.write_text("FROZEN" if frozen else "THAWED")
        except OSError:
            return
        if frozen:
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                try:
                    if state.read_text().strip() == "FROZEN":
                        return
                except OSError:
                    return
                time.sleep(_POLL)

    def __repr__(self) -> str:
        return f"cgroup v1 ({', '.join(f'{c} at {p}' for c, p in self.mounts.items())})"


class RunCgroup:
    """The cgroup(s) of one run."""

    def __init__(self, kind: Kind, relative: str, limits: Limits | None = None):
        self.kind, self.relative, self.limits = kind, relative, limits
        #: Its directory in each hierarchy (made once: a run reads its members several times).
        self.dirs: list[Path] = kind.dirs(relative)
        self._limit_dirs = list(kind.limit_dirs(relative).values())
        self._procs = self.dirs[0] / "cgroup.procs"

    @property
    def joined(self) -> list[Path]:
        """Every directory its processes join (with its limits: those of the limit controllers too)."""
        extra = self._limit_dirs if self.limits is not None else []
        return self.dirs + extra

    def create(self) -> RunCgroup:
        """Make it, with its limits written; OSError when a limit cannot be set."""
        for path in self.dirs:
            path.mkdir(parents=True, exist_ok=True)
        if self.limits is not None:
            self.kind.set_limits(self.relative, self.limits)
        return self

    def join_argv(self) -> list[str]:
        """The prefix of a command line that runs the rest inside this cgroup."""
        sh = shutil.which("sh") or "/bin/sh"
        return [sh, "-c", JOIN_SCRIPT, "hydra-join", *(str(path / "cgroup.procs") for path in self.joined), "--"]

    def add(self, pid: int) -> None:
        """Moves the process ``pid`` into it (every directory of :attr:`joined`); OSError if it cannot."""
        data = str(pid).encode()
        for path in self.joined:
            fd = os.open(path / "cgroup.procs", os.O_WRONLY)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)

    def oom_kills(self) -> int:
        return self.kind.oom_kills(self.relative)

    def pids(self) -> list[int]:
        return _read_pids(self._procs)

    def empty(self) -> bool:
        return not self.pids()

    def kill(self, timeout: float = 5.0) -> bool:
        """Kill every process in it; True once none is left (within ``timeout`` s)."""
        deadline = time.monotonic() + timeout
        while self.pids():
            self.kind.kill(self.relative)
            end = min(deadline, time.monotonic() + 0.5)
            while self.pids() and time.monotonic() < end:
                time.sleep(_POLL)
            if time.monotonic() >= deadline:
                break
        left = self.pids()
        if left:
            log.warning("cgroup %s: processes survived SIGKILL: %s", self.relative, left)
        return not left

    def remove(self) -> None:
        """Kill what is left and remove the cgroup."""
        self.kill()
        for path in self.dirs + self._limit_dirs:
            for _ in range(50):
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:  # EBUSY: a member is still exiting
                    time.sleep(_POLL)

    def __repr__(self) -> str:
        return f"RunCgroup({self.kind.name}:{self.relative})"

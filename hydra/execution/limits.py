"""A run's resource limits in its cgroup: the files written, and what they tell afterwards.

A job's ``resources: {memory_mb, cpu}`` (``hydra.model.resources``) become, in the run's own
cgroup (``hydra.execution.cgroups``):

* **cgroup v1**: in the ``memory`` controller ``memory.limit_in_bytes`` and, where swap is
  accounted, ``memory.memsw.limit_in_bytes`` (the same: going over it cannot swap instead);
  in the ``cpu`` controller ``cpu.cfs_period_us`` = 100000 and ``cpu.cfs_quota_us`` = cpu x
  100000 (0.5 core: 50 ms of CPU time every 100 ms, whatever the number of threads). The
  ``cpuacct`` controller counts the CPU time used (``cpuacct.usage``, ns).
* **cgroup v2**: ``memory.max``, ``memory.swap.max`` = 0 and ``cpu.max`` = ``"<quota> 100000"``
  in the run's one directory (the ``memory`` and ``cpu`` controllers enabled in
  ``cgroup.subtree_control`` of its parents); ``cpu.stat``'s ``usage_usec`` counts CPU time.

The kernel's OOM killer ends a process of a run over its memory; the run's cgroup counts it
(``memory.oom_control``'s ``oom_kill`` on v1, ``memory.events``'s ``oom_kill`` on v2), and
the shell executor then reports ``out of memory (limit N MB)`` instead of a plain kill.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: The cpu controller's period (microseconds): a quota of cpu x this per period.
CPU_PERIOD_US = 100_000
MIB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """One run's limits (None: not limited)."""

    memory_mb: int | None = None
    cpu: float | None = None

    @classmethod
    def of(cls, resources: dict | None) -> Limits | None:
        """From a job's ``resources`` (None when it sets none)."""
        if not resources:
            return None
        found = cls(memory_mb=resources.get("memory_mb"), cpu=resources.get("cpu"))
        return found if found.memory_mb is not None or found.cpu is not None else None

    @property
    def cpu_quota_us(self) -> int | None:
        return None if self.cpu is None else max(1000, round(self.cpu * CPU_PERIOD_US))

    @property
    def memory_bytes(self) -> int | None:
        return None if self.memory_mb is None else self.memory_mb * MIB


def v1_files(limits: Limits) -> dict[str, list[tuple[str, str]]]:
    """What to write, controller by controller, in a v1 run cgroup (in this order)."""
    files: dict[str, list[tuple[str, str]]] = {}
    if limits.memory_bytes is not None:
        value = str(limits.memory_bytes)
        files["memory"] = [("memory.limit_in_bytes", value), ("memory.memsw.limit_in_bytes", value)]
    if limits.cpu_quota_us is not None:
        files["cpu"] = [("cpu.cfs_period_us", str(CPU_PERIOD_US)), ("cpu.cfs_quota_us", str(limits.cpu_quota_us))]
    return files


def v2_files(limits: Limits) -> list[tuple[str, str]]:
    """What to write in a v2 run cgroup (in this order)."""
    files = []
    if limits.memory_bytes is not None:
        files += [("memory.max", str(limits.memory_bytes)), ("memory.swap.max", "0")]
    if limits.cpu_quota_us is not None:
        files.append(("cpu.max", f"{limits.cpu_quota_us} {CPU_PERIOD_US}"))
    return files


#: Files that may be missing (no swap accounting) without the limit failing.
OPTIONAL = frozenset({"memory.memsw.limit_in_bytes", "memory.swap.max"})


def write(directory: Path, files: list[tuple[str, str]]) -> None:
    """Write the limit files; OSError when a required one cannot be written."""
    for name, value in files:
        path = directory / name
        if name in OPTIONAL and not path.exists():
            continue
        path.write_text(value)


def _counter(path: Path, key: str) -> int:
    """The value of ``key`` in a flat-keyed cgroup file (0 when missing or unreadable)."""
    try:
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == key and parts[1].isdigit():
                return int(parts[1])
    except OSError:
        pass
    return 0


def oom_kills_v1(memory_dir: Path) -> int:
    """Processes the OOM killer ended in a v1 memory cgroup (``oom_kill``, Linux 4.13 and
    later; an older kernel has no such count, and then a cgroup that hit its limit
    (``memory.failcnt``) counts as one)."""
    path = memory_dir / "memory.oom_control"
    try:
        counted = "oom_kill " in path.read_text()
    except OSError:
        return 0
    if counted:
        return _counter(path, "oom_kill")
    try:
        return 1 if int((memory_dir / "memory.failcnt").read_text().strip() or 0) > 0 else 0
    except (OSError, ValueError):
        return 0


def oom_kills_v2(directory: Path) -> int:
    """Processes the OOM killer ended in a v2 cgroup (``memory.events``)."""
    return _counter(directory / "memory.events", "oom_kill")

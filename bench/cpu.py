"""CPU per job, by process: what ``make bench`` reads from /proc around each throughput burst.

How it is counted
-----------------
Each process of a system under test is read from ``/proc/<pid>/stat``: ``utime + stime`` is
the CPU of all its threads so far; ``cutime + cstime`` is the CPU of its children that have
exited *and been collected* (the kernel adds a child's own and collected-children's CPU to
its parent's when the parent ``wait()``s for it, and only then).

The jobs' own processes (Hydra: the cgroup join shell, ``setpriv``, bubblewrap and its init,
the command; bare Celery: ``subprocess.run``'s ``sh``) are descendants of a pool process.
Each is collected by its parent, which is collected in turn, or, orphaned (bubblewrap's init
outlives the monitor that started it), by the pool process itself: Hydra's pool processes are
subreapers whose reaper thread collects every orphan (``hydra.execution.reaper``). So once a
job has ended, the CPU of every process it started is in its pool process's ``cutime +
cstime``, and nowhere else. A burst starts with no job running and its window closes after
the last one ended, so the pool processes' ``cutime + cstime`` delta is exactly the jobs' CPU
(reported as ``jobs``), their ``utime + stime`` delta the pool processes' own (``pool``).
Hydra's run cgroups cannot tell this here: on a cgroup v1 machine they are in the freezer and
pids hierarchies only, not cpuacct, and a cgroup is removed when its run ends; bare Celery has
none. Where a writable v1 ``cpuacct`` hierarchy exists, each worker's tree (main process, pool
processes, and so every job they start) is also put in a cpuacct cgroup of its own for the
burst, and ``cpuacct.usage`` (nanoseconds, every task that was in it, exited ones included) is
reported beside the /proc sum as a check of the method (``check``).

Idle rates: every process also spends CPU with nothing to do (heartbeats, the controller's
ticks, Redis's cron, the peers' idle workers polling the same Redis). :meth:`Meter.start`
reads each process over a quiet window just before each burst; the burst's delta is reduced
by that rate times the burst's window. Redis and the MongoDB server are shared: what the
other systems' processes spent above their idle rate during a burst (work still going on
after their own burst) is reported beside it (``others_ms``), since part of it lands on the
shared servers. The window has 10 ms resolution per process (``CLK_TCK``).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

TICK = os.sysconf("SC_CLK_TCK")
CPUACCT = Path("/sys/fs/cgroup/cpuacct")

#: The order the table lists processes in.
ORDER = ("api", "controller", "worker main", "pool", "jobs", "mongo", "redis")
#: Servers the systems share: counted in the figures of the system whose burst it is.
SHARED = ("mongo", "redis")


def read_stat(pid: int) -> tuple[float, float] | None:
    """(own CPU, collected children's CPU) of ``pid`` in seconds; None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2 :].split()
    # fields[11:15] are utime, stime, cutime, cstime (fields 14-17 of proc(5)).
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return (utime + stime) / TICK, (cutime + cstime) / TICK


@dataclass
class System:
    """The processes of one system under test, by role: ``roles`` maps a role to a function
    returning its pids now (re-read at every sample: a gunicorn worker may be replaced).
    The pool processes' collected children are the ``jobs`` role."""

    name: str
    roles: dict[str, object]
    cgroups: list[Path] = field(default_factory=list)

    def pids(self) -> dict[str, list[int]]:
        return {role: list(find()) for role, find in self.roles.items()}


@dataclass
class Sample:
    at: float
    own: dict[tuple[str, int], float]  # (role, pid) -> own CPU s
    children: dict[tuple[str, int], float]  # (role, pid) -> collected children's CPU s
    cgroup_ns: int | None


def children_of(pid: int | None) -> list[int]:
    """The direct children of ``pid`` (none when it is gone)."""
    if pid is None:
        return []
    try:
        return [child.pid for child in psutil.Process(pid).children()]
    except psutil.Error:
        return []


class Meter:
    """Samples the systems' processes; turns two samples into CPU per job by role."""

    def __init__(self, systems: list[System], idle_seconds: float):
        self.systems = {system.name: system for system in systems}
        self.idle_seconds = idle_seconds
        self.idle_rates: dict[str, dict[tuple[str, int], float]] = {}

    def sample(self, name: str) -> Sample:
        system = self.systems[name]
        own, children = {}, {}
        for role, pids in system.pids().items():
            for pid in pids:
                stat = read_stat(pid)
                if stat is not None:
                    own[role, pid], children[role, pid] = stat
        return Sample(time.monotonic(), own, children, _cgroup_ns(system.cgroups))

    def start(self) -> dict[str, Sample]:
        """Before a burst: every process's idle rate (CPU s per s) over ``idle_seconds`` of
        quiet just before it, then a sample of every system."""
        before = {name: self.sample(name) for name in self.systems}
        time.sleep(self.idle_seconds)
        now = {name: self.sample(name) for name in self.systems}
        for name, after in now.items():
            dt = after.at - before[name].at
            self.idle_rates[name] = {
                key: (after.own[key] - before[name].own[key]) / dt for key in after.own if key in before[name].own
            }
        return now

    def finish(self, name: str, before: dict[str, Sample], jobs: int) -> dict:
        """After the burst of system ``name`` (``jobs`` of them) that began at ``before``:
        ms of CPU per job by role (and ``total``), less each process's idle rate; with the
        window, what the idle rates took off, processes that came or went, the check, and
        what the other systems' own processes spent meanwhile above their idle rate
        (``others_ms``: work of theirs that was still going on, e.g. a controller's sweeps,
        lands on the shared servers and so in this burst's figures)."""
        after = {system: self.sample(system) for system in self.systems}
        roles, idle_ms = self._roles(name, before[name], after[name])
        result = {role: roles[role] * 1000 / jobs for role in ORDER if role in roles}
        result["total"] = sum(result.values())
        window = after[name].at - before[name].at
        changed = sorted({f"{role}:{pid}" for role, pid in set(before[name].own) ^ set(after[name].own)})
        detail: dict = {"window_s": window, "idle_ms_taken_off": idle_ms, "processes_changed": changed}
        detail["others_ms"] = {
            other: sum(
                v for role, v in self._roles(other, before[other], after[other])[0].items() if role not in SHARED
            )
            * 1000
            for other in self.systems
            if other != name
        }
        first, last = before[name].cgroup_ns, after[name].cgroup_ns
        if first is not None and last is not None:
            rates = self.idle_rates.get(name, {})
            idle_workers = sum(rates.get(k, 0.0) * window for k in after[name].own if k[0] in ("worker main", "pool"))
            detail["check"] = {
                "workers_proc_ms_per_job": sum(result.get(r, 0.0) for r in ("worker main", "pool", "jobs")),
                "workers_cpuacct_ms_per_job": ((last - first) / 1e9 - idle_workers) * 1000 / jobs,
            }
        return {"ms_per_job": result, "detail": detail}

    def _roles(self, name: str, before: Sample, after: Sample) -> tuple[dict[str, float], float]:
        """CPU s by role between two samples less the idle rates, and the idle ms taken off."""
        window = after.at - before.at
        rates = self.idle_rates.get(name, {})
        roles: dict[str, float] = {}
        idle_ms = 0.0
        for key, cpu in after.own.items():
            if key not in before.own:
                continue
            role = key[0]
            idle = rates.get(key, 0.0) * window
            idle_ms += idle * 1000
            roles[role] = roles.get(role, 0.0) + (cpu - before.own[key] - idle)
            if role == "pool":
                roles["jobs"] = roles.get("jobs", 0.0) + after.children[key] - before.children[key]
        return roles, idle_ms


def stack_systems(stack, hydra_workers: list[str], peers: dict[str, list[str]]) -> list[System]:
    """Hydra's processes on ``stack`` (its workers by process name) and each peer's (its
    workers' names), by role; each system's workers also in cpuacct cgroups where possible."""

    def pid(name):
        return lambda: [p] if (p := stack.pid(name)) else []

    def mains(names):
        return lambda: [p for name in names if (p := stack.pid(name))]

    def pools(names):
        return lambda: [c for name in names for c in children_of(stack.pid(name))]

    def api():
        return [p, *children_of(p)] if (p := stack.pid("api")) else []

    hydra = {"api": api, "controller": pid("controller"), "worker main": mains(hydra_workers)}
    hydra |= {"pool": pools(hydra_workers), "mongo": pid("mongo"), "redis": pid("redis")}
    systems = [System("hydra", hydra)]
    for peer, names in peers.items():
        roles = {"worker main": mains(names), "pool": pools(names), "redis": pid("redis")}
        if peer == "mongo":
            roles["mongo"] = pid("mongo")
        systems.append(System(peer, roles))
    workers = {"hydra": hydra_workers, **peers}
    for system in systems:
        for name in workers[system.name]:
            main = stack.pid(name)
            if main and (group := cpuacct_group(name, [main, *children_of(main)])):
                system.cgroups.append(group)
    return systems


def _cgroup_ns(paths: list[Path]) -> int | None:
    if not paths:
        return None
    try:
        return sum(int((path / "cpuacct.usage").read_text()) for path in paths)
    except OSError:
        return None


def cpuacct_group(label: str, pids: list[int]) -> Path | None:
    """A fresh v1 cpuacct cgroup holding ``pids`` (a worker's main and pool processes; what
    they start later is born in it); None where there is no writable cpuacct hierarchy."""
    if not (CPUACCT / "cgroup.procs").exists() or not os.access(CPUACCT, os.W_OK):
        return None
    path = CPUACCT / f"hydra-bench-{os.getpid()}" / label
    try:
        path.mkdir(parents=True, exist_ok=True)
        for pid in pids:
            (path / "cgroup.procs").write_text(str(pid))
    except OSError:
        return None
    return path


def remove_cpuacct_groups() -> None:
    """Remove this bench's cpuacct cgroups (their processes have stopped by then)."""
    root = CPUACCT / f"hydra-bench-{os.getpid()}"
    if not root.is_dir():
        return
    for path in sorted(root.iterdir(), reverse=True):
        try:
            path.rmdir()
        except OSError:
            pass
    try:
        root.rmdir()
    except OSError:
        pass


def table(cpu: dict) -> str:
    """CPU per job by process, one column per system (ms)."""
    systems = list(cpu)
    roles = [role for role in (*ORDER, "total") if any(role in cpu[s] for s in systems)]
    names = {"hydra": "Hydra", "bare": "bare Celery", "mongo": "Celery + MongoDB backend"}
    rows = [("server CPU per job, by process (ms)", *(names.get(s, s) for s in systems))]
    for role in roles:
        label = {"api": "API (gunicorn master + workers)", "mongo": "MongoDB server", "jobs": "the jobs' processes"}
        rows.append(
            (
                label.get(role, role),
                *(f"{cpu[s][role]:.2f}" if role in cpu[s] else "-" for s in systems),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)

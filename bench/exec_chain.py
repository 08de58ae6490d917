"""CPU of a run's chain of execs: what each link and each bubblewrap option costs.

Run as root on a machine with bubblewrap and cgroups (what a worker does with default
isolation): ``.venv/bin/python bench/exec_chain.py [--runs 200] [--rounds 5]``.

Each variant starts ``echo hi`` the way the pool process does (``Popen`` with both output
pipes, a new session, the run's descriptors), reads its output to the end and waits for it.
The CPU of the started processes is the growth of ``cpuacct.usage`` of a cgroup this script
moves itself into (its children's rusage would miss bubblewrap's init and the command: the
monitor exits without collecting its init), less this process's own (``RUSAGE_SELF``, the
pool process's part: ``Popen``, the reads, the waits, the confinement's files).
Variants alternate in rounds of ``--runs`` runs each (other processes share the machine);
the table shows, per run, the median over the rounds and the range.

* links: ``sh -c`` alone, behind ``setpriv``, behind the cgroup join shell, behind bubblewrap;
* bubblewrap's options, each left out of the full sandbox in turn;
* whole chains through ``hydra.execution.process.execute`` with a real ``Confinement``
  (directory, cgroup, seccomp program, clean-up included): the join shell (``old``) and the
  bubblewrap gate (``new``, ``Confinement.admit``).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hydra.execution import isolation, sandbox
from hydra.execution.command import build_argv, job_environment
from hydra.execution.process import execute
from hydra.settings import Settings

COMMAND = "echo hi"


class Meter:
    """CPU seconds of this process and its descendants (a cpuacct cgroup of its own), and of this process."""

    def __init__(self, mount: Path):
        self.home = Path(mount) / _own_cgroup("cpuacct")
        self.path = Path(mount) / f"hydra-bench-exec-chain-{os.getpid()}"
        self.path.mkdir()
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def read(self) -> tuple[float, float]:
        own = resource.getrusage(resource.RUSAGE_SELF)
        total = int((self.path / "cpuacct.usage").read_text()) / 1e9
        return total, own.ru_utime + own.ru_stime

    def close(self) -> None:
        (self.home / "cgroup.procs").write_text(str(os.getpid()))
        self.path.rmdir()


def _own_cgroup(controller: str) -> str:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return path.lstrip("/")
    raise SystemExit(f"no cgroup v1 {controller} controller")


def _popen(argv: list[str], pass_fds: tuple[int, ...] = ()) -> None:
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        pass_fds=pass_fds,
    )
    out, err = proc.communicate()
    if proc.returncode != 0 or out != b"hi\n":
        raise SystemExit(f"{argv[:3]}...: exit {proc.returncode}, {out!r} {err!r}")


def _without(args: list[str], option: str, count: int) -> list[str]:
    """``args`` less the first ``option`` and the ``count`` arguments after it (and a ``--perms``
    just before it)."""
    at = args.index(option)
    start = at - 2 if at >= 2 and args[at - 2] == "--perms" else at
    return args[:start] + args[at + 1 + count :]


def variants(policy: isolation.Policy, user: isolation.OsUser) -> dict:
    groups = ",".join(str(g) for g in os.getgrouplist(user.name, user.gid))
    setpriv = [policy.setpriv, f"--reuid={user.uid}", f"--regid={user.gid}"]
    caps = ["--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
    cgroup = policy.cgroup
    found: dict = {}

    def link(name, prefix, fds=lambda: ()):
        found[name] = ("popen", prefix, fds)

    link("sh -c", [])
    link("setpriv --init-groups + sh", [*setpriv, "--init-groups", *caps])
    link("setpriv --groups=<list> + sh", [*setpriv, f"--groups={groups}", *caps])
    if cgroup is not None:
        group = cgroup.run("bench@exec-chain", "links").create()
        link("join shell + sh", group.join_argv())
    full = [policy.bwrap, *sandbox.base_args()]
    filter_fd = sandbox.filter_fd(policy.syscall_filter) if policy.syscall_filter else None
    # bubblewrap reads the filter to its end: rewind it before each run
    fds = (lambda: (os.lseek(filter_fd, 0, os.SEEK_SET), (filter_fd,))[1]) if filter_fd is not None else (lambda: ())
    seccomp = ["--seccomp", str(filter_fd)] if filter_fd is not None else []
    link("bwrap (all options) + sh", [*full, *seccomp, "--"], fds)
    for option, count in (
        ("--proc", 1),
        ("--dev", 1),
        ("--tmpfs", 1),
        ("--new-session", 0),
        ("--die-with-parent", 0),
        ("--unshare-ipc", 0),
    ):
        link(
            f"bwrap without {option} {'/tmp' if option == '--tmpfs' else ''}".rstrip(),
            [*_without(full, option, count), *seccomp, "--"],
            fds,
        )
    link("bwrap without --seccomp", [*full, "--"])
    link("bwrap --unshare-pid --ro-bind / / only", [policy.bwrap, "--unshare-pid", "--ro-bind", "/", "/", "--"])
    found["chain: join shell (old)"] = ("chain", "old", None)
    found["chain: bubblewrap gate (new)"] = ("chain", "new", None)
    return found


def _chain(policy: isolation.Policy, style: str, number: int) -> None:
    with isolation.Confinement(
        policy, worker_id="bench@exec-chain", run_id=f"{style}-{number}", hydra_user=None, cwd=None
    ) as run:
        if style == "old" and run._gate is not None:  # the chain before the gate: a join shell first
            run._gate.close()
            run._gate = None
        argv = run.argv(build_argv(command=COMMAND, args=None, shell="sh", os_name="linux"))
        outcome = execute(
            argv,
            env=run.environment(job_environment(None)),
            cwd=run.cwd,
            timeout=30,
            output_limit=8192,
            confinement=run,
        )
    if outcome.stdout != "hi\n":
        raise SystemExit(f"chain {style}: {outcome}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100, help="runs of a variant per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", default="", help="run only the variants whose name contains this")
    parser.add_argument("--cpuacct", help="the cgroup v1 cpuacct mount (default /sys/fs/cgroup/cpuacct)")
    options = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root (a worker's default isolation switches users)")
    work = tempfile.mkdtemp(prefix="hydra-bench-exec-chain-")
    policy = isolation.Policy.from_settings(replace(Settings(), work_root=work))
    user = policy.os_user(None)
    if policy.bwrap is None or policy.cgroup is None or user is None:
        raise SystemExit(f"needs bubblewrap, cgroups and the job user here: {policy.describe()}")
    found = {name: v for name, v in variants(policy, user).items() if options.only in name}
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in found}
    sh = ["/bin/sh", "-c", COMMAND]
    meter = Meter(Path("/sys/fs/cgroup/cpuacct") if options.cpuacct is None else Path(options.cpuacct))
    try:
        for _ in range(options.rounds):
            for name, (kind, prefix, fds) in found.items():
                total, own = meter.read()
                for number in range(options.runs):
                    if kind == "popen":
                        _popen([*prefix, *sh], fds())
                    else:
                        _chain(policy, prefix, number)
                total2, own2 = meter.read()
                own2 -= own
                results[name].append(((total2 - total - own2) / options.runs, own2 / options.runs))
    finally:
        meter.close()
    print(
        f"CPU per run, ms: median of {options.rounds} rounds of {options.runs} runs [min-max]; load {os.getloadavg()[0]:.2f}"
    )
    print(f"{'variant':44} {'its processes':>22} {'pool process':>22}")
    for name, rounds in results.items():
        cols = []
        for values in (sorted(r[0] * 1000 for r in rounds), sorted(r[1] * 1000 for r in rounds)):
            cols.append(f"{statistics.median(values):6.2f} [{values[0]:.2f}-{values[-1]:.2f}]")
        print(f"{name:44} {cols[0]:>22} {cols[1]:>22}")
    for path in policy.cgroup.worker_dirs("bench@exec-chain"):
        for child in sorted(path.glob("*"), reverse=True):
            if child.is_dir():
                child.rmdir()
        path.rmdir()
    isolation.release_worker(policy, "bench@exec-chain")
    os.rmdir(work) if os.path.isdir(work) and not os.listdir(work) else None


if __name__ == "__main__":
    main()

"""Isolation pieces on this machine: the egress policy, the isolation policy's checks, and
real cgroups (v1 freezer+pids and the v2 unified hierarchy, where mounted) killing a daemon
that left its session, its parent and its environment, and the gate that holds a bubblewrap
sandbox until the pool process has put it in its run's cgroups."""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import replace

import psutil
import pytest

from hydra.execution import cgroups, isolation, sandbox
from hydra.execution.command import build_argv, job_environment
from hydra.execution.egress import EgressPolicy, parse_allow, why_internal
from hydra.execution.process import execute
from hydra.settings import Settings

# -- egress ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.5.5.5",
        "0.0.0.0",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "224.0.0.1",
        "239.255.255.250",
        "::1",
        "::",
        "fe80::1",
        "fd00:ec2::254",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "240.0.0.1",
    ],
)
def test_internal_addresses_are_refused(address):
    assert why_internal(ipaddress.ip_address(address)) is not None
    assert "HYDRA_WEBHOOK_ALLOW" in EgressPolicy().refusal(ipaddress.ip_address(address), 80)


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address):
    assert EgressPolicy().refusal(ipaddress.ip_address(address), 443) is None


def test_the_allow_list_names_networks_and_ports():
    policy = EgressPolicy.from_text("10.1.0.0/16, 127.0.0.1:9000, [::1]:8080")
    assert policy.refusal(ipaddress.ip_address("10.1.2.3"), 5) is None
    assert policy.refusal(ipaddress.ip_address("10.2.0.1"), 5) is not None
    assert policy.refusal(ipaddress.ip_address("127.0.0.1"), 9000) is None
    assert policy.refusal(ipaddress.ip_address("127.0.0.1"), 9001) is not None
    assert policy.refusal(ipaddress.ip_address("::1"), 8080) is None
    with pytest.raises(ValueError, match="HYDRA_WEBHOOK_ALLOW"):
        parse_allow("not-a-network")


@pytest.mark.parametrize("host", ["127.0.0.1", "2130706433", "0x7f000001", "127.1", "0.0.0.0", "localhost", "::1"])
def test_every_spelling_of_loopback_is_resolved_then_refused(host):
    from hydra.execution.egress import EgressRefused

    with pytest.raises(EgressRefused, match=r"loopback|unspecified"):
        EgressPolicy().resolve(host, 80)  # resolves locally; never connects


# -- the isolation policy -----------------------------------------------------------------------


def _settings(**kw) -> Settings:
    return replace(Settings(), sandbox="none", cgroup="none", **kw)


root_only = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root")


@root_only
def test_a_root_worker_runs_nobody_as_root_unless_the_operator_opts_in():
    with pytest.raises(isolation.IsolationError, match="HYDRA_ALLOW_ROOT"):
        isolation.Policy.from_settings(_settings(run_as="root"), probe=False)
    with pytest.raises(isolation.IsolationError, match="HYDRA_ALLOW_ROOT"):
        isolation.Policy.from_settings(_settings(user_map="alice=root"), probe=False)
    opted = isolation.Policy.from_settings(_settings(run_as="root", allow_root=True), probe=False)
    assert opted.os_user("anyone").uid == 0
    default = isolation.Policy.from_settings(_settings(user_map="alice=nobody"), probe=False)
    assert default.os_user("alice").name == "nobody" and default.os_user("bob").name == "hydra-job"
    with pytest.raises(isolation.IsolationError, match="no OS user"):
        isolation.Policy.from_settings(_settings(run_as="no-such-user-here"), probe=False)


def test_cwd_must_lie_under_a_declared_root(tmp_path):
    (tmp_path / "inside").mkdir()
    (tmp_path / "escape").symlink_to("/etc")
    policy = isolation.Policy(cwd_roots=(str(tmp_path.resolve()),))
    assert policy.cwd_refusal(str(tmp_path / "inside")) is None
    assert "not under" in policy.cwd_refusal("/etc")
    assert "not under" in policy.cwd_refusal(str(tmp_path / "escape"))  # symlinks are resolved
    assert "not under" in policy.cwd_refusal(str(tmp_path) + "-sibling")
    assert "absolute" in policy.cwd_refusal("relative/dir")
    assert "no HYDRA_CWD_ROOTS" in isolation.Policy().cwd_refusal("/tmp")


def test_a_user_map_needs_entries_of_the_form_user_equals_os_user():
    assert isolation.parse_user_map("alice=alice, *=nobody") == {"alice": "alice", "*": "nobody"}
    with pytest.raises(isolation.IsolationError):
        isolation.parse_user_map("alice")


def test_a_worker_says_what_its_machine_does_not_enforce():
    bare = isolation.Policy()
    gaps = " | ".join(bare.not_enforced())
    for gap in ("unprivileged OS user", "sandbox", "private /tmp", "user namespaces", "cgroup"):
        assert gap in gaps
    assert bare.describe()["user_namespaces"] == "allowed"
    unfiltered = isolation.Policy(switch_users=True, bwrap="/usr/bin/bwrap", no_filter="no libseccomp (test)")
    assert unfiltered.not_enforced()[0].startswith("user namespaces off (no libseccomp (test))")


# -- the sandbox -------------------------------------------------------------------------------

root_with_bwrap = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("bwrap") is None,
    reason="needs root and bubblewrap",
)

#: What a job's script may do in its sandbox, and what it may not (the last two must fail).
WORK = r"""
set -e
t=$(mktemp); echo tmp "$t"; stat -c '%a' /tmp
python3 -c 'import multiprocessing as mp, tempfile, threading; t = threading.Thread(target=print, args=("thread",)); t.start(); t.join(); print("tempfile", tempfile.mkdtemp()); q = mp.Queue(); q.put("shm"); print(q.get())'
cd /; cd "$HOME"; echo data > f; cat "$PWD/f"
ls "$(dirname "$(dirname "$HOME")")" 2>/dev/null || echo "work root not listed"
unshare -r id && echo "unshare -r: allowed" || echo "unshare -r: refused"
unshare -r -n true && echo "unshare -r -n: allowed" || echo "unshare -r -n: refused"
"""


def _execute_in(run: isolation.Confinement, command: str, *, output_limit: int = 8192, **options):
    """Runs ``command`` (sh) the way a worker does inside the confinement ``run``."""
    argv = run.argv(build_argv(command=command, args=None, shell="sh", os_name="linux"))
    return execute(
        argv,
        env=run.environment(job_environment(None)),
        cwd=run.cwd,
        timeout=30,
        output_limit=output_limit,
        confinement=run,
        **options,
    )


@root_with_bwrap
def test_a_sandboxed_job_has_its_tmp_and_home_and_no_user_namespaces(tmp_path):
    policy = isolation.Policy.from_settings(replace(Settings(), work_root=str(tmp_path), cgroup="none"))
    assert policy.describe()["user_namespaces"] == "blocked (seccomp)"
    assert policy.not_enforced() == [gap for gap in policy.not_enforced() if gap.startswith("a cgroup")]
    with isolation.Confinement(policy, worker_id="unit@host", run_id="r1", hydra_user=None, cwd=None) as run:
        outcome = _execute_in(run, WORK)
    assert outcome.status == "succeeded", outcome.stderr
    lines = outcome.stdout.splitlines()
    assert lines[0].startswith("tmp /tmp/tmp.") and lines[1] == "1777"
    assert lines[2] == "thread" and lines[3].startswith("tempfile /tmp/") and lines[4] == "shm"
    assert lines[5:] == ["data", "work root not listed", "unshare -r: refused", "unshare -r -n: refused"]
    assert "Operation not permitted" in outcome.stderr
    assert not (tmp_path / "unit@host" / "r1").exists()


def test_the_user_namespace_filter_is_a_bpf_program():
    try:
        program = sandbox.compile_filter()
    except sandbox.FilterUnavailable as exc:
        pytest.skip(str(exc))
    assert program and len(program) % 8 == 0  # struct sock_filter: 8 bytes per instruction


# -- cgroups ----------------------------------------------------------------------------------

#: A daemon that leaves its session, loses its parent and drops its environment, then sleeps.
DAEMON = """
import os, sys, time
if os.fork(): sys.exit(0)
os.setsid()
if os.fork(): sys.exit(0)
os.execve("/bin/sleep", ["sleep", sys.argv[1]], {})
"""


def _kinds():
    found = []
    for mode in ("v1", "v2"):
        try:
            found.append(pytest.param(mode, id=mode))
            cgroups.detect(mode)
        except ValueError:
            found[-1] = pytest.param(mode, id=mode, marks=pytest.mark.skip(reason=f"no writable cgroup {mode}"))
    return found


@root_only
@pytest.mark.parametrize("mode", _kinds())
def test_a_run_cgroup_kills_a_daemon_that_escaped_everything_else(mode):
    kind = cgroups.detect(mode)
    group = kind.run("unit-test@host", str(uuid.uuid4())).create()
    seconds = f"40{os.getpid() % 100}.{int(time.time() * 1000) % 1000}"
    try:
        subprocess.run([*group.join_argv(), sys.executable, "-c", DAEMON, seconds], check=True, timeout=20)

        def daemons():
            return [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", seconds]]

        deadline = time.monotonic() + 5
        while not daemons() and time.monotonic() < deadline:
            time.sleep(0.02)
        (daemon,) = daemons()
        assert os.getsid(daemon.pid) != os.getsid(0) and daemon.environ() == {}  # own session, no HYDRA_RUN_ID
        # the daemon's parents exit as it detaches; on a loaded machine they may still be leaving
        while group.pids() != [daemon.pid] and time.monotonic() < deadline + 5:
            time.sleep(0.02)
        assert group.pids() == [daemon.pid]
        assert group.kill() and group.empty()
        assert not daemons()
    finally:
        group.remove()
        for path in kind.worker_dirs("unit-test@host"):
            path.rmdir()
    assert not any(path.exists() for path in group.dirs)


# -- the cgroup join of a sandbox (sandbox.Gate, Confinement.admit) ------------------------------


def _v1_policy(tmp_path, *, bwrap: str | None) -> isolation.Policy:
    mounts = {c: tmp_path / "cg" / c for c in cgroups.V1_CONTROLLERS}
    return isolation.Policy(work_root=tmp_path / "runs", bwrap=bwrap, cgroup=cgroups.V1(mounts))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="the gate reopens a pipe through /proc")
def test_a_sandboxed_run_joins_its_cgroups_without_a_shell_and_a_bare_one_through_one(tmp_path):
    with isolation.Confinement(
        _v1_policy(tmp_path, bwrap="/usr/bin/bwrap"), worker_id="w", run_id="r1", hydra_user=None, cwd=None
    ) as run:
        argv = run.argv(["/bin/sh", "-c", "true"])
        assert argv[0] == "/usr/bin/bwrap" and cgroups.JOIN_SCRIPT not in argv
        info, block = (int(argv[argv.index(option) + 1]) for option in ("--info-fd", "--block-fd"))
        assert {info, block} <= set(run.pass_fds)
        assert argv[-4:] == ["--", "/bin/sh", "-c", "true"]
    with isolation.Confinement(
        _v1_policy(tmp_path, bwrap=None), worker_id="w", run_id="r2", hydra_user=None, cwd=None
    ) as run:
        argv = run.argv(["/bin/sh", "-c", "true"])
        assert argv[:3] == [argv[0], "-c", cgroups.JOIN_SCRIPT] and run.pass_fds == ()
        assert argv[-4:] == ["--", "/bin/sh", "-c", "true"]


root_with_bwrap_and_cgroups = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("bwrap") is None or cgroups.detect() is None,
    reason="needs root, bubblewrap and cgroups",
)

#: Prints the command's cgroups, the descriptors it has, and a child's cgroups.
WHERE = "cat /proc/self/cgroup; python3 -c 'import os; print(sorted(os.listdir(\"/proc/self/fd\")))'; (cat /proc/self/cgroup)"


@root_with_bwrap_and_cgroups
def test_every_process_of_a_sandboxed_command_is_in_its_cgroups_and_the_gate_leaves_no_descriptor(tmp_path):
    policy = isolation.Policy.from_settings(replace(Settings(), work_root=str(tmp_path)))
    seen = {}
    with isolation.Confinement(policy, worker_id="unit@host", run_id="gate1", hydra_user=None, cwd=None) as run:

        def started(pid):  # called once the command was admitted and let go
            seen["monitor"], seen["members"] = pid, run.pids()

        outcome = _execute_in(run, WHERE, on_start=started)
        relative = run.cgroup.relative
    assert outcome.status == "succeeded", outcome.stderr
    assert seen["members"] and seen["monitor"] not in seen["members"]  # bubblewrap's monitor stays outside
    lines = outcome.stdout.splitlines()
    assert lines.count("['0', '1', '2', '3']") == 1  # 3: listdir's own; no gate, filter or info descriptor
    for controller in ("pids", "freezer"):
        own = [line for line in lines if line.split(":")[1:2] == [controller]]
        assert len(own) == 2 and all(line.endswith("/" + relative) for line in own), lines


@root_with_bwrap_and_cgroups
def test_a_sandbox_whose_cgroups_cannot_be_joined_runs_nothing(tmp_path, monkeypatch):
    policy = isolation.Policy.from_settings(replace(Settings(), work_root=str(tmp_path)))
    with isolation.Confinement(policy, worker_id="unit@host", run_id="gate2", hydra_user=None, cwd=None) as run:

        def refuse(pid):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(run.cgroup, "add", refuse)
        outcome = _execute_in(run, 'touch "$HOME/ran"')
        assert outcome.status == "failed" and outcome.pid is None
        assert outcome.error == "cannot put the command in its cgroup: [Errno 13] Permission denied"
        assert not (run.workdir / "ran").exists() and run.empty()


@root_with_bwrap_and_cgroups
def test_a_gate_nobody_opens_holds_the_sandbox_for_good(tmp_path):
    """As when the pool process dies before it let the sandbox go: the held process must not
    read end-of-file and go on outside its cgroups."""
    marker = tmp_path / "ran"
    gate = sandbox.Gate()
    bwrap = [shutil.which("bwrap"), *sandbox.base_args(), "--bind", str(tmp_path), str(tmp_path), *gate.args()]
    proc = subprocess.Popen([*bwrap, "--", "touch", str(marker)], pass_fds=gate.pass_fds, start_new_session=True)
    try:
        pid = gate.child_pid()
        gate.close()  # the only other writer of the blocking pipe is gone
        assert pid is not None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # until it waits in the read of its blocking descriptor
            with open(f"/proc/{pid}/wchan") as fh:
                if "pipe" in fh.read():
                    break
            time.sleep(0.01)
        else:
            pytest.fail("the sandbox never waited on its gate")
        assert psutil.Process(pid).children() == [] and not marker.exists()
        os.kill(pid, 9)
        assert proc.wait(timeout=20) != 0 and not marker.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@root_with_bwrap_and_cgroups
def test_a_sandbox_that_went_on_before_its_release_is_killed_not_let_go(tmp_path):
    """As if something else had written to its blocking descriptor: after the join, the gate
    finds the held process with a child (the command, made outside the cgroups) and kills
    the sandbox instead of letting it go."""
    gate = sandbox.Gate()
    gate.release()  # the stray byte
    bwrap = [shutil.which("bwrap"), *sandbox.base_args(), "--bind", str(tmp_path), str(tmp_path), *gate.args()]
    proc = subprocess.Popen([*bwrap, "--", "sleep", "600"], pass_fds=gate.pass_fds, start_new_session=True)

    def join(pid):  # until the held process went on: it has a child
        deadline = time.monotonic() + 20
        while not psutil.Process(pid).children() and time.monotonic() < deadline:
            time.sleep(0.01)

    try:
        with pytest.raises(OSError, match="the sandbox went on before it was let go"):
            gate.admit(join)
        assert proc.wait(timeout=60) == 128 + signal.SIGKILL  # its init was killed, sleep with it
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@root_with_bwrap_and_cgroups
def test_a_sandboxed_command_runs_as_its_user_with_its_groups_no_capabilities_and_no_new_privileges(tmp_path):
    policy = isolation.Policy.from_settings(replace(Settings(), work_root=str(tmp_path)))
    with isolation.Confinement(policy, worker_id="unit@host", run_id="user1", hydra_user=None, cwd=None) as run:
        user = run.user
        outcome = _execute_in(run, "cat /proc/self/status", output_limit=65536)
    assert outcome.status == "succeeded", outcome.stderr
    status = dict(line.split(":\t", 1) for line in outcome.stdout.splitlines() if ":\t" in line)
    assert status["Uid"].split() == [str(user.uid)] * 4 and status["Gid"].split() == [str(user.gid)] * 4
    assert sorted(map(int, status["Groups"].split())) == sorted(set(os.getgrouplist(user.name, user.gid)))
    for caps in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[caps], 16) == 0, caps
    assert status["NoNewPrivs"].strip() == "1" and status["Seccomp"].strip() == "2"  # 2: a filter

"""The bubblewrap sandbox a run's command starts in, and the system calls it may not make.

:class:`hydra.execution.isolation.Confinement` starts a run's command behind
:func:`bwrap_argv` when the worker's policy has bubblewrap. Inside, the command has

* its own pid namespace (it sees only its own processes: no other run's
  ``/proc/<pid>/environ``, nor the worker's; when its main process ends, or the pool process
  dies, the kernel kills every process in it), its own IPC namespace and a new session;
* the machine's file system read-only, with a private ``/dev`` and ``/proc``;
* private, writable ``/tmp``, ``/var/tmp`` and ``/dev/shm`` (empty tmpfs, mode 1777 like
  a machine's own ``/tmp``; they go with the run);
* its run directory (its working directory and ``HOME``) read-write at the same absolute
  path as outside. The work root above it is an empty tmpfs holding only that directory,
  whose parents may be passed through (mode 0711), so ``cd "$HOME"`` works and the other
  runs' directories are not there at all; the worker's ``HYDRA_CWD_ROOTS`` read-write;
* no user namespaces (:func:`compile_filter`): ``unshare``/``clone`` asking for a new one and
  ``setns`` fail with EPERM, ``clone3`` with ENOSYS (its flags lie behind a pointer a
  seccomp filter cannot read; the C library then falls back on ``clone``). So a job cannot
  become root of a namespace of its own (``unshare -r``) and reach the kernel interfaces
  that only such a root may use.

The run's cgroups are joined while bubblewrap holds its sandbox back, before anything of the
command exists (:class:`Gate`): no shell in front of bubblewrap does it.

The filter is a seccomp program handed to bubblewrap (``--seccomp``), which loads it just
before it runs the command. Bubblewrap's own ``--disable-userns`` would do the same only
together with ``--unshare-user``, and a root worker's bubblewrap would then map the
sandbox's users onto root outside: the command could no longer be switched to its
unprivileged OS user. The filter is compiled with libseccomp (``pyseccomp``); without it,
bubblewrap still sandboxes but user namespaces stay available, and the worker says so.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

log = logging.getLogger(__name__)

#: clone(2)/unshare(2) flag asking for a new user namespace.
CLONE_NEWUSER = 0x10000000


class FilterUnavailable(Exception):
    """The seccomp program cannot be compiled here (the message says why)."""


def base_args() -> list[str]:
    """What every sandbox has (see the module docstring); the run's own mounts follow."""
    return [
        "--unshare-pid",
        "--unshare-ipc",
        "--die-with-parent",
        "--new-session",
        "--ro-bind", "/", "/",
        "--dev", "/dev",
        "--proc", "/proc",
        "--perms", "1777", "--tmpfs", "/tmp",
        "--perms", "1777", "--tmpfs", "/var/tmp",
        "--perms", "1777", "--tmpfs", "/dev/shm",
    ]  # fmt: skip


def bwrap_argv(
    bwrap: str,
    *,
    work_root: Path,
    workdir: Path,
    cwd_roots: Iterable[str],
    cwd: str,
    filter_fd: int | None,
    gate: Gate | None = None,
) -> list[str]:
    """The command line prefix that starts a command in the sandbox of the run whose
    directory is ``workdir`` (under ``work_root``), in ``cwd``; ``filter_fd``: a descriptor
    the command inherits, from which bubblewrap reads the seccomp program (:func:`filter_fd`);
    ``gate``: holds the sandbox back until it is let go (:class:`Gate`)."""
    args = [bwrap, *base_args(), "--perms", "0711", "--tmpfs", str(work_root)]
    parents = [parent for parent in workdir.parents if parent != work_root and work_root in parent.parents]
    for parent in reversed(parents):
        args += ["--perms", "0711", "--dir", str(parent)]
    args += ["--bind", str(workdir), str(workdir)]
    for root in cwd_roots:
        if os.path.isdir(root):
            args += ["--bind", root, root]
    if filter_fd is not None:
        args += ["--seccomp", str(filter_fd)]
    if gate is not None:
        args += gate.args()
    return [*args, "--chdir", cwd, "--"]


def compile_filter() -> bytes:
    """The seccomp program (classic BPF, as ``bwrap --seccomp`` reads it) that takes user
    namespaces away from a sandboxed command (see the module docstring). Raises
    FilterUnavailable when libseccomp is missing or this architecture is not one it is
    written for."""
    try:
        import pyseccomp as seccomp
    except (ImportError, RuntimeError, OSError) as exc:  # RuntimeError: libseccomp is not installed
        raise FilterUnavailable(f"no libseccomp ({exc})") from None
    native = seccomp.system_arch()
    # clone's flags are its first argument on these (on s390 they are its second).
    compat = {
        seccomp.Arch.X86_64: (seccomp.Arch.X86, seccomp.Arch.X32),
        seccomp.Arch.AARCH64: (seccomp.Arch.ARM,),
        seccomp.Arch.X86: (),
        seccomp.Arch.ARM: (),
        seccomp.Arch.RISCV64: (),
        seccomp.Arch.PPC64LE: (),
    }
    if native not in compat:
        raise FilterUnavailable(f"no user-namespace filter for this architecture ({native})")
    rules = seccomp.SyscallFilter(seccomp.ALLOW)
    for arch in compat[native]:  # 32-bit programs too (other architectures' calls are killed)
        rules.add_arch(arch)
    deny = seccomp.ERRNO(errno.EPERM)
    new_user = seccomp.Arg(0, seccomp.MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER)
    rules.add_rule(deny, "unshare", new_user)
    rules.add_rule(deny, "clone", new_user)
    rules.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    rules.add_rule(deny, "setns")
    with tempfile.TemporaryFile() as out:
        rules.export_bpf(out)
        out.seek(0)
        return out.read()


def filter_fd(program: bytes) -> int:
    """A new descriptor from which bubblewrap reads ``program`` (it reads to the end, so
    each run needs its own). Close-on-exec: only a command given it in ``pass_fds`` has it,
    and bubblewrap closes it before the command runs. The caller closes its own copy."""
    fd = os.memfd_create("hydra-seccomp")
    try:
        os.write(fd, program)
        os.lseek(fd, 0, os.SEEK_SET)
    except OSError:
        os.close(fd)
        raise
    return fd


def bwrap_works(bwrap: str, program: bytes | None) -> bool:
    """Can this process run a command in a bubblewrap sandbox as :func:`bwrap_argv` makes it
    (with the seccomp ``program``, when given, and held at a :class:`Gate`)?"""
    fd = filter_fd(program) if program is not None else None
    gate = Gate()
    args = [bwrap, *base_args(), *(["--seccomp", str(fd)] if fd is not None else []), *gate.args(), "--", "true"]
    try:
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            pass_fds=((fd,) if fd is not None else ()) + gate.pass_fds,
        )
    except OSError:
        gate.close()
        return False
    finally:
        if fd is not None:
            os.close(fd)
    try:
        gate.admit(lambda pid: None)  # a cgroup would be joined here
        _, stderr = proc.communicate(timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        proc.kill()
        proc.wait()
        return False
    finally:
        gate.close()
    if proc.returncode != 0:
        log.warning("bubblewrap does not work here: %s", stderr.decode(errors="replace").strip())
    return proc.returncode == 0


class Gate:
    """Holds a sandbox back, before anything of its command exists, until :meth:`release`.

    Bubblewrap forks: its first process (the *monitor*) stays outside, runs nothing else and
    waits for the second, which sets the sandbox up and - the init of the new pid namespace
    (``--unshare-pid``) - forks a third that execs the command.
    ``--info-fd`` makes the monitor report the second's pid (``{"child-pid": N}``) and
    ``--block-fd`` makes the second read one byte from a descriptor after its mounts and
    before its ``setsid``, its fork and its seccomp filter. Held there, it is the only
    process of the sandbox, and whatever joins a cgroup now takes every later process of
    the command with it (``hydra.execution.isolation.Confinement.admit``).

    The blocking descriptor is the pipe's read end opened again read-write (through
    ``/proc/self/fd``): the sandbox holds a writer of its own, so it never reads end-of-file.
    Bubblewrap goes on after *any* return of that read; with a plain read end, the death of
    the process that was to let it go would let it go too, outside its cgroups. This way it
    goes on only once :meth:`release` writes, and blocks for good otherwise (the worker's
    main process then kills it by its ``HYDRA_RUN_ID``, ``hydra.celery.orphans``). It closes
    the descriptor after the read: the command does not inherit it."""

    def __init__(self) -> None:
        self._info, self._info_child = os.pipe()  # close-on-exec: only pass_fds hands them on
        read_end, self._release = os.pipe()
        try:
            self._block = os.open(f"/proc/self/fd/{read_end}", os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            for fd in (self._info, self._info_child, self._release):
                os.close(fd)
            raise
        finally:
            os.close(read_end)

    def args(self) -> list[str]:
        return ["--info-fd", str(self._info_child), "--block-fd", str(self._block)]

    @property
    def pass_fds(self) -> tuple[int, ...]:
        """The descriptors bubblewrap must inherit (what :meth:`args` names)."""
        return (self._info_child, self._block)

    def child_pid(self) -> int | None:
        """Once bubblewrap was started: the pid of its held process; None when bubblewrap
        ended before it made one (a bad argument: it says why on its stderr)."""
        for fd in (self._info_child, self._block):  # ours: the info pipe ends once bubblewrap's copies are closed
            os.close(fd)
        self._info_child = self._block = -1
        chunks = []
        while chunk := os.read(self._info, 4096):
            chunks.append(chunk)
        try:
            return int(json.loads(b"".join(chunks))["child-pid"])
        except (ValueError, KeyError, TypeError):
            return None

    def release(self) -> None:
        """Lets the held process go on."""
        os.write(self._release, b"x")

    def admit(self, join: Callable[[int], None]) -> None:
        """Once bubblewrap was started: ``join(pid)`` of its held process, then :meth:`release`
        it; closes the gate. When ``join`` (or anything before the release) raises, the held
        process is SIGKILLed instead - its pid namespace with it - and the error propagates.
        So is one that went on before the release (it has a child: something else wrote to
        its descriptor), whose processes made before the join would be outside its cgroups."""
        pid = None
        try:
            pid = self.child_pid()
            if pid is not None:
                join(pid)
                _still_held(pid)
                self.release()
        except BaseException:
            if pid is not None:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            raise
        finally:
            self.close()

    def close(self) -> None:
        for fd in (self._info, self._info_child, self._block, self._release):
            if fd >= 0:
                os.close(fd)
        self._info = self._info_child = self._block = self._release = -1


def _still_held(pid: int) -> None:
    """OSError unless the held process ``pid`` is still the only one of its sandbox: held,
    it has no child (bubblewrap forks the command's processes only after the read)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children", "rb") as fh:
            children = fh.read().split()
    except FileNotFoundError:
        if os.path.exists(f"/proc/{pid}"):
            return  # a kernel without CONFIG_PROC_CHILDREN: nothing to look at
        raise OSError(errno.ESRCH, "the sandbox ended before it was let go") from None
    if children:
        raise OSError(errno.EBUSY, "the sandbox went on before it was let go")

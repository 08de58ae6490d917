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

The filter is a seccomp program handed to bubblewrap (``--seccomp``), which loads it just
before it runs the command. Bubblewrap's own ``--disable-userns`` would do the same only
together with ``--unshare-user``, and a root worker's bubblewrap would then map the
sandbox's users onto root outside: the command could no longer be switched to its
unprivileged OS user. The filter is compiled with libseccomp (``pyseccomp``); without it,
bubblewrap still sandboxes but user namespaces stay available, and the worker says so.
"""

from __future__ import annotations

import errno
import logging
import os
import subprocess
import tempfile
from collections.abc import Iterable
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
) -> list[str]:
    """The command line prefix that starts a command in the sandbox of the run whose
    directory is ``workdir`` (under ``work_root``), in ``cwd``; ``filter_fd``: a descriptor
    the command inherits, from which bubblewrap reads the seccomp program (:func:`filter_fd`)."""
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
    (with the seccomp ``program``, when given)?"""
    fd = filter_fd(program) if program is not None else None
    args = [bwrap, *base_args(), *(["--seccomp", str(fd)] if fd is not None else []), "--", "true"]
    try:
        done = subprocess.run(
            args,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=20,
            pass_fds=(fd,) if fd is not None else (),
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    finally:
        if fd is not None:
            os.close(fd)
    if done.returncode != 0:
        log.warning("bubblewrap does not work here: %s", done.stderr.decode(errors="replace").strip())
    return done.returncode == 0

"""From a job to what the operating system runs: its argv under the right shell, and its
scrubbed environment."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping

from hydra.model.params import ARG_ZERO, POSITIONAL_SHELLS
from hydra.model.platform import SHELLS, normalize_os

#: How a command line runs under cmd.exe.
CMD_PREFIX = ("cmd.exe", "/d", "/s", "/c")

#: Environment variables that pass from the worker into a job's environment; everything
#: else is dropped, so the worker's broker and database credentials never reach a job.
#: Names match case-insensitively (Windows spells them freely: ``Path``, ``SystemRoot``);
#: an entry ending in ``*`` matches every name with that prefix.
BASE_ENV_ALLOWLIST = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "LC_*",
    "TZ",
    "TMPDIR",
    "TEMP",
    "TMP",
    "SHELL",
    "TERM",
    "SYSTEMROOT",
    "SYSTEMDRIVE",
    "COMSPEC",
    "PATHEXT",
    "WINDIR",
    "USERPROFILE",
    "APPDATA",
    "LOCALAPPDATA",
    "PROGRAMDATA",
    "PROGRAMFILES",
    "NUMBER_OF_PROCESSORS",
    "PROCESSOR_ARCHITECTURE",
)
_ENV_NAMES = frozenset(name for name in BASE_ENV_ALLOWLIST if not name.endswith("*"))
_ENV_PREFIXES = tuple(name[:-1] for name in BASE_ENV_ALLOWLIST if name.endswith("*"))


def default_shell(os_name: str) -> str:
    """``'windows'`` -> ``'cmd'``; any other OS -> ``'bash'`` if found on PATH, else ``'sh'``.

    ``os_name`` may be any alias :func:`hydra.model.platform.normalize_os` accepts.
    """
    if normalize_os(os_name) == "windows":
        return "cmd"
    return "bash" if shutil.which("bash") else "sh"


def available_shells(os_name: str) -> list[str]:
    """The shells from :data:`SHELLS` this machine can run, in that order.

    Each is looked up with :func:`shutil.which`; ``powershell`` means ``pwsh`` or
    ``powershell``, and ``cmd`` is offered on Windows only (WSL puts a ``cmd.exe`` on PATH).
    """
    windows = normalize_os(os_name) == "windows"
    found = []
    for shell in SHELLS:
        if shell == "cmd":
            runnable = windows and shutil.which("cmd") is not None
        elif shell == "powershell":
            runnable = shutil.which("pwsh") is not None or shutil.which("powershell") is not None
        else:
            runnable = shutil.which(shell) is not None
        if runnable:
            found.append(shell)
    return found


def build_argv(
    *, command: str | None, args: list[str] | None, shell: str | None, os_name: str, extra: list[str] | None = None
) -> list[str]:
    """The argv that runs a job.

    ``args`` given (even empty) -> no shell at all: ``[command, *args]`` if ``command`` else
    ``args`` (``args[0]`` is the program). Otherwise ``command`` runs under ``shell``
    (``None`` -> :func:`default_shell`): ``bash -c``, ``sh -c``,
    ``cmd.exe /d /s /c``, or ``pwsh``/``powershell -NoProfile -NonInteractive -Command``.
    ``extra`` (a run's parameters passed as arguments) follows ``args``, or becomes the
    positional parameters ``$1``, ``$2``, ... of a bash or sh command (``$0`` is "hydra"):
    never part of a command line. Raises ValueError for a shell not in :data:`SHELLS`
    (checked even when unused), for ``extra`` under cmd or powershell (they would read it as
    part of the command), or when there is nothing to run.
    """
    if shell is not None and shell not in SHELLS:
        raise ValueError(f"unknown shell {shell!r}; expected one of: {', '.join(SHELLS)}")
    extra = list(extra or ())
    if args is not None:
        argv = [command, *args] if command else list(args)
        if not argv:
            raise ValueError("nothing to run: no command and no args")
        return argv + extra
    if not command or not command.strip():
        raise ValueError("nothing to run: no command")
    shell = shell or default_shell(os_name)
    if extra and shell not in POSITIONAL_SHELLS:
        raise ValueError(f"parameters passed as arguments need bash or sh (or an args list), not {shell}")
    if extra:
        return [shell, "-c", command, ARG_ZERO, *extra]
    if shell == "cmd":
        return [*CMD_PREFIX, command]
    if shell == "powershell":
        program = "pwsh" if shutil.which("pwsh") else "powershell"
        return [program, "-NoProfile", "-NonInteractive", "-Command", command]
    return [shell, "-c", command]


def job_environment(extra: dict[str, str] | None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables of ``base`` (default ``os.environ``) that :data:`BASE_ENV_ALLOWLIST`
    lets through, with ``extra`` on top. Nothing else is added."""
    base = os.environ if base is None else base
    env = {
        name: value
        for name, value in base.items()
        if name.upper() in _ENV_NAMES or name.upper().startswith(_ENV_PREFIXES)
    }
    env.update(extra or {})
    return env

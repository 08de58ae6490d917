"""Operating systems and shells: the words a job's affinity and a worker's profile use."""

from __future__ import annotations

#: Operating systems Hydra knows, with the aliases accepted on input.
OS_ALIASES = {
    "linux": "linux",
    "macos": "macos",
    "darwin": "macos",
    "osx": "macos",
    "windows": "windows",
    "win32": "windows",
    "win": "windows",
}
KNOWN_OS = ("linux", "macos", "windows")

#: Shells a job may name (``hydra.execution.command`` knows how to run each).
SHELLS = ("bash", "sh", "cmd", "powershell")


def normalize_os(name: str) -> str | None:
    """``'Darwin'`` -> ``'macos'``; None for an OS Hydra does not know."""
    return OS_ALIASES.get(name.strip().lower())

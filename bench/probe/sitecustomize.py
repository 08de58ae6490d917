"""The store-operations probe of ``bench/ops.py``: loaded by every Python process of the
stack it starts (this directory is first on their ``PYTHONPATH``), and only there.

With ``BENCH_PROBE_DIR`` set, each process appends one JSON line per event to
``<dir>/<pid>.jsonl``:

* ``mongo``: every command pymongo sends (a ``pymongo.monitoring.CommandListener``,
  registered before any client exists): its name and collection;
* ``redis``: every round trip redis-py makes (``send_packed_command``, which single commands,
  pipelines and kombu's own calls all go through): the names of the commands it carries.

Each line also has the time, the thread, and where in the code it was made: the innermost
frame in Hydra's code (``hydra/``, ``api/``) and the innermost outside the driver (Celery,
kombu, ...). Nothing of Hydra is changed; without the variable nothing is patched.
"""

import json
import os
import sys
import threading
import time

_DIR = os.environ.get("BENCH_PROBE_DIR")
_REPO = os.environ.get("BENCH_PROBE_REPO", "")
_files: dict = {}
_lock = threading.Lock()


def _write(record: dict) -> None:
    pid = os.getpid()
    record.update(t=time.time(), pid=pid, thread=threading.current_thread().name)
    line = json.dumps(record, separators=(",", ":")) + "\n"
    with _lock:
        fh = _files.get(pid)
        if fh is None:  # a forked child writes its own file
            fh = _files[pid] = open(os.path.join(_DIR, f"{pid}.jsonl"), "a", buffering=1)  # noqa: SIM115
        fh.write(line)


def _where(skip: tuple[str, ...]) -> tuple[str | None, str | None]:
    """(the three innermost frames in the repository's hydra/ or api/, innermost first and
    joined by " < "; the innermost frame outside ``skip``)."""
    frame = sys._getframe(2)
    ours: list[str] = []
    lib = None
    while frame is not None and len(ours) < 3:
        path = frame.f_code.co_filename
        here = f"{path}:{frame.f_lineno} {frame.f_code.co_name}"
        if lib is None and not any(s in path for s in skip) and "sitecustomize" not in path:
            lib = here
        if path.startswith(_REPO) and ("/hydra/" in path or "/api/" in path):
            ours.append(
                path[len(_REPO) :].lstrip("/").removeprefix("hydra/") + f":{frame.f_lineno} {frame.f_code.co_name}"
            )
        frame = frame.f_back
    if lib and _REPO and lib.startswith(_REPO):
        lib = lib[len(_REPO) :].lstrip("/")
    elif lib and "site-packages/" in lib:
        lib = lib.split("site-packages/", 1)[1]
    return (" < ".join(ours) or None), lib


def _command_names(packed) -> list[str]:
    """The command names in a packed RESP buffer (one command, or a pipeline's many)."""
    data = (
        packed.encode()
        if isinstance(packed, str)
        else b"".join(
            p.encode() if isinstance(p, str) else bytes(p)
            for p in ([packed] if isinstance(packed, (bytes, bytearray, memoryview)) else packed)
        )
    )
    names, i = [], 0
    try:
        while i < len(data) and data[i : i + 1] == b"*":
            end = data.index(b"\r\n", i)
            count = int(data[i + 1 : end])
            i = end + 2
            for k in range(count):
                end = data.index(b"\r\n", i)
                size = int(data[i + 1 : end])
                if k == 0:
                    names.append(data[end + 2 : end + 2 + size].decode(errors="replace").upper())
                i = end + 2 + size + 2
    except ValueError:
        names.append("?")
    return names


def _install() -> None:
    import pymongo.monitoring
    import redis.connection

    class Listener(pymongo.monitoring.CommandListener):
        def started(self, event):
            name = event.command_name
            target = event.command.get(name)
            ours, lib = _where(("/pymongo/",))
            _write(
                {
                    "kind": "mongo",
                    "op": name,
                    "coll": target if isinstance(target, str) else None,
                    "n": len(
                        event.command.get("documents")
                        or event.command.get("updates")
                        or event.command.get("deletes")
                        or [None]
                    ),
                    "where": ours,
                    "lib": lib,
                }
            )

        def succeeded(self, event):
            pass

        def failed(self, event):
            pass

    pymongo.monitoring.register(Listener())
    real = redis.connection.AbstractConnection.send_packed_command

    def send_packed_command(self, command, check_health=True):
        ours, lib = _where(("/redis/",))
        _write({"kind": "redis", "cmds": _command_names(command), "where": ours, "lib": lib})
        return real(self, command, check_health)

    redis.connection.AbstractConnection.send_packed_command = send_packed_command


if _DIR:
    _install()

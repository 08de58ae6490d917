"""``OutputDir``: the full output of every run, as a file per run in a directory beside
MongoDB (``HYDRA_OUTPUT_DIR``; off when unset).

MongoDB keeps the head and the tail of each stream (``HYDRA_OUTPUT_LIMIT``); with the directory
set, the worker also appends everything the command writes - stdout and stderr in the order it
reads them - to ``<dir>/<run_id>.log.part`` and renames it ``<run_id>.log`` once the command
has ended (so a ``.log`` file is complete), up to ``HYDRA_OUTPUT_DIR_LIMIT`` bytes, after which
a last line says how much more there was. ``GET /runs/{id}/output.txt`` then serves that file;
retention (``hydra.store.retention``) deletes it with its run.

Why a directory and not GridFS: FerretDB 1.24 accepts GridFS's collections and every call
pymongo's ``gridfs`` makes, but reads a file's chunks with a filter on ``files_id``, which it
does not push down to SQLite: each download decodes every chunk of every stored file
(measured: 48 ms for one 1 MiB file alone, 17 s once 200 such files were stored). The
directory must be one the workers, the API and the controller all reach (a shared volume)
for downloads and retention to see what the workers wrote.

Writing never disturbs the command: a write that fails (disk full) stops that run's file, which stays ``.part`` and is not served.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from pathlib import Path
from typing import IO

from hydra.settings import Settings, get_settings

log = logging.getLogger(__name__)

#: Run ids used as file names as they are (a UUID, a Celery task id); others are hashed.
_PLAIN_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
FINAL, PARTIAL = ".log", ".log.part"


def file_stem(run_id: str) -> str:
    """The file name (without suffix) of a run's output: its id, or a digest of an id that is
    not a plain name (a task id a Python caller chose: it never names a path)."""
    if _PLAIN_ID.match(run_id):
        return run_id
    return "x-" + hashlib.sha256(run_id.encode("utf-8", "surrogatepass")).hexdigest()


class OutputFile:
    """Appends one run's output to its ``.part`` file; :meth:`close` completes it. Thread-safe
    (the command's stdout and stderr readers both write); never raises."""

    def __init__(self, path: Path, limit: int):
        self.path, self.limit = path, limit
        self.written = self.dropped = 0
        self._lock = threading.Lock()
        self._file: IO[bytes] | None = None
        self.failed = False
        self.partial = path.with_name(path.name.removesuffix(FINAL) + PARTIAL)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Readable by its owner and group only (the API and controller share the group).
            descriptor = os.open(self.partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
            self._file = os.fdopen(descriptor, "wb")
        except OSError as exc:
            self._fail(exc)

    def write(self, stream: str, data: bytes) -> None:
        """Take what the command wrote (``stream`` is stdout or stderr: both go to one file)."""
        with self._lock:
            if self._file is None:
                return
            room = self.limit - self.written
            part = data[: max(room, 0)]
            self.dropped += len(data) - len(part)
            if not part:
                return
            try:
                self._file.write(part)
                self.written += len(part)
            except OSError as exc:
                self._fail(exc)

    def close(self) -> None:
        """Complete the file (``.part`` -> ``.log``), unless a write failed."""
        with self._lock:
            handle, self._file = self._file, None
            if handle is None:
                return
            try:
                if self.dropped:
                    handle.write(
                        f"\n[... hydra: {self.dropped} more bytes not kept (HYDRA_OUTPUT_DIR_LIMIT) ...]\n".encode()
                    )
                handle.close()
                os.replace(self.partial, self.path)
            except OSError as exc:
                self._fail(exc)

    def _fail(self, exc: OSError) -> None:
        self.failed = True
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None
        log.warning("full output not kept: %s", exc, extra={"event": "output.file_failed", "path": str(self.path)})

    def __enter__(self) -> OutputFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class OutputDir:
    """The directory of full outputs (see the module docstring)."""

    def __init__(self, root: str | Path, limit: int = 1024**3):
        self.root, self.limit = Path(root), limit

    @classmethod
    def configured(cls, settings: Settings | None = None) -> OutputDir | None:
        """The directory ``HYDRA_OUTPUT_DIR`` names, or None when it is not set."""
        settings = settings or get_settings()
        return cls(settings.output_dir, settings.output_dir_limit) if settings.output_dir else None

    def path_of(self, run_id: str) -> Path:
        """Where the complete output of ``run_id`` is (whether or not it exists)."""
        return self.root / (file_stem(run_id) + FINAL)

    def writer(self, run_id: str) -> OutputFile:
        return OutputFile(self.path_of(run_id), self.limit)

    def open(self, run_id: str) -> IO[bytes] | None:
        """The run's complete output for reading, or None (not kept, not complete, unreadable)."""
        try:
            return open(self.path_of(run_id), "rb")
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("full output unreadable: %s", exc, extra={"event": "output.file_unreadable"})
            return None

    def delete(self, run_id: str) -> None:
        """Remove the run's output (complete or partial); a file that cannot be removed is logged."""
        stem = file_stem(run_id)
        for path in (self.root / (stem + FINAL), self.root / (stem + PARTIAL)):
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("full output not deleted: %s", exc, extra={"event": "output.file_kept"})

"""FerretDB helpers: finding the binary, its command line and environment, and the missing ``_id`` index.

When neither ``HYDRA_MONGO_URL`` nor ``mongod`` is available, the local stack runs
FerretDB v1.24 with its SQLite backend as Hydra's MongoDB (``deploy/local/install.sh``
builds it; see there for why ``go install`` alone gives a binary that panics).

Why :func:`add_id_indexes` exists
---------------------------------
FerretDB 1.24's SQLite backend stores each document as JSON in the column
``_ferretdb_sjson``. It creates the unique ``_id`` index on the expression
``_ferretdb_sjson->"_id"`` (``metadata/registry.go``, generic index code), but the
fast path for ``{_id: <value>}`` filters queries ``_ferretdb_sjson->'$._id' = ?``
(``metadata.IDColumn``, used in ``backends/sqlite/collection.go``, where the source
itself says "that logic should exist in one place", TODO FerretDB issue #3235).
SQLite matches index expressions syntactically, so the two never meet: every find,
update and delete by ``_id`` scans the whole table. Measured on this project: an update
by ``_id`` took 44 ms at 5,000 documents, 1.4 ms with an index on the expression the
queries actually use.

:func:`add_id_indexes` adds exactly that index (``"<table>_hydra_id_expr"``) to every
collection table. It is safe while FerretDB runs: the database is in WAL mode, we wait
for locks (timeout 30 s), and FerretDB's SQLite driver re-prepares its statements when
the schema changes. FerretDB does not know about these indexes (they are not in its
``_ferretdb_collections.settings``), so ``listIndexes`` does not show them and dropping
a collection drops them with its table; the stack runs this again after start-up and
after :func:`hydra.store.schema.ensure_schema`.
"""

from __future__ import annotations

import functools
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

#: The FerretDB release install.sh builds.
VERSION = "v1.24.2"
#: FerretDB's metadata table in each database file (columns name, table_name, settings).
METADATA_TABLE = "_ferretdb_collections"
#: The JSON document column of every collection table.
DOC_COLUMN = "_ferretdb_sjson"
#: The expression FerretDB's ``_id`` lookups use (``metadata.IDColumn``).
ID_EXPRESSION = f"{DOC_COLUMN}->'$._id'"
#: Suffix of the index names we add (FerretDB names its own "<table>_<index name>").
INDEX_SUFFIX = "_hydra_id_expr"


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _add_to_file(path: Path) -> int:
    created = 0
    conn = sqlite3.connect(str(path), timeout=30, isolation_level=None)
    try:
        has_meta = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (METADATA_TABLE,)
        ).fetchone()
        if not has_meta:
            return 0
        tables = [row[0] for row in conn.execute(f"SELECT table_name FROM {_quote(METADATA_TABLE)}")]
        for table in tables:
            exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone()
            if not exists:
                continue
            index = table + INDEX_SUFFIX
            present = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?", (index,)).fetchone()
            if present:
                continue
            conn.execute(f"CREATE INDEX IF NOT EXISTS {_quote(index)} ON {_quote(table)} ({ID_EXPRESSION})")
            created += 1
    finally:
        conn.close()
    return created


def add_id_indexes(sqlite_dir: Path) -> int:
    """Index ``_ferretdb_sjson->'$._id'`` in every collection of every ``*.sqlite`` file.

    ``sqlite_dir`` is the directory of FerretDB's ``--sqlite-url=file:<dir>/``. Returns
    the number of indexes created (0 when they all exist already).
    """
    sqlite_dir = Path(sqlite_dir)
    if not sqlite_dir.is_dir():
        return 0
    return sum(_add_to_file(path) for path in sorted(sqlite_dir.glob("*.sqlite")))


# --- the binary ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def gopath() -> Path:
    """``$(go env GOPATH)``, or ``~/go`` when Go is not on PATH."""
    go = shutil.which("go") or next(
        (g for g in ("/usr/local/go/bin/go", "/usr/lib/go/bin/go") if os.access(g, os.X_OK)), None
    )
    if go:
        try:
            out = subprocess.run(
                [go, "env", "GOPATH"], capture_output=True, text=True, timeout=30, check=True
            ).stdout.strip()
            if out:
                return Path(out.split(os.pathsep)[0])
        except (OSError, subprocess.SubprocessError):
            pass
    return Path(os.environ.get("GOPATH") or Path.home() / "go")


def find_binary() -> Path | None:
    """``ferretdb`` on PATH, else ``$(go env GOPATH)/bin/ferretdb``; None if neither exists."""
    on_path = shutil.which("ferretdb")
    if on_path:
        return Path(on_path)
    candidate = gopath() / "bin" / "ferretdb"
    return candidate if os.access(candidate, os.X_OK) else None


#: SQLite's commit durability. FerretDB leaves SQLite's default, FULL: an fsync inside the
#: single write lock on every commit, which serializes every write behind the disk. NORMAL
#: (with FerretDB's WAL journal) survives a crash of the process and loses at most the last
#: commits on a power cut - the same promise as MongoDB's default write concern, which
#: acknowledges a write before its journal is flushed.
SYNCHRONOUS = "normal"


#: FerretDB's Go runtime settings, in its environment (measured with ``bench/ferretdb_ops.py``
#: on Hydra's operations; docs/performance.md, "The MongoDB server's own CPU"). One P
#: (``GOMAXPROCS=1``) cut FerretDB's CPU per job by about 30 %: with the default one P per
#: core its goroutines hop between threads on every request (futex wake-ups, spinning
#: threads, the scheduler's monitor waking every 20 us), while SQLite takes one writer at a
#: time anyway; throughput did not drop. ``GOGC=400`` collects garbage a quarter as often
#: (a further 5-10 %) for about 12 MB more memory. Neither touches what a write promises.
RUNTIME_ENV = {"GOMAXPROCS": "1", "GOGC": "400"}


def environment(setup_password: str) -> dict[str, str]:
    """FerretDB's environment: :data:`RUNTIME_ENV` and the password of the user it creates
    (``--setup-username``), kept off the command line (which ``ps`` shows to every user)."""
    return {**RUNTIME_ENV, "FERRETDB_SETUP_PASSWORD": setup_password}


def command(binary: Path | str, sqlite_dir: Path, state_dir: Path, port: int, host: str = "127.0.0.1") -> list[str]:
    """FerretDB's command line: SQLite files in ``sqlite_dir``, listening on host:port."""
    return [
        str(binary),
        "--handler=sqlite",
        f"--sqlite-url=file:{Path(sqlite_dir)}/?_pragma=synchronous({SYNCHRONOUS})",
        f"--listen-addr={host}:{port}",
        f"--state-dir={Path(state_dir)}",
        "--debug-addr=-",
        "--telemetry=disable",
        "--log-level=warn",
    ]

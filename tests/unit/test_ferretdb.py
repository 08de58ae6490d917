"""hydrastack.ferretdb.add_id_indexes: the _id expression index FerretDB 1.24's SQLite backend lacks."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from hydrastack import ferretdb

pytestmark = pytest.mark.skipif(
    sqlite3.sqlite_version_info < (3, 38, 0), reason="SQLite >= 3.38 needed for the -> operator"
)

ID_QUERY = "SELECT _ferretdb_sjson FROM {t} WHERE _ferretdb_sjson->'$._id' = ?"


def make_ferretdb_file(path: Path, collections: dict[str, str], docs: int = 50) -> None:
    """A database file laid out like FerretDB 1.24's SQLite backend."""
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE \"_ferretdb_collections\" (name TEXT NOT NULL UNIQUE CHECK(name != ''), "
        "table_name TEXT NOT NULL UNIQUE CHECK(table_name != ''), "
        "settings TEXT NOT NULL CHECK(settings != '')) STRICT"
    )
    for name, table in collections.items():
        conn.execute(f"CREATE TABLE \"{table}\" (_ferretdb_sjson TEXT NOT NULL CHECK(_ferretdb_sjson != '')) STRICT")
        # FerretDB's own _id index: on an expression its _id queries do not use.
        conn.execute(f'CREATE UNIQUE INDEX "{table}__id_" ON "{table}" (_ferretdb_sjson->"_id")')
        conn.execute('INSERT INTO "_ferretdb_collections" VALUES (?, ?, ?)', (name, table, "{}"))
        conn.executemany(
            f'INSERT INTO "{table}" VALUES (?)',
            [(json.dumps({"_id": f"r{i}", "n": i}),) for i in range(docs)],
        )
    conn.commit()
    conn.close()


def plan(path: Path, table: str) -> str:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("EXPLAIN QUERY PLAN " + ID_QUERY.format(t=f'"{table}"'), ('"r7"',)).fetchall()
        found = conn.execute(ID_QUERY.format(t=f'"{table}"'), ('"r7"',)).fetchall()
    finally:
        conn.close()
    assert found == [(json.dumps({"_id": "r7", "n": 7}),)]
    return " ".join(str(r[-1]) for r in rows)


def test_creates_the_index_the_id_queries_use(tmp_path):
    db = tmp_path / "hydra.sqlite"
    make_ferretdb_file(db, {"job_runs": "job_runs_1c24b0cf", "workers": "workers_f7a0cdac"})
    assert "USING INDEX" not in plan(db, "job_runs_1c24b0cf")  # full scan before

    assert ferretdb.add_id_indexes(tmp_path) == 2
    assert "USING INDEX job_runs_1c24b0cf_hydra_id_expr" in plan(db, "job_runs_1c24b0cf")
    assert "USING INDEX workers_f7a0cdac_hydra_id_expr" in plan(db, "workers_f7a0cdac")

    assert ferretdb.add_id_indexes(tmp_path) == 0  # idempotent


def test_every_database_file_counts(tmp_path):
    make_ferretdb_file(tmp_path / "hydra.sqlite", {"a": "a_1"})
    make_ferretdb_file(tmp_path / "other.sqlite", {"b": "b_1", "c": "c_1"})
    assert ferretdb.add_id_indexes(tmp_path) == 3


def test_ignores_what_is_not_a_ferretdb_collection(tmp_path):
    assert ferretdb.add_id_indexes(tmp_path / "missing") == 0
    plain = sqlite3.connect(tmp_path / "plain.sqlite")
    plain.execute("CREATE TABLE t (x)")
    plain.close()
    make_ferretdb_file(tmp_path / "hydra.sqlite", {"a": "a_1"})
    conn = sqlite3.connect(tmp_path / "hydra.sqlite")
    conn.execute("INSERT INTO _ferretdb_collections VALUES ('ghost', 'ghost_1', '{}')")  # no table
    conn.commit()
    conn.close()
    assert ferretdb.add_id_indexes(tmp_path) == 1


def test_command_line():
    assert ferretdb.command("/go/bin/ferretdb", Path("/r/data/ferretdb"), Path("/r/data/ferretdb-state"), 27017) == [
        "/go/bin/ferretdb",
        "--handler=sqlite",
        "--sqlite-url=file:/r/data/ferretdb/?_pragma=synchronous(normal)",
        "--listen-addr=127.0.0.1:27017",
        "--state-dir=/r/data/ferretdb-state",
        "--debug-addr=-",
        "--telemetry=disable",
        "--log-level=warn",
    ]


def test_environment_sets_the_go_runtime_and_carries_the_password():
    env = ferretdb.environment("s3cret")
    assert env == {"GOMAXPROCS": "1", "GOGC": "400", "FERRETDB_SETUP_PASSWORD": "s3cret"}
    # the password stays off the command line (ps shows that)
    argv = ferretdb.command("/go/bin/ferretdb", Path("/r/data/ferretdb"), Path("/r/data/ferretdb-state"), 27017)
    assert not any("s3cret" in arg for arg in argv)


@pytest.mark.skipif(
    ferretdb.find_binary() is None or shutil.which("mongod") is not None,
    reason="needs FerretDB (make install) and no mongod",
)
def test_real_ferretdb_gets_the_indexes(tmp_path, monkeypatch):
    """Start FerretDB through the stack: schema + _id indexes, and finds by _id use them."""
    import pymongo

    from hydrastack import Stack

    monkeypatch.delenv("HYDRA_MONGO_URL", raising=False)
    s = Stack.ephemeral(tmp_path / "root")
    try:
        s.start_mongo()
        assert s.mongo_backend == "ferretdb"
        # the running server got the Go runtime settings and its password in its environment
        environ = Path(f"/proc/{s.pid('mongo')}/environ").read_bytes().split(b"\0")
        assert {b"GOMAXPROCS=1", b"GOGC=400"} <= set(environ)
        assert f"FERRETDB_SETUP_PASSWORD={s.mongo_password}".encode() in environ
        assert s.mongo_password.encode() not in Path(f"/proc/{s.pid('mongo')}/cmdline").read_bytes()
        client = pymongo.MongoClient(s.mongo_url, serverSelectionTimeoutMS=5000)
        runs = client[s.mongo_db]["job_runs"]
        runs.insert_many([{"_id": f"r{i}"} for i in range(20)])
        assert runs.find_one({"_id": "r7"}) == {"_id": "r7"}
        client.close()
        db = s.ferretdb_sqlite_dir / f"{s.mongo_db}.sqlite"
        conn = sqlite3.connect(db)
        (table,) = conn.execute("SELECT table_name FROM _ferretdb_collections WHERE name = 'job_runs'").fetchone()
        conn.close()
        assert f"USING INDEX {table}_hydra_id_expr" in " ".join(
            str(r[-1])
            for r in sqlite3.connect(db).execute("EXPLAIN QUERY PLAN " + ID_QUERY.format(t=f'"{table}"'), ("1",))
        )
    finally:
        s.down()
    assert not s.is_running("mongo")

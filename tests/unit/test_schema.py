"""On MongoDB every query is served by a declared index: each query of hydra.store.schema
names one, its shape is a prefix of that index, the stores send no other filter to MongoDB,
and every declared query is one the stores actually run."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from hydra import names
from hydra.control import verbs
from hydra.model.access import Principal, Role
from hydra.model.spec import load_job
from hydra.model.status import RunStatus
from hydra.store import schema
from hydra.store.audit import AuditStore
from hydra.store.base import Store
from hydra.store.drains import DrainStore
from hydra.store.edges import EdgeStore
from hydra.store.namespaces import NamespaceStore
from hydra.store.notifications import NotificationStore
from hydra.store.reindex import Reindexer
from hydra.store.tokens import TokenStore
from hydra.store.workers import WorkerStore

#: Submits in any namespace, as anyone.
ADMIN = Principal(user="admin", roles={"*": Role.ADMIN}, act_as=frozenset({"*"}), via="token:admin")

STORES = Path(schema.__file__).parent
#: pymongo methods whose first argument is a filter, and the write models that take one.
FILTERED = {
    "find",
    "find_one",
    "find_one_and_update",
    "find_one_and_delete",
    "update_one",
    "update_many",
    "replace_one",
    "delete_one",
    "delete_many",
    "count_documents",
    "distinct",
    "aggregate",
    "DeleteOne",
    "UpdateOne",
    "ReplaceOne",
}
#: Receivers of store methods (``self.find(doc_id)``, ``self.jobs.find(...)``).
STORE_RECEIVERS = {"self", "self.jobs", "self.runs"}
#: Where a declared query is sent (the only calls allowed another filter than {"_id": ...}).
SENDERS = {("base.py", "_cursor"), ("base.py", "_distinct")}


def shape_ok(query: schema.Query) -> bool:
    keys = [field for field, _ in schema.index_spec(query.collection, query.index).keys]
    leading = set(query.equality) | set(query.ranges)
    if set(keys[: len(leading)]) != leading:
        return False
    sort = list(query.sort)
    after = list(schema.index_spec(query.collection, query.index).keys)[len(leading) : len(leading) + len(sort)]
    reverse = [(field, -direction) for field, direction in sort]
    return not sort or after in (sort, reverse)


@pytest.mark.parametrize("query", list(schema.QUERIES.values()), ids=lambda q: q.name)
def test_every_query_is_a_prefix_of_the_index_it_names(query):
    assert schema.index_spec(query.collection, query.index) is not None
    assert shape_ok(query), f"{query.name}: {query} does not fit index {query.index}"
    assert not set(query.residual) & (set(query.equality) | set(query.ranges))


def test_the_shape_check_refuses_what_no_index_serves():
    bad = [
        schema.Query("x", names.JOB_RUNS, "runs_job", ("status",)),  # not the index's first key
        schema.Query("x", names.JOB_RUNS, "runs_job", ("job_id",), sort=(("_id", -1), ("queued_at", -1))),
        schema.Query("x", names.JOB_RUNS, "runs_worker", ("worker_id",), sort=(("queued_at", -1),)),
    ]
    assert not any(shape_ok(query) for query in bad)


def test_every_declared_index_serves_a_query_and_distinct_reads_first_keys():
    used = {(q.collection, q.index) for q in schema.QUERIES.values()}
    for collection, specs in schema.INDEXES.items():
        for spec in specs:
            assert (collection, spec.name) in used, f"index {spec.name} serves no query"
    for (collection, field), index in schema.DISTINCT.items():
        assert schema.index_spec(collection, index).keys[0][0] == field


def calls_with_filters(path: Path):
    tree = ast.parse(path.read_text())
    for func in ast.walk(tree):
        if not isinstance(func, ast.FunctionDef):
            continue
        for node in ast.walk(func):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            receiver = ast.unparse(node.func.value) if isinstance(node.func, ast.Attribute) else ""
            if receiver in STORE_RECEIVERS:  # a store's own method (find(run_id), ...), not pymongo's
                continue
            if name in FILTERED:
                yield func.name, name, node


@pytest.mark.parametrize("path", sorted(STORES.glob("*.py")), ids=lambda p: p.name)
def test_the_stores_send_mongodb_only_id_lookups_besides_the_declared_queries(path):
    for function, method, call in calls_with_filters(path):
        if (path.name, function) in SENDERS:
            continue
        first = call.args[0] if call.args else None
        assert isinstance(first, ast.Dict), f"{path.name}:{call.lineno} {function}: {method} with a computed filter"
        keys = [key.value for key in first.keys if isinstance(key, ast.Constant)]
        assert keys == ["_id"], f"{path.name}:{call.lineno} {function}: {method} filters on {keys}"


def test_the_stores_run_every_declared_query_and_no_other(memory, monkeypatch):
    """Every listing and sweep while the Redis indexes are not built (the MongoDB path)."""
    seen = []
    real = Store._cursor

    def spy(self, name, selector, **kwargs):
        seen.append(name)
        return real(self, name, selector, **kwargs)

    monkeypatch.setattr(Store, "_cursor", spy)
    memory.worker("cpu1")
    body = {"name": "n", "user": "rich", "command": "true"}
    job, run, _ = verbs.submit(load_job(body), actor=ADMIN, pipeline=memory.pipeline)
    memory.pipeline.runs.index.unbuild()
    jobs, runs = memory.pipeline.jobs, memory.pipeline.runs
    for status in (None, RunStatus.RUNNING):
        for user in (None, "rich"):
            jobs.list(status=status, user=user)
    jobs.undispatched()
    jobs.scheduled()
    runs.page_for_job(job.id)
    runs.of_jobs([job.id])
    runs.dead_letters()
    runs.dead_letters(job_id=job.id)
    runs.not_started(job.id)
    runs.with_status([RunStatus.PENDING])
    runs.active_on("cpu1@host")
    WorkerStore().all()
    TokenStore().all()
    NamespaceStore().all()
    DrainStore().all()
    EdgeStore().upstream_of(job.id)
    NotificationStore().open_ids()
    audit = AuditStore()
    audit.list()
    audit.list(namespaces=["default"])
    audit.list(actor="admin", namespaces=["default"])
    audit.list(target=job.id)
    memory.db[names.INDEX_BACKLOG].insert_one({"_id": f"run:{run.run_id}", "kind": "run", "ref": run.run_id})
    Reindexer(runs).rebuild()
    assert set(seen) == set(schema.QUERIES)

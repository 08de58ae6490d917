"""The rules of group commit (hydra/store/group_commit.py): concurrent inserts of one process
go to MongoDB together, in the order they came, and each caller learns its own outcome.

The writes are held by events, not by sleeps: a test decides when MongoDB "answers"."""

from __future__ import annotations

import threading

import mongomock
import pytest
from pymongo.errors import BulkWriteError, ConnectionFailure, DuplicateKeyError

from hydra.errors import Duplicate, StoreUnavailable
from hydra.store import group_commit
from hydra.store.group_commit import GroupCommit

WAIT = 30  # seconds a test waits for a thread at most (a failure, never a pace)


class HeldCollection:
    """A collection whose writes wait until the test lets them go; it notes each write."""

    def __init__(self, *failures: BaseException | None):
        self.writes: list[tuple[str, list[dict]]] = []
        self.release = threading.Event()
        self.started = threading.Semaphore(0)
        self.failures = list(failures)  # the n-th write raises the n-th (None: it succeeds)
        self.stored: list[dict] = []

    def _write(self, how: str, docs: list[dict]) -> None:
        n = len(self.writes)
        self.writes.append((how, [d["_id"] for d in docs]))
        self.started.release()
        assert self.release.wait(WAIT)
        failure = self.failures[n] if n < len(self.failures) else None
        if failure is not None:
            raise failure
        self.stored += docs

    def insert_one(self, doc: dict) -> None:
        self._write("one", [doc])

    def insert_many(self, docs: list[dict], ordered: bool = True) -> None:
        assert ordered is False  # one document's error must not stop the others
        self._write("many", docs)


class Caller(threading.Thread):
    def __init__(self, committer: GroupCommit, ident: str):
        super().__init__(daemon=True)
        self.committer, self.doc_id = committer, ident
        self.error: BaseException | None = None
        self.returned = threading.Event()

    def run(self) -> None:
        try:
            self.committer.insert({"_id": self.doc_id})
        except BaseException as exc:  # noqa: BLE001 - the test reads it
            self.error = exc
        self.returned.set()


def joined(committer: GroupCommit, count: int) -> None:
    """Wait until the open batch holds ``count`` documents (the callers have joined it)."""
    with committer._lock:
        assert committer._lock.wait_for(
            lambda: committer._open is not None and len(committer._open.docs) == count, WAIT
        )


def start(committer: GroupCommit, *idents: str, batch_of: bool = False) -> list[Caller]:
    """Start one caller per ident, each after the one before joined the open batch."""
    callers = []
    for n, ident in enumerate(idents, start=1):
        caller = Caller(committer, ident)
        caller.start()
        callers.append(caller)
        if batch_of:
            joined(committer, n)
    return callers


def first_write_held(collection: HeldCollection, committer: GroupCommit) -> Caller:
    """A caller whose write (alone: nothing else was being written) MongoDB has not answered."""
    (first,) = start(committer, "first")
    assert collection.started.acquire(timeout=WAIT)
    assert collection.writes == [("one", ["first"])]  # a quiet process writes at once, alone
    return first


def test_a_lone_insert_is_written_at_once_as_insert_one():
    collection = mongomock.MongoClient().db.c
    committer = GroupCommit(collection, max_delay=60)
    committer.insert({"_id": "a"})  # would wait 60 s if a lone write waited for company
    assert collection.find_one({"_id": "a"}) == {"_id": "a"}
    assert (committer.batches, committer.documents) == (1, 1)


def test_inserts_arriving_while_a_write_is_out_go_together_in_their_order():
    collection = HeldCollection()
    committer = GroupCommit(collection, busy_gap=0, max_delay=60)
    first = first_write_held(collection, committer)
    callers = start(committer, "b", "c", "d", batch_of=True)
    assert not any(c.returned.is_set() for c in [first, *callers])  # nobody answered before MongoDB
    collection.release.set()
    for caller in [first, *callers]:
        assert caller.returned.wait(WAIT) and caller.error is None
    assert collection.writes == [("one", ["first"]), ("many", ["b", "c", "d"])]
    assert [d["_id"] for d in collection.stored] == ["first", "b", "c", "d"]


def test_in_a_busy_process_a_batch_waits_for_company_even_with_nothing_being_written():
    collection = mongomock.MongoClient().db.c
    committer = GroupCommit(collection, max_size=3, max_delay=60, busy_gap=60)
    committer.insert({"_id": "a"})  # the first in a while: at once, alone
    callers = start(committer, "b", "c", batch_of=True)  # within busy_gap of "a": they wait
    assert not any(c.returned.is_set() for c in callers)
    (last,) = start(committer, "d")  # the batch is full: written now
    for caller in [*callers, last]:
        assert caller.returned.wait(WAIT) and caller.error is None
    assert (committer.batches, committer.documents) == (2, 4)
    assert [d["_id"] for d in collection.find()] == ["a", "b", "c", "d"]


def test_one_thread_writing_in_a_loop_never_waits_for_itself():
    collection = mongomock.MongoClient().db.c
    committer = GroupCommit(collection, max_delay=60, busy_gap=60)
    for n in range(3):  # each would wait 60 s if a thread's own previous insert made it "busy"
        committer.insert({"_id": n})
    assert (committer.batches, committer.documents) == (3, 3)


def test_a_full_batch_is_written_without_waiting_for_the_write_before_it():
    collection = HeldCollection()
    committer = GroupCommit(collection, busy_gap=0, max_size=3, max_delay=60)
    first_write_held(collection, committer)
    start(committer, "b", "c", "d")
    assert collection.started.acquire(timeout=WAIT)  # the full batch went while "first" is held
    assert collection.writes[1][0] == "many" and sorted(collection.writes[1][1]) == ["b", "c", "d"]
    collection.release.set()


def test_a_batch_goes_after_max_delay_even_when_the_write_before_it_hangs():
    collection = HeldCollection()
    committer = GroupCommit(collection, busy_gap=0, max_delay=0.05)
    first_write_held(collection, committer)
    (second,) = start(committer, "b")
    assert collection.started.acquire(timeout=WAIT)  # "first" is still held: the delay bounded the wait
    assert collection.writes[1] == ("one", ["b"])
    collection.release.set()
    assert second.returned.wait(WAIT) and second.error is None


def test_close_writes_what_waits_at_once_and_later_inserts_alone():
    collection = HeldCollection()
    committer = GroupCommit(collection, busy_gap=0, max_delay=60)
    first_write_held(collection, committer)
    callers = start(committer, "b", "c", batch_of=True)
    committer.close()
    assert collection.started.acquire(timeout=WAIT)  # written now, not after 60 s nor after "first"
    assert collection.writes[1] == ("many", ["b", "c"])
    collection.release.set()
    for caller in callers:
        assert caller.returned.wait(WAIT) and caller.error is None
    committer.insert({"_id": "e"})
    assert collection.writes[-1] == ("one", ["e"])


def test_a_duplicate_key_fails_only_the_caller_whose_document_clashed():
    collection = mongomock.MongoClient().db.c
    collection.insert_one({"_id": "taken"})
    held = HeldCollection()
    committer = GroupCommit(held, busy_gap=0, max_delay=60)
    first_write_held(held, committer)
    held.insert_many = collection.insert_many  # type: ignore[method-assign] - MongoDB answers the batch
    callers = start(committer, "b", "taken", "c", batch_of=True)
    held.release.set()
    for caller in callers:
        assert caller.returned.wait(WAIT)
    assert isinstance(callers[1].error, DuplicateKeyError)
    assert callers[0].error is None and callers[2].error is None
    assert {d["_id"] for d in collection.find()} == {"taken", "b", "c"}


def test_write_errors_are_mapped_by_index():
    error = BulkWriteError(
        {
            "writeErrors": [
                {"index": 2, "code": 11000, "errmsg": "E11000 duplicate key"},
                {"index": 0, "code": 121, "errmsg": "validation failed"},
            ]
        }
    )
    first, second, third = group_commit.per_document(error, 3)
    assert type(third) is DuplicateKeyError and third.code == 11000
    assert first is not None and not isinstance(first, DuplicateKeyError) and first.code == 121
    assert second is None


def test_a_write_concern_error_fails_every_document_without_an_error_of_its_own():
    error = BulkWriteError(
        {
            "writeErrors": [{"index": 1, "code": 11000, "errmsg": "dup"}],
            "writeConcernErrors": [{"code": 64, "errmsg": "wc"}],
        }
    )
    errors = group_commit.per_document(error, 2)
    assert isinstance(errors[1], DuplicateKeyError)
    assert errors[0] is not None and errors[0].code == 64


def test_a_failed_batch_fails_exactly_the_callers_in_it():
    collection = HeldCollection(None, ConnectionFailure("connection refused"))
    committer = GroupCommit(collection, busy_gap=0, max_delay=60)
    first = first_write_held(collection, committer)
    callers = start(committer, "b", "c", batch_of=True)
    collection.release.set()
    assert first.returned.wait(WAIT) and first.error is None  # its own batch was acknowledged
    for caller in callers:
        assert caller.returned.wait(WAIT)
        assert isinstance(caller.error, ConnectionFailure)
    assert callers[0].error is not callers[1].error  # each raises its own, in its own thread
    assert collection.writes == [("one", ["first"]), ("many", ["b", "c"])]
    committer.insert({"_id": "d"})  # the next batch is not marked by the failed one
    assert [d["_id"] for d in collection.stored] == ["first", "d"]


def test_one_committer_per_collection_and_process(monkeypatch):
    client = mongomock.MongoClient()
    db = client.db
    a, b = db.a, db.b
    assert group_commit.for_collection(a) is group_commit.for_collection(
        client.db["a"]
    )  # stores made per call share it
    assert group_commit.for_collection(a) is not group_commit.for_collection(b)
    assert group_commit.for_collection(a) is not group_commit.for_collection(client.other["a"])
    assert group_commit.for_collection(a) is not group_commit.for_collection(mongomock.MongoClient().db.a)
    before = group_commit.for_collection(a)
    monkeypatch.setattr(group_commit.os, "getpid", lambda: -1)  # as after fork
    assert group_commit.for_collection(a) is not before


def test_the_stores_insert_through_it_with_their_errors(memory, monkeypatch):
    from hydra.model.spec import load_job

    spec = load_job({"name": "echo", "user": "u", "command": "echo hi"})
    jobs = memory.pipeline.jobs
    job = jobs.create(spec, source="api", first_run_id="r1", job_id="j1")
    committer = group_commit.for_collection(jobs._collection)
    assert committer.documents >= 1
    with pytest.raises(Duplicate):  # an idempotent submission's id: the batch's duplicate key
        jobs.create(spec, source="api", first_run_id="r2", job_id=job.id)

    def unreachable(doc):
        raise ConnectionFailure("down")

    monkeypatch.setattr(committer.collection, "insert_one", unreachable)
    with pytest.raises(StoreUnavailable):
        jobs.create(spec, source="api", first_run_id="r3")

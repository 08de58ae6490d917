"""Group commit: the concurrent inserts of one process into one collection go to MongoDB
together, and each caller returns only once its own document is acknowledged.

On FerretDB an ``insert_many`` of 50 documents costs 0.11-0.23 ms of server CPU per document
against 0.4-0.9 ms for ``insert_one``, and about 15 times less on the client. The API's
threads (gunicorn's gthread workers) each insert a job, its audit event and its run; under
load several do so at once. :meth:`GroupCommit.insert` gathers them:

* in a quiet process (nothing being written, the previous document more than
  ``busy_gap`` seconds ago or from the same thread: one thread's loop never waits for
  itself) a caller writes its document at once, alone: no wait is added;
* in a busy one, callers join the open batch, which its first caller (the leader) writes
  once it holds ``max_size`` documents, or ``max_delay`` seconds after it opened, or - when
  it waited only because a write was out - as soon as that write is acknowledged, whichever
  comes first; the documents of a batch are written in the order they arrived;
* the batch is one ``insert_many(ordered=False)``: a document's own write error (its
  duplicate key: the unique-insert fences still decide races) is raised to the caller whose
  document it was, as ``insert_one`` would have raised it (``DuplicateKeyError``,
  ``WriteError``); the others are stored;
* a batch that fails as a whole (the server unreachable) fails every caller in it, and only
  them: the connection error is raised in each caller (their store's ``guarded`` makes it
  :class:`hydra.errors.StoreUnavailable`);
* nothing waits without a thread of its own: each batch is written by its leader, one of
  its callers, so a process that stops once its requests are answered loses none;
  :meth:`GroupCommit.close` (a process stopping sooner) writes what waits at once, and
  every later insert alone.

One :class:`GroupCommit` per collection and client, in each process (:func:`for_collection`;
a new one after ``fork``, like the client).
"""

from __future__ import annotations

import copy
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from pymongo.errors import BulkWriteError, DuplicateKeyError, WriteConcernError, WriteError

#: Documents one batch holds at most.
MAX_SIZE = 50
#: Seconds at most a batch waits for more documents (a write that hangs holds no caller
#: of a later batch longer than this; then that batch is written beside it).
MAX_DELAY = 0.003
#: Seconds between two documents of two threads below which the process counts as busy: a
#: batch then waits (up to MAX_DELAY) for company even when nothing is being written. The
#: API's threads spend most of a submission outside MongoDB (measured: with 8 clients, its
#: inserts almost never met while a write was out), so they rarely meet by chance.
BUSY_GAP = 0.010
#: MongoDB's code for a duplicate key.
DUPLICATE_KEY = 11000


@dataclass
class _Batch:
    docs: list[dict] = field(default_factory=list)
    #: Per document: None (acknowledged) or the exception its caller raises.
    errors: list[BaseException | None] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)
    opened: float = field(default_factory=time.monotonic)


class GroupCommit:
    """The group commit of one collection (anything with pymongo's ``insert_many``)."""

    def __init__(
        self, collection: Any, *, max_size: int = MAX_SIZE, max_delay: float = MAX_DELAY, busy_gap: float = BUSY_GAP
    ):
        self.collection = collection
        self.max_size = max_size
        self.max_delay = max_delay
        self.busy_gap = busy_gap
        self._last_arrival = float("-inf")  # when the previous document came, and from which thread
        self._last_thread: int | None = None
        self._lock = threading.Condition()
        self._open: _Batch | None = None  # the batch callers join
        self._writing = 0  # batches being written
        self._closed = False
        #: Batches written and documents in them (what the bench and the tests read).
        self.batches = 0
        self.documents = 0

    def insert(self, doc: dict) -> None:
        """Insert ``doc``; return once MongoDB acknowledged it, or raise its own error."""
        with self._lock:
            if self._closed:
                batch, position = _Batch(docs=[doc]), 0
            else:
                now, thread = time.monotonic(), threading.get_ident()
                busy = now - self._last_arrival < self.busy_gap and thread != self._last_thread
                self._last_arrival, self._last_thread = now, thread
                current = self._open
                if current is None or len(current.docs) >= self.max_size:
                    current = self._open = _Batch(opened=now)
                batch = current
                batch.docs.append(doc)
                position = len(batch.docs) - 1
                if position > 0:  # a follower: the batch's leader writes it
                    if len(batch.docs) >= self.max_size:
                        self._lock.notify_all()
                    while not batch.done.is_set():
                        self._lock.wait()
                    self._raise(batch, position)
                    return
                # The leader: in a quiet process, write at once; else gather until the batch
                # is full or max_delay passed (or, when only a write being out made it wait,
                # until that write is acknowledged).
                deadline = batch.opened + self.max_delay
                while (busy or self._writing) and len(batch.docs) < self.max_size and not self._closed:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._lock.wait(left)
                if self._open is batch:
                    self._open = None
            self._writing += 1
        try:
            errors = self._write(batch.docs)
        except BaseException as exc:  # not even an answer (interrupted): every caller fails
            errors = [exc] * len(batch.docs)
            raise
        finally:
            with self._lock:
                self._writing -= 1
                self.batches += 1
                self.documents += len(batch.docs)
                batch.errors = errors
                batch.done.set()
                self._lock.notify_all()
        self._raise(batch, position)

    def close(self) -> None:
        """Write what waits now, and every later document alone (a process shutting down)."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()

    def _write(self, docs: list[dict]) -> list[BaseException | None]:
        """One write of ``docs``; each document's error (None: acknowledged)."""
        try:
            if len(docs) == 1:
                try:
                    self.collection.insert_one(docs[0])
                except (DuplicateKeyError, WriteError) as exc:
                    return [exc]
            else:
                self.collection.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            return per_document(exc, len(docs))
        except Exception as exc:  # noqa: BLE001 - the whole batch failed: each of its callers raises it
            return [exc] + [_copy(exc) for _ in docs[1:]]
        return [None] * len(docs)

    @staticmethod
    def _raise(batch: _Batch, position: int) -> None:
        error = batch.errors[position]
        if error is not None:
            raise error


def _copy(exc: BaseException) -> BaseException:
    """The same error for another caller (its own traceback when raised in its thread)."""
    try:
        return copy.copy(exc)
    except Exception:  # noqa: BLE001 - an exception that cannot be rebuilt from its arguments
        return exc


def per_document(exc: BulkWriteError, count: int) -> list[BaseException | None]:
    """Each document's error in an unordered ``insert_many`` that raised ``exc``: its own write
    error (by ``index``) as ``insert_one`` raises it; a write concern error fails the rest."""
    details = exc.details or {}
    errors: list[BaseException | None] = [None] * count
    for error in details.get("writeErrors", []):
        index = error.get("index")
        if not isinstance(index, int) or not 0 <= index < count:
            continue
        code = error.get("code")
        message = error.get("errmsg", "write error")
        errors[index] = (DuplicateKeyError if code == DUPLICATE_KEY else WriteError)(message, code, error)
    concern = details.get("writeConcernErrors") or []
    if concern:
        first = concern[0]
        failed = WriteConcernError(first.get("errmsg", "write concern error"), first.get("code"), first)
        errors = [failed if error is None else error for error in errors]
    return errors


_lock = threading.Lock()
#: This process's group commits by (client, database, collection): stores are made per call
#: (``AuditStore()``), each with collection objects of its own, and must share one.
_committers: dict[tuple[int, str, str], tuple[Any, GroupCommit]] = {}
_pid: int | None = None


def for_collection(collection: Any) -> GroupCommit:
    """This process's group commit of ``collection``'s namespace on its client (a new one
    after fork, where the client is new too)."""
    global _pid
    database = collection.database
    key = (id(database.client), database.name, collection.name)
    with _lock:
        if _pid != os.getpid():
            _committers.clear()
            _pid = os.getpid()
        known = _committers.get(key)
        if known is None or known[0] is not database.client:
            known = _committers[key] = (database.client, GroupCommit(collection))
        return known[1]

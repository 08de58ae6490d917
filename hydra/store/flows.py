"""``FlowStore``: what follows a run (``run_flows``) and the chords of canvases (``chords``).

MongoDB keeps what a run starts when it ends, so that whoever records the end - the worker
that ran it, or the controller - continues from the record, whichever attempt ends last and
whenever its message was (re-)published (``hydra.dispatch.continuation``). Every document is
addressed by ``_id``:

* ``run_flows/<run id>`` (:class:`~hydra.model.flow.RunFlow`) is written once, before its run
  is recorded (:meth:`FlowStore.begin`): the steps that follow the run, or what started it.
  A later attempt gets one when the attempt before hands over (:meth:`FlowStore.hand_over`,
  before it is recorded too). Afterwards only the end-fence winner of that run writes it
  (``next``, ``started``), so no two writers race on a document.
* ``chords/<group id>`` (:class:`~hydra.model.flow.Chord`) is written once when the chord is
  published; ``chords/<group id>/<part>`` (:class:`~hydra.model.flow.ChordPart`) once per
  header part, by the end-fence winner of its last attempt: the unique insert is the
  decision, and whoever finds every part there decides the body (its run's record, written
  only if new, makes that once).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError
from pymongo.operations import DeleteOne

from hydra import clock, names
from hydra.model.flow import Chord, ChordPart, RunFlow, Then, Upstream
from hydra.store.base import Store

#: Attempts followed from one run at most (retries and failovers: 20 + 100).
MAX_ATTEMPTS = 200
#: Flow records read when a run started in this process, kept for its end (a few at most:
#: a pool process runs one attempt at a time).
_KEEP = 64
_KEPT: OrderedDict[str, RunFlow | None] = OrderedDict()
_KEPT_LOCK = threading.Lock()
_UNREAD = object()
#: Runs this process wrote a flow record for (:meth:`FlowStore.begin`) that are not recorded
#: yet: every path writes a run's flow record just before it records the run, in the same
#: process (a canvas step, a chord body, a dependant, an attempt handed over, ``apply_async``),
#: so the record can say whether the run has one (``Run.flow``, :func:`begun`) and the worker
#: starting it need not read ``run_flows`` for a run that has none.
_BEGUN: OrderedDict[str, None] = OrderedDict()
_BEGUN_MAX = 10_000


def begun(run_id: str) -> bool:
    """Whether this process wrote run ``run_id``'s flow record (:meth:`FlowStore.begin`) and
    has not recorded the run yet; forgets it (``RunStore.record`` asks once, at the insert)."""
    with _KEPT_LOCK:
        return _BEGUN.pop(run_id, _UNREAD) is not _UNREAD


class FlowStore(Store[RunFlow]):
    collection_name, record_type, kind = names.RUN_FLOWS, RunFlow, "run flow"

    @property
    def _chords(self) -> Collection:
        return self._named(names.CHORDS)

    # -- runs -------------------------------------------------------------------------------
    def begin(
        self, run_id: str, *, then: Then | None = None, upstream: Upstream | None = None, root: str | None = None
    ) -> bool:
        """Note what follows run ``run_id`` and what started it, before the run is recorded.
        Once per run: False (nothing written) when it was noted already."""
        doc: dict = {"_id": run_id, "at": clock.utcnow()}
        if then is not None and not then.empty:
            doc["then"] = then.to_doc()
        if upstream is not None:
            doc["upstream"] = upstream.to_doc()
        if root is not None:
            doc["root"] = root
        # Noted first: an insert that raises may still have been applied, and a run said to have
        # a flow record that has none costs its worker only the read it made before.
        _note_begun(run_id)
        try:
            self._collection.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    def first(self, run_id: str) -> RunFlow | None:
        """The flow record of the run's first attempt, where what follows it is kept (the
        run's own for a first attempt); None for a run that is part of no flow. The run's own
        is the one :meth:`read_at_start` kept, when this process started the run."""
        with _KEPT_LOCK:
            kept = _KEPT.pop(run_id, _UNREAD)
        own = self.find(run_id) if kept is _UNREAD else kept
        if not isinstance(own, RunFlow):
            return None
        return self.find(own.root) if own.root is not None else own

    def read_at_start(self, run_id: str, *, recorded: bool | None = None) -> RunFlow | None:
        """The run's flow record, read by the worker starting it (for ``HYDRA_UPSTREAM_*``) and
        kept for its end in this process: what :meth:`first` needs is written before the run is
        recorded, and never changed, so one read serves both. ``recorded``: what the run's
        record says (``Run.flow``); False - it has none - is kept without a read, None (not
        said: recorded by an older Hydra) reads as True does."""
        found = self.find(run_id) if recorded is not False else None
        with _KEPT_LOCK:
            _KEPT[run_id] = found
            while len(_KEPT) > _KEEP:
                _KEPT.popitem(last=False)
        return found

    def hand_over(self, run_id: str, next_id: str) -> None:
        """Run ``run_id`` is followed by attempt ``next_id`` (a retry or failover, not recorded
        yet): the new attempt belongs to the same flow (its first attempt, what started it)."""
        own = self.find(run_id)
        if own is not None and (own.then or own.upstream or own.root):
            self.begin(next_id, upstream=own.started_by, root=own.root or run_id)

    def followed(self, run_id: str, next_id: str) -> None:
        """Note the attempt that followed run ``run_id`` (what ``AsyncResult`` follows). Only the
        end-fence winner of ``run_id`` writes this."""
        self._collection.update_one({"_id": run_id}, {"$set": {"next": next_id}}, upsert=True)

    def next_of(self, run_id: str) -> str | None:
        """The attempt that followed run ``run_id``; "" when none will (its job was deleted
        before a retry); None when none is noted."""
        found = self.find(run_id)
        return found.next if found is not None else None

    def latest(self, run_id: str) -> str:
        """The last attempt known to follow run ``run_id`` (``run_id`` itself when none did)."""
        current = run_id
        for _ in range(MAX_ATTEMPTS):
            following = self.next_of(current)
            if not following:
                break
            current = following
        return current

    def note_started(self, run_id: str, entries: list[dict]) -> None:
        """What the final end of run ``run_id`` started or left not run (``{run_id, job_id,
        job_name, via, note}``). Only the end-fence winner of ``run_id`` writes this."""
        if entries:
            self._collection.update_one({"_id": run_id}, {"$push": {"started": {"$each": entries}}}, upsert=True)

    # -- chords -----------------------------------------------------------------------------
    def register_chord(self, chord: Chord) -> bool:
        """Store a chord when it is published; False when one with its id is stored already."""
        try:
            self._chords.insert_one({**chord.to_doc(), "at": clock.utcnow()})
        except DuplicateKeyError:
            return False
        return True

    def chord(self, group_id: str) -> Chord | None:
        doc = self._chords.find_one({"_id": group_id})
        return Chord.from_doc(doc) if doc is not None else None

    def arrive(self, group_id: str, part: str, *, status: str, run_id: str) -> bool:
        """Header part ``part`` of chord ``group_id`` ended for good as ``status`` (its last
        attempt ``run_id``). False when that was recorded already."""
        try:
            self._chords.insert_one({"_id": f"{group_id}/{part}", "status": status, "run_id": run_id})
        except DuplicateKeyError:
            return False
        return True

    def arrivals(self, group_id: str, parts: list[str]) -> dict[str, ChordPart]:
        """The parts of chord ``group_id`` that have ended, by part (each read by ``_id``)."""
        docs = self._docs(self._chords, [f"{group_id}/{part}" for part in parts])
        return {key.split("/", 1)[1]: ChordPart.from_doc(doc) for key, doc in docs.items()}

    # -- retention --------------------------------------------------------------------------
    def forget(self, run_ids: list[str]) -> None:
        """Delete the flow records of runs that are pruned, with the chord records they close
        (a header part's end, a body's chord)."""
        flows = self._docs(self._collection, run_ids)
        chords = []
        for doc in flows.values():
            flow = RunFlow.from_doc(doc)
            group = (flow.then or {}).get("chord")
            if isinstance(group, str):
                chords.append(DeleteOne({"_id": f"{group}/{flow.root or flow.id}"}))
            upstream = flow.upstream or {}
            if upstream.get("via") == "chord" and isinstance(upstream.get("group"), str):
                chords.append(DeleteOne({"_id": upstream["group"]}))
        if chords:
            self._chords.bulk_write(chords, ordered=False)
        if run_ids:
            self._collection.bulk_write([DeleteOne({"_id": ident}) for ident in run_ids], ordered=False)


def _note_begun(run_id: str) -> None:
    with _KEPT_LOCK:
        _BEGUN[run_id] = None
        while len(_BEGUN) > _BEGUN_MAX:
            _BEGUN.popitem(last=False)

"""What follows a run: the steps a Celery canvas or a job's dependencies start when it ends.

Pure shapes and decisions, no I/O. A run that is part of a flow has a :class:`Then`: the
nodes to start after it succeeded (``on_success``: its ``link`` callbacks and the next step
of its chain) and after it failed for good (``on_failure``: its ``link_error`` errbacks),
and the chord whose header it belongs to. A node is a pre-signed :class:`Step` (one
``hydra.run_command`` message, signed when the canvas was published, with its own
:class:`Then`) or a :class:`ChordStart` (start a chord's header, registered at publish).

A chain ``a | b | c`` is ``a`` whose ``on_success`` holds ``b``, whose ``on_success`` holds
``c``: what follows a step travels with it. :func:`outcome_plan` says, for the status a run
finally ended with, which nodes start and which are recorded as not run. Errbacks a run did
not need are neither started nor recorded (like Celery's).

Documents: :meth:`Then.to_doc` / :func:`then_of` (MongoDB, ``hydra.store.flows``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from hydra.model.records import Record
from hydra.model.status import RunStatus

#: The most steps one submission may carry (its canvas is kept in MongoDB with its run).
MAX_STEPS = 500
#: How a run started another (what ``upstream.via`` and ``started[].via`` say).
VIA_SUCCESS, VIA_FAILURE, VIA_CHORD = "on_success", "on_failure", "chord"
#: Job dependencies (a job's own fields, ``hydra.model.spec``): which ends start them.
DEPENDENCY_FIELDS = ("on_success", "on_failure", "on_completion")
#: Ends that count as a failure of the run (its errbacks and ``on_failure`` jobs start).
FAILED_ENDS = frozenset(
    {RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.DEAD_LETTER, RunStatus.LOST, RunStatus.RETRYING}
)
#: What a run id or a status handed to a command may look like (``HYDRA_UPSTREAM_*``).
_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


@dataclass(frozen=True)
class Step:
    """One pre-signed ``hydra.run_command``: its run id, its validated message (``kwargs``),
    the signature over that message as it is sent (no embed), and what follows it."""

    run_id: str
    kwargs: dict
    signature: str
    then: Then = field(default_factory=lambda: Then())

    def to_doc(self) -> dict:
        return {"kind": "step", "run_id": self.run_id, "kwargs": self.kwargs, "sig": self.signature, **self._then()}

    def _then(self) -> dict:
        return {"then": self.then.to_doc()} if not self.then.empty else {}

    @property
    def job_id(self) -> str:
        return str(self.kwargs.get("job_id") or "")

    @property
    def name(self) -> str:
        return str(self.kwargs.get("name") or "")


@dataclass(frozen=True)
class ChordStart:
    """Start the header of chord ``group_id`` (registered with its body when published)."""

    group_id: str

    def to_doc(self) -> dict:
        return {"kind": "chord", "id": self.group_id}


Node = Step | ChordStart


@dataclass(frozen=True)
class Then:
    """What follows a run (see the module docstring)."""

    on_success: tuple[Node, ...] = ()
    on_failure: tuple[Node, ...] = ()
    chord: str | None = None

    @property
    def empty(self) -> bool:
        return not self.on_success and not self.on_failure and self.chord is None

    def to_doc(self) -> dict:
        doc: dict[str, Any] = {}
        if self.on_success:
            doc["on_success"] = [node.to_doc() for node in self.on_success]
        if self.on_failure:
            doc["on_failure"] = [node.to_doc() for node in self.on_failure]
        if self.chord is not None:
            doc["chord"] = self.chord
        return doc

    def followed_by(self, nodes: tuple[Node, ...] | list[Node]) -> Then:
        """This, with ``nodes`` started after success too (a chain's next step)."""
        return Then(self.on_success + tuple(nodes), self.on_failure, self.chord)


def node_of(doc: Any) -> Node:
    """A node from its document; ValueError for anything else."""
    if not isinstance(doc, dict):
        raise ValueError(f"not a flow node: {type(doc).__name__}")
    if doc.get("kind") == "chord" and isinstance(doc.get("id"), str):
        return ChordStart(doc["id"])
    if doc.get("kind") == "step" and isinstance(doc.get("run_id"), str) and isinstance(doc.get("kwargs"), dict):
        return Step(doc["run_id"], doc["kwargs"], str(doc.get("sig") or ""), then_of(doc.get("then")))
    raise ValueError(f"not a flow node: {sorted(doc)[:5]}")


def then_of(doc: Any) -> Then:
    """A :class:`Then` from its document (an empty one for None)."""
    if not doc:
        return Then()
    if not isinstance(doc, dict):
        raise ValueError("not a flow continuation")
    chord = doc.get("chord")
    return Then(
        tuple(node_of(item) for item in doc.get("on_success") or ()),
        tuple(node_of(item) for item in doc.get("on_failure") or ()),
        chord if isinstance(chord, str) else None,
    )


def steps_in(nodes: tuple[Node, ...] | list[Node]) -> Iterator[Step]:
    """Every step of ``nodes`` and of what follows them, depth first (chords not entered)."""
    stack = list(reversed(nodes))
    while stack:
        node = stack.pop()
        if isinstance(node, Step):
            yield node
            stack.extend(reversed(node.then.on_success + node.then.on_failure))


@dataclass(frozen=True)
class Plan:
    """What a run's final end starts (``start``), and what it leaves not run (``skip``, with
    the reason each is recorded with)."""

    start: tuple[Node, ...] = ()
    via: str = VIA_SUCCESS
    skip: tuple[Node, ...] = ()
    reason: str = ""


def outcome_plan(then: Then, status: RunStatus, run_id: str) -> Plan:
    """What follows a run that finally ended as ``status``: after success its ``on_success``
    nodes start; after a failure its ``on_failure`` nodes start and its ``on_success`` nodes
    are not run; after a cancel nothing starts and its ``on_success`` nodes are not run."""
    if status == RunStatus.SUCCEEDED:
        return Plan(start=then.on_success, via=VIA_SUCCESS)
    if status == RunStatus.CANCELLED:
        return Plan(skip=then.on_success, reason=f"not started: run {run_id} before it was cancelled")
    return Plan(
        start=then.on_failure,
        via=VIA_FAILURE,
        skip=then.on_success,
        reason=f"not started: run {run_id} before it ended {status.value}",
    )


def dependants_for(status: RunStatus) -> tuple[str, ...]:
    """Which of a job's dependency fields start after a run that finally ended as ``status``
    (none after a cancel: cancelling a run stops what would follow it)."""
    if status == RunStatus.SUCCEEDED:
        return ("on_success", "on_completion")
    if status in FAILED_ENDS:
        return ("on_failure", "on_completion")
    return ()


@dataclass(frozen=True)
class Upstream:
    """The run(s) that started a run: ``runs`` (a chord body has its header's), their job,
    the status each ended with, and how (``via``)."""

    runs: tuple[str, ...]
    statuses: tuple[str, ...]
    via: str
    job_id: str = ""
    job_name: str = ""
    #: A chord body's: the chord's group id.
    group: str = ""

    def to_doc(self) -> dict:
        doc = {
            "runs": list(self.runs),
            "statuses": list(self.statuses),
            "via": self.via,
            "job_id": self.job_id,
            "job_name": self.job_name,
        }
        if self.group:
            doc["group"] = self.group
        return doc

    @classmethod
    def of(cls, doc: Any) -> Upstream | None:
        if not isinstance(doc, dict) or not isinstance(doc.get("runs"), list):
            return None
        return cls(
            tuple(str(r) for r in doc["runs"]),
            tuple(str(s) for s in doc.get("statuses") or ()),
            str(doc.get("via") or ""),
            str(doc.get("job_id") or ""),
            str(doc.get("job_name") or ""),
            str(doc.get("group") or ""),
        )

    def environment(self) -> dict[str, str]:
        """``HYDRA_UPSTREAM_RUN_ID``, ``HYDRA_UPSTREAM_STATUS`` (comma separated for a chord
        body: one per header run, in the group's order), ``HYDRA_UPSTREAM_JOB_ID`` and
        ``HYDRA_UPSTREAM_VIA``. Read from MongoDB, not from the signed message, so only values
        that look like ids and statuses are passed on (nothing a shell could take for code)."""
        statuses = {s.value for s in RunStatus}
        runs = [r for r in self.runs if _ID_RE.match(r)]
        ends = [s for s in self.statuses if s in statuses]
        env = {"HYDRA_UPSTREAM_RUN_ID": ",".join(runs), "HYDRA_UPSTREAM_STATUS": ",".join(ends)}
        if _ID_RE.match(self.job_id or ""):
            env["HYDRA_UPSTREAM_JOB_ID"] = self.job_id
        if self.via in (VIA_SUCCESS, VIA_FAILURE, VIA_CHORD, *DEPENDENCY_FIELDS):
            env["HYDRA_UPSTREAM_VIA"] = self.via
        return env


@dataclass
class RunFlow(Record):
    """A run's place in a flow (``run_flows``, by run id): what follows it (``then``, on the
    first attempt), the first attempt when it is a later one (``root``), what started it
    (``upstream``), the attempt that followed it (``next``: a retry or failover), and what
    its final end started or left not run (``started``)."""

    id: str
    then: dict = field(default_factory=dict)
    root: str | None = None
    upstream: dict | None = None
    next: str | None = None
    started: list[dict] = field(default_factory=list)

    @property
    def continuation(self) -> Then:
        return then_of(self.then)

    @property
    def started_by(self) -> Upstream | None:
        return Upstream.of(self.upstream)


@dataclass
class Chord(Record):
    """A chord (``chords``, by group id): its header's nodes, the run id each header part ends
    as (the last step of a chained part), and its body, which starts once every part ended
    and all succeeded (else it is recorded as not run)."""

    id: str
    parts: list[str] = field(default_factory=list)
    header: list[dict] = field(default_factory=list)
    body: dict = field(default_factory=dict)

    @property
    def body_step(self) -> Step:
        node = node_of(self.body)
        if not isinstance(node, Step):
            raise ValueError("a chord's body is a step")
        return node

    @property
    def header_nodes(self) -> tuple[Node, ...]:
        return tuple(node_of(item) for item in self.header)


@dataclass
class ChordPart(Record):
    """One header part of a chord ended for good (``chords``, ``<group id>/<part>``): how."""

    id: str
    status: str = ""
    run_id: str = ""

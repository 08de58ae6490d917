"""Celery's canvas, taken in when a ``hydra.run_command`` is published: every step pre-signed,
what follows each run kept in MongoDB (``hydra.model.flow``, ``hydra.store.flows``).

A publisher's ``apply_async`` options may carry a canvas: ``link`` (callbacks after success),
``link_error`` (errbacks after a failure for good), ``chain`` (the steps after it; Celery
passes them reversed), ``chord`` (the body of the chord whose header this task is in, with
``group_id``). :class:`Canvas` turns them, with Celery's own signature classes, into the
:class:`~hydra.model.flow.Then` of the submitted run: each ``hydra.run_command`` step is
validated like any submission, given its run id and job id, and signed as the message it
will be sent as; a chain becomes steps that follow each other; a group its members; a chord
(inside a chain or a link) a :class:`~hydra.model.flow.ChordStart` and a chord record. The
message sent to the broker carries none of it: Hydra's messages have no embed
(:func:`refusal`), and whoever records a run's end continues from the record
(``hydra.dispatch.continuation``). So nothing a worker does on behalf of a message can make
Hydra sign what the message's signer did not: the steps were signed by that signer, and a
worker only sends them as signed.

Refused, with InvalidJob naming the option (``link``, ``link_error``, ``chain``, ``chord``),
before anything is stored or sent: a step of another task (Celery's ``celery.*`` ones
included), a step with positional arguments or its own ``countdown``/``eta``/``expires``/time
limits, a group followed by more steps outside a chord, a chord within a chord, a chord body
that is a group, a ``chord`` option without a published chord, more than
:data:`~hydra.model.flow.MAX_STEPS` steps.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from celery.canvas import Signature, _chain, _chord, group, maybe_signature
from kombu.utils import json as kombu_json

from hydra import names
from hydra.dispatch.envelope import Envelope, seal
from hydra.errors import InvalidJob
from hydra.model.flow import MAX_STEPS, Chord, ChordStart, Node, Step, Then, steps_in
from hydra.model.records import Chain
from hydra.store.flows import FlowStore

#: The send options that carry a canvas (Celery's names), and what each is for (error messages).
CANVAS_OPTIONS = {
    "link": "after the task succeeded",
    "link_error": "after it failed",
    "chain": "as the chain's next step",
    "chord": "as the body of its chord",
}
#: A step's options that would change when or how long it runs: refused (a step is signed
#: before its time is known).
TIMING_OPTIONS = ("countdown", "eta", "expires", "time_limit", "soft_time_limit")

#: ``prepare(kwargs) -> message``: a step's validated message, its job id assigned.
Prepare = Callable[[Any], dict]


def _listed(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def step_envelope(step: Step) -> Envelope:
    """The message a pre-signed step is sent as: its kwargs, no embed, Hydra's first-attempt headers."""
    return seal_options(step.run_id, step.kwargs)


def seal_options(run_id: str, kwargs: dict) -> Envelope:
    return Envelope.for_send(
        names.TASK_RUN_COMMAND, run_id, (), kwargs, {"headers": Chain().headers(), "ignore_result": False}
    )


def refusal(envelope: Envelope) -> str | None:
    """Why a worker must not run a message that carries a canvas (None when it carries none):
    Hydra's messages never do - what follows a run is kept with its record."""
    carried = [name for name in ("callbacks", "errbacks", "chain", "chord") if envelope.embed.get(name) is not None]
    if carried:
        return (
            f"the message carries {', '.join(carried)}: Hydra's messages carry no canvas "
            "(what follows a run is kept with its record)"
        )
    return None


class Canvas:
    """One submission's canvas being taken in (see the module docstring)."""

    def __init__(self, prepare: Prepare, new_id: Callable[[], str], app: Any = None):
        self.prepare, self.new_id, self.app = prepare, new_id, app
        #: Every step made, by run id (for the caller's audit and checks).
        self.steps: dict[str, Step] = {}
        #: Chords made here (inside a chain or a link), to store with the submission.
        self.chords: list[Chord] = []
        #: Chords published beforehand (``chord.apply_async``) a step joins: group id -> part ids.
        self.joined: dict[str, set[str]] = {}
        self._errbacks: dict[str, Step] = {}

    # -- what a submission carries ----------------------------------------------------------
    def then_of(self, options: Mapping[str, Any], run_id: str) -> Then:
        """What follows the submitted run ``run_id``, from its send ``options``."""
        on_success: list[Node] = []
        for entry in _listed(options.get("link")):
            on_success += self._nodes(entry, "link", (), None)
        chained = list(reversed(_listed(options.get("chain"))))  # Celery's order: the last runs next
        on_success += self._chain(chained, "chain", (), None)
        on_failure = [node for entry in _listed(options.get("link_error")) for node in self._errback(entry)]
        chord = self._membership(options, run_id, "chord")
        return Then(tuple(on_success), tuple(on_failure), chord)

    def body_of(self, body: Any) -> Step:
        """A chord's body (``chord.apply_async``, through the result backend's ``apply_chord``)."""
        nodes = self._nodes(body, "chord", (), None)
        if len(nodes) != 1 or not isinstance(nodes[0], Step):
            raise InvalidJob({"chord": [f"a chord's body is one {names.TASK_RUN_COMMAND} step or a chain of them"]})
        return nodes[0]

    def check_joined(self, flows: FlowStore) -> None:
        """Header tasks of a chord published beforehand (``chord.apply_async``): InvalidJob
        unless that chord was published with them as its parts."""
        for group_id, run_ids in self.joined.items():
            chord = flows.chord(group_id)
            if chord is None or not run_ids <= set(chord.parts):
                raise InvalidJob(
                    {"chord": [f"no chord {group_id!r} with these header tasks: publish it with celery.chord"]}
                )

    @staticmethod
    def without(options: Mapping[str, Any]) -> dict:
        """``options`` less the canvas (``group_id``, ``group_index`` stay: Celery's view)."""
        return {key: value for key, value in options.items() if key not in CANVAS_OPTIONS}

    # -- nodes ------------------------------------------------------------------------------
    def _nodes(self, entry: Any, option: str, after: tuple[Node, ...], chord: str | None) -> list[Node]:
        """The nodes ``entry`` (a signature or its dict) stands for, with ``after`` started
        after it succeeded; ``chord``: the chord whose header it is in."""
        try:
            sig = maybe_signature(entry, app=self.app) if isinstance(entry, (Mapping, Signature)) else None
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidJob({option: [f"not a Celery signature: {exc}"]}) from None
        if sig is None:
            raise InvalidJob(
                {option: [f"a step is a signature of {names.TASK_RUN_COMMAND}, not {type(entry).__name__}"]}
            )
        if isinstance(sig, _chord):
            return [self._chord(sig, option, after, chord)]
        if isinstance(sig, _chain):
            return self._chain(list(sig.tasks), option, after, chord)
        if isinstance(sig, group):
            if after:
                raise InvalidJob({option: ["a group followed by more steps is a chord: use celery.chord(group, body)"]})
            return [node for member in sig.tasks for node in self._nodes(member, option, (), chord)]
        return [self._step(sig, option, after, chord)]

    def _chain(self, tasks: list, option: str, after: tuple[Node, ...], chord: str | None) -> list[Node]:
        """Steps in order (``tasks``): each starts after the one before succeeded; the last is
        followed by ``after`` and is the one a chord header waits for."""
        following: tuple[Node, ...] = after
        for position, task in enumerate(reversed(tasks)):
            following = tuple(self._nodes(task, option, following, chord if position == 0 else None))
        return list(following)

    def _errback(self, entry: Any) -> list[Node]:
        """An errback, once per submission: Celery gives every step of a chain the chain's
        ``link_error``; whichever step fails starts it, once."""
        key = kombu_json.dumps(dict(entry) if isinstance(entry, Mapping) else entry, sort_keys=True, default=str)
        if key not in self._errbacks:
            made = self._nodes(entry, "link_error", (), None)
            if len(made) != 1 or not isinstance(made[0], Step):
                raise InvalidJob({"link_error": [f"an errback is one {names.TASK_RUN_COMMAND} step or a chain"]})
            self._errbacks[key] = made[0]
        return [self._errbacks[key]]

    def _step(self, sig: Signature, option: str, after: tuple[Node, ...], chord: str | None) -> Step:
        task = sig.get("task")
        if sig.get("subtask_type") or task != names.TASK_RUN_COMMAND:
            kind = sig.get("subtask_type") or repr(task)[:80]
            raise InvalidJob({option: [f"only {names.TASK_RUN_COMMAND} steps run on Hydra's workers, not {kind}"]})
        if sig.get("args"):
            raise InvalidJob({option: [f"a {names.TASK_RUN_COMMAND} step takes keyword arguments only"]})
        options = sig.get("options") or {}
        timing = [name for name in TIMING_OPTIONS if options.get(name) is not None]
        if timing:
            raise InvalidJob({option: [f"a step cannot set {', '.join(timing)}: it is signed before it is started"]})
        if options.get("chain"):
            raise InvalidJob({option: ["a step cannot carry a chain of its own; chain the steps instead"]})
        if len(self.steps) >= MAX_STEPS:
            raise InvalidJob({option: [f"at most {MAX_STEPS} steps in one submission"]})
        try:
            message = self.prepare(sig.get("kwargs") or {})
        except InvalidJob as exc:  # named by the option that carries the step, then its own field
            raise InvalidJob({option: [f"{field}: {problem}" for field, problem in exc.errors.items()]}) from None
        run_id = options.get("task_id") or self.new_id()
        if not isinstance(run_id, str) or not run_id or len(run_id) > 64:
            raise InvalidJob({option: ["a step's task_id is a string of 1 to 64 characters"]})
        if run_id in self.steps:
            raise InvalidJob({option: [f"task_id {run_id!r} names two steps"]})
        links = [node for entry in _listed(options.get("link")) for node in self._nodes(entry, option, (), None)]
        errbacks = [node for entry in _listed(options.get("link_error")) for node in self._errback(entry)]
        member = chord if chord is not None else self._membership(options, run_id, option)
        then = Then(tuple(links) + after, tuple(errbacks), member)
        step = Step(run_id, message, seal(run_id, message, Chain(), {}).signature, then)
        self.steps[run_id] = step
        return step

    def _chord(self, sig: Any, option: str, after: tuple[Node, ...], within: str | None) -> ChordStart:
        """A chord inside a chain or a link: its header and body made here, stored with the
        submission; starting it starts its header."""
        if within is not None:
            raise InvalidJob({option: ["a chord within a chord is not supported"]})
        header = sig.tasks
        group_id = (header.options.get("task_id") if isinstance(header, group) else None) or self.new_id()
        members = list(header.tasks) if isinstance(header, group) else _listed(header)
        nodes = [node for member in members for node in self._nodes(member, option, (), group_id)]
        body = self._nodes(sig.body, option, after, None)
        if len(body) != 1 or not isinstance(body[0], Step):
            raise InvalidJob({option: [f"a chord's body is one {names.TASK_RUN_COMMAND} step or a chain of them"]})
        parts = [step.run_id for step in steps_in(nodes) if step.then.chord == group_id]
        self.chords.append(
            Chord(id=group_id, parts=parts, header=[node.to_doc() for node in nodes], body=body[0].to_doc())
        )
        return ChordStart(group_id)

    def _membership(self, options: Mapping[str, Any], run_id: str, option: str) -> str | None:
        """The chord a step joins by its own options (Celery's ``chord`` and ``group_id``: a
        header task of ``chord.apply_async``), to check against the published chord."""
        if not options.get("chord"):
            return None
        group_id = options.get("group_id")
        if not isinstance(group_id, str) or not group_id:
            raise InvalidJob({option: ["a chord header task without its group_id: publish it with celery.chord(...)"]})
        self.joined.setdefault(group_id, set()).add(run_id)
        return group_id


def register_chord(flows: FlowStore, group_id: str, parts: list[str], body: Any, canvas: Canvas) -> Step:
    """Store a chord published from Python (Celery's ``apply_chord``, before its header's
    tasks are sent): its body taken in by ``canvas`` (validated, checked, pre-signed), with
    the run ids of its header parts; each header task then joins it. Returns the body."""
    step = canvas.body_of(body)
    if not flows.register_chord(Chord(id=group_id, parts=list(parts), body=step.to_doc())):
        raise InvalidJob({"chord": [f"a chord {group_id!r} was published already"]})
    return step

"""Canvas steps a message carries: pre-signed when it is published, checked by the worker,
sent as signed.

A ``hydra.run_command`` message may carry steps Celery starts after it: ``link`` (its
callbacks, after success), ``link_error`` (errbacks, after a failure) and the next steps of a
``chain``. Whoever starts a step - the worker that ran the message - holds no private key
(``hydra.dispatch.signing``), so every step must be complete and signed before the message
carrying it is. :func:`presign` does that when a submission is accepted: each step gets its
run id, its job body is validated (and its job stored, by the caller), its own steps are
pre-signed in turn, and the message it will be sent as is signed as the publisher signs any.
The carrying message's signature covers its steps (``hydra.dispatch.envelope``).

A worker checks every step of a message before it runs anything (:func:`refusal`), and
publishing a step (``Pipeline.forward``) verifies the step's own signature and sends it
exactly as signed: nothing is signed on a worker, so nothing a worker does on behalf of a
message can make Hydra sign what the message's signer did not.

A pre-signed step is a Celery signature in its dict form, immutable (a step takes nothing
from the task before it)::

    {"task": "hydra.run_command", "args": [], "kwargs": <the validated message>,
     "options": {"task_id": <run id>, "headers": {<Hydra's headers>, "hydra_sig": ...},
                 "link": [<pre-signed steps>], "link_error": [...]},
     "subtask_type": None, "immutable": True}

What is refused, at publish (InvalidJob naming the option) and by a worker: a step of another
task (Celery's ``celery.*`` included), a group, chord or nested chain as a step, a ``chord``
(Hydra's result backend has no chord support), a step with args, its own timing options or
a signature that does not match.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from hydra import names
from hydra.dispatch import signing
from hydra.dispatch.envelope import Envelope
from hydra.errors import InvalidJob
from hydra.model.records import Chain

#: The send options that carry steps, and where each is applied (for error messages).
STEP_OPTIONS = {
    "link": "after the task succeeded",
    "link_error": "after it failed",
    "chain": "as the chain's next step",
}
#: A step's options that would change when or how long it runs: refused (a step is signed
#: before its time is known).
TIMING_OPTIONS = ("countdown", "eta", "expires", "time_limit", "soft_time_limit")
CHORD_REFUSED = "chords are not supported: Hydra's result backend cannot join a group's results"

#: ``prepare(kwargs) -> message``: the validated message of a step (its job id assigned).
Prepare = Callable[[Any], dict]


def is_presigned(options: Mapping[str, Any]) -> bool:
    """Whether send ``options`` are those of a pre-signed step (they carry its signature)."""
    headers = options.get("headers")
    return isinstance(headers, Mapping) and bool(headers.get(signing.HEADER))


def _entries(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def presign(options: Mapping[str, Any], prepare: Prepare, new_id: Callable[[], str]) -> dict:
    """``options`` with ``link``, ``link_error`` and ``chain`` replaced by pre-signed steps.
    Raises InvalidJob naming the option for a step that cannot be one, and for ``chord``."""
    if options.get("chord"):
        raise InvalidJob({"chord": [CHORD_REFUSED]})
    out = dict(options)
    for option in ("link", "link_error"):
        steps = [_presign(entry, option, prepare, new_id, None) for entry in _entries(options.get(option))]
        out[option] = steps or None
    chained: list[dict] = []
    for entry in _entries(options.get("chain")):  # the last one runs first (Celery pops the end)
        chained.append(_presign(entry, "chain", prepare, new_id, list(chained) or None))
    out["chain"] = chained or None
    return out


def _presign(entry: Any, option: str, prepare: Prepare, new_id: Callable[[], str], chain: list | None) -> dict:
    if not isinstance(entry, Mapping):
        raise InvalidJob(
            {option: [f"a step must be a signature of {names.TASK_RUN_COMMAND}, not {type(entry).__name__}"]}
        )
    task = entry.get("task")
    if entry.get("subtask_type") or task != names.TASK_RUN_COMMAND:
        kind = entry.get("subtask_type") or repr(task)[:80]
        raise InvalidJob({option: [f"only {names.TASK_RUN_COMMAND} steps run on Hydra's workers, not {kind}"]})
    options = entry.get("options") or {}
    if is_presigned(options):  # pre-signed already (a step of a step being re-published): as it is
        reason = _step_refusal(entry, chain)
        if reason:
            raise InvalidJob({option: [reason]})
        return dict(entry)
    if entry.get("args"):
        raise InvalidJob({option: [f"a {names.TASK_RUN_COMMAND} step takes keyword arguments only"]})
    timing = [name for name in TIMING_OPTIONS if options.get(name) is not None]
    if timing:
        raise InvalidJob({option: [f"a step cannot set {', '.join(timing)}: it is signed before it is started"]})
    if options.get("chain") or options.get("chord"):
        raise InvalidJob({option: ["a step cannot carry a chain or chord of its own; chain the steps instead"]})
    try:
        message = prepare(entry.get("kwargs") or {})
    except InvalidJob as exc:  # named by the option that carries the step, then its own field
        raise InvalidJob({option: [f"{field}: {problem}" for field, problem in exc.errors.items()]}) from None
    run_id = options.get("task_id") or new_id()
    if not isinstance(run_id, str):
        raise InvalidJob({option: ["a step's task_id must be a string"]})
    step_options: dict[str, Any] = {"task_id": run_id, "headers": Chain().headers()}
    for inner in ("link", "link_error"):
        inner_steps = [_presign(e, option, prepare, new_id, None) for e in _entries(options.get(inner))]
        if inner_steps:
            step_options[inner] = inner_steps
    envelope = Envelope.for_send(names.TASK_RUN_COMMAND, run_id, (), message, {**step_options, "chain": chain})
    step_options["headers"] = {**step_options["headers"], signing.HEADER: envelope.sign()}
    return {
        "task": names.TASK_RUN_COMMAND,
        "args": [],
        "kwargs": message,
        "options": step_options,
        "subtask_type": None,
        "immutable": True,
    }


def step_envelope(step: Mapping[str, Any], chain: list | None) -> Envelope:
    """The message a pre-signed step will be sent as (with ``chain``, the chain steps after it,
    which Celery hands over when it starts the step)."""
    options: Mapping[str, Any] = step["options"] if isinstance(step.get("options"), Mapping) else {}
    run_id = options.get("task_id")
    return Envelope.for_send(
        str(step.get("task")), run_id, step.get("args"), step.get("kwargs"), {**options, "chain": chain}
    )


def _step_refusal(step: Any, chain: list | None) -> str | None:
    if not isinstance(step, Mapping) or step.get("task") != names.TASK_RUN_COMMAND or step.get("subtask_type"):
        task = step.get("task") if isinstance(step, Mapping) else type(step).__name__
        return f"a step that is not a pre-signed {names.TASK_RUN_COMMAND} ({str(task)[:80]!r})"
    if not step.get("immutable") or step.get("args"):
        return "a step that would take arguments from the task before it"
    options: Mapping[str, Any] = step["options"] if isinstance(step.get("options"), Mapping) else {}
    headers: Mapping[str, Any] = options["headers"] if isinstance(options.get("headers"), Mapping) else {}
    reason = step_envelope(step, chain).verify(headers.get(signing.HEADER))
    if reason:
        return f"a step {options.get('task_id')!r}: {reason}"
    return refusal(step_envelope(step, chain), chained=False)  # its chain: the caller's, checked there


def refusal(envelope: Envelope, *, chained: bool = True) -> str | None:
    """None when every step ``envelope`` carries is a pre-signed ``hydra.run_command`` step
    whose signature matches the message it will be sent as; otherwise why not. (The
    envelope's own signature is checked by the caller; ``chained=False`` leaves out its chain
    steps, which the caller checks once each.)"""
    embed = envelope.embed
    if embed.get("chord") is not None:
        return f"the message carries a chord ({CHORD_REFUSED})"
    for name in ("callbacks", "errbacks", "chain"):
        if embed.get(name) is not None and not isinstance(embed[name], list):
            return f"the message's {name} is not a list of steps"
    for name in ("callbacks", "errbacks"):
        for step in embed.get(name) or ():
            reason = _step_refusal(step, None)
            if reason:
                return f"{name}: {reason}"
    steps = (embed.get("chain") or []) if chained else []
    for position, step in enumerate(steps):
        reason = _step_refusal(step, steps[:position] or None)
        if reason:
            return f"chain: {reason}"
    return None

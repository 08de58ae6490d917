"""What a signature covers: a ``hydra.run_command`` message as a worker will execute it.

An :class:`Envelope` is built the same way from each place a message is seen - the options a
publisher sends it with (:meth:`Envelope.for_send`), the request a worker executes
(:meth:`Envelope.of_request`), and a message taken back from a queue
(:meth:`Envelope.of_message`) - and :meth:`Envelope.canonical` gives the bytes that are signed
(``hydra.dispatch.signing``), so a worker checks exactly what it is about to act on.

Covered: the task name; the task id (the run id: a signature is good for one attempt, and the
start fence lets it run once); args and kwargs (the validated job body, job id and attempt);
the embed - ``callbacks``, ``errbacks``, ``chain``, ``chord``, everything Celery starts on the
task's behalf after it; Hydra's headers (``hydra_retry_of``, ``hydra_lost``, ``hydra_failed``,
which steer retries and dead letters); and the Celery headers that decide whether and how long
it runs and whether its end is recorded (``eta``, ``expires``, ``timelimit``,
``ignore_result``). Not covered: where it goes (queue, routing key, priority) and what only
describes it (``shadow``, ``argsrepr``, ``kwargsrepr``, ``origin``, ``root_id``,
``parent_id``, ``group``, ``group_index``, ``retries``, stamps), which Celery fills in anew
each time a message is sent - a worker-side publish of a pre-signed step included.

Values are compared as JSON (kombu's, as the broker carries them): a tuple and a list are
the same, an empty embed entry is no entry, a missing time limit is ``[None, None]``.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from kombu.utils import json as kombu_json

from hydra import clock, names
from hydra.dispatch import signing
from hydra.model.records import Chain

#: The embed: what Celery starts after a task (``link``, ``link_error``, a chain's next steps,
#: a chord's body).
EMBED = ("callbacks", "errbacks", "chain", "chord")
#: The send options that become the embed (Celery's names at apply_async -> in the message).
EMBED_OPTIONS = {"link": "callbacks", "link_error": "errbacks", "chain": "chain", "chord": "chord"}
#: Hydra's own headers (``hydra.model.records.Chain``).
HYDRA_HEADERS = tuple(Chain().headers())
#: Celery's headers that change whether, when and how long a task runs, or whether its end is recorded.
CELERY_HEADERS = ("eta", "expires", "timelimit", "ignore_result")
#: Every header name a caller may not set itself: the covered ones, the signature, Celery's protocol.
RESERVED_HEADERS = frozenset(
    {*HYDRA_HEADERS, *CELERY_HEADERS, signing.HEADER}
    | {"lang", "task", "id", "shadow", "group", "group_index", "retries", "root_id", "parent_id"}
    | {"argsrepr", "kwargsrepr", "origin", "replaced_task_nesting", "stamped_headers", "stamps"}
)


def plain(value: Any) -> Any:
    """``value`` as a worker will decode it from the broker (kombu's JSON, both ways)."""
    return kombu_json.loads(kombu_json.dumps(value))


def _embed_entry(value: Any) -> Any:
    return value if value else None  # None, [] and {} all mean "nothing after it"


def _timelimit(value: Any) -> Any:
    return [None, None] if value is None else (list(value) if isinstance(value, (list, tuple)) else value)


def _ignore_result(value: Any) -> Any:
    return bool(value) if value is None or isinstance(value, bool) else value


def _when(value: Any) -> Any:
    return value or None


def settle_times(options: Mapping[str, Any], now: datetime | None = None) -> dict:
    """``options`` with ``countdown``, ``eta`` and ``expires`` turned into the ISO strings Celery
    will put in the message (it passes strings through), so that what is signed is what is sent."""
    options = dict(options)
    countdown = options.pop("countdown", None)
    if countdown:
        options["eta"] = ((now or clock.utcnow()) + timedelta(seconds=float(countdown))).isoformat()
    elif isinstance(options.get("eta"), datetime):
        options["eta"] = options["eta"].isoformat()
    expires = options.get("expires")
    if isinstance(expires, numbers.Real) and not isinstance(expires, bool):
        options["expires"] = ((now or clock.utcnow()) + timedelta(seconds=float(expires))).isoformat()
    elif isinstance(expires, datetime):
        options["expires"] = expires.isoformat()
    return options


@dataclass(frozen=True)
class Envelope:
    """A message's task, id, args, kwargs, embed and covered headers (see the module docstring)."""

    task: str
    id: Any
    args: Any
    kwargs: Any
    embed: dict
    headers: dict

    @classmethod
    def for_send(cls, task: str, run_id: Any, args: Any, kwargs: Any, options: Mapping[str, Any]) -> Envelope:
        """What Celery's ``send_task(task, args, kwargs, task_id=run_id, **options)`` will put on
        the wire (``options`` settled by :func:`settle_times`; its ``headers`` hold Hydra's)."""
        headers = options.get("headers") or {}
        embed = {name: options.get(option) for option, name in EMBED_OPTIONS.items()}
        for name in ("callbacks", "errbacks"):
            if embed[name] is not None and not isinstance(embed[name], (list, tuple)):
                embed[name] = [embed[name]]  # Celery's maybe_list
        return cls(
            task=task,
            id=run_id,
            args=plain(list(args or ())),
            kwargs=plain(kwargs or {}),
            embed={name: _embed_entry(plain(value)) for name, value in embed.items()},
            headers={
                **{name: headers.get(name) for name in HYDRA_HEADERS},
                "eta": _when(options.get("eta")),
                "expires": _when(options.get("expires")),
                "timelimit": [options.get("time_limit"), options.get("soft_time_limit")],
                "ignore_result": _ignore_result(options.get("ignore_result")),
            },
        )

    @classmethod
    def of_request(cls, task: str, run_id: Any, request: Any) -> Envelope:
        """The message a worker executes, from Celery's request (headers and embed as attributes)."""

        def get(name: str) -> Any:
            return getattr(request, name, None) if request is not None else None

        return cls._of(task, run_id, get("args"), get("kwargs"), get, get)

    @classmethod
    def of_message(cls, headers: Mapping[str, Any], args: Any, kwargs: Any, embed: Any) -> Envelope:
        """A message as taken from a queue (kombu's headers and decoded payload)."""
        embed = embed if isinstance(embed, Mapping) else {}
        return cls._of(str(headers.get("task")), headers.get("id"), args, kwargs, headers.get, embed.get)

    @classmethod
    def _of(cls, task: str, run_id: Any, args: Any, kwargs: Any, header, embedded) -> Envelope:
        return cls(
            task=task,
            id=run_id,
            args=list(args) if isinstance(args, (list, tuple)) else args,
            kwargs=kwargs if kwargs is not None else {},
            embed={name: _embed_entry(embedded(name)) for name in EMBED},
            headers={
                **{name: header(name) for name in HYDRA_HEADERS},
                "eta": _when(header("eta")),
                "expires": _when(header("expires")),
                "timelimit": _timelimit(header("timelimit")),
                "ignore_result": _ignore_result(header("ignore_result")),
            },
        )

    @property
    def chain(self) -> Chain:
        """Hydra's chain headers, read (a malformed one reads as a chain nobody signed)."""
        try:
            return Chain.from_headers(self.headers)
        except (TypeError, ValueError):
            return Chain(retry_of="<malformed>")

    def canonical(self) -> bytes:
        """The signed bytes: JSON with sorted keys and no spaces. Raises ValueError or TypeError
        for what JSON cannot say (NaN, ...)."""
        document = {
            "v": 2,
            "task": self.task,
            "id": self.id,
            "args": self.args,
            "kwargs": self.kwargs,
            "embed": self.embed,
            "headers": self.headers,
        }
        text = kombu_json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
        return text.encode()

    def sign(self) -> str:
        """The signature header value (this process's first private key)."""
        return signing.sign(self.canonical())

    def verify(self, signature: Any) -> str | None:
        """None when ``signature`` signs exactly this message; otherwise why not."""
        if not isinstance(self.id, str) or not self.id or not isinstance(self.kwargs, Mapping):
            return "the message has no task id or no keyword arguments"
        return signing.verify(self.canonical, signature)


@dataclass(frozen=True)
class Sealed:
    """A message ready to be sent: what it is, and its signature."""

    envelope: Envelope
    signature: str


def seal(run_id: str, message: dict, chain: Chain, options: Mapping[str, Any]) -> Sealed:
    """Sign the message of run ``run_id``: its kwargs ``message``, Hydra's ``chain`` headers,
    and from ``options`` the steps it carries (pre-signed) and its times. Its end is always
    recorded (``ignore_result`` is never set). Raises SigningKeyMissing in a process without
    a private key."""
    options = {**settle_times(options), "ignore_result": False, "headers": chain.headers()}
    envelope = Envelope.for_send(names.TASK_RUN_COMMAND, run_id, (), message, options)
    return Sealed(envelope, envelope.sign())


#: Send options a signature covers (or ``Pipeline.send`` sets): not passed on as they came.
SEALED_OPTIONS = frozenset(
    {"task_id", "serializer", "compression", "kwargsrepr", "countdown", "eta", "expires", "time_limit"}
    | {"soft_time_limit", "ignore_result", "link", "link_error", "chain", "chord"}
)


def passed_on(options: Mapping[str, Any]) -> dict:
    """The caller's send options a signature does not cover (queue, priority, Celery's ids)."""
    return {key: value for key, value in options.items() if key not in SEALED_OPTIONS}

"""Reading a message off Hydra's broker: what kombu can read goes on as it is; anything else
becomes a stand-in that every consumer refuses, instead of an exception that stops it.

kombu's Redis transport pops a list item, parses it as JSON and builds its ``Message`` from
the result, outside any consumer's error handling: an item that is not JSON, a JSON string
or list, a ``properties`` that is not an object, a body that is not base64, an unknown
``body_encoding``, a missing ``delivery_tag`` ... raised straight out of the worker's event
loop (``Unrecoverable error``, the worker stops, and the popped item is gone) or out of the
controller's pass over ``hydra.pending``.

:func:`read` runs where the transport parses an item (``hydra.broker.transport``). It
builds kombu's own Message from the envelope as a trial (kombu's reading, not a copy of
it) and checks what kombu's acknowledgement emulation relies on (a string delivery tag, a
``delivery_info`` with exchange and routing key). An envelope that fails becomes a
well-formed stand-in (:func:`stand_in`): no ``task`` header, the original's ``headers.id``
when that is a string, the reason in its properties (:data:`MALFORMED`), and a body that
decoding refuses (:class:`Message`). Consumers then meet it on their ordinary path for an
undecodable message: Celery's consumer calls ``on_decode_error`` (``hydra.celery.consumer``
records it), the controller's ``Pipeline.republish`` records it. Both acknowledge it, so it
leaves the queue; a stand-in restored after a crash is still a stand-in.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from kombu.exceptions import DecodeError
from kombu.transport import virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads

#: The property that marks a stand-in; its value is why the original was refused.
MALFORMED = "hydra_malformed"
#: How much of the original a stand-in keeps (for the log line of whoever refuses it).
KEPT = 1000


class Message(virtual.Message):
    """kombu's virtual Message, except that a stand-in cannot be decoded: its decode raises
    kombu's DecodeError with the reason, which every consumer handles already."""

    def _decode(self):
        reason = self.properties.get(MALFORMED)
        if reason is not None:
            raise DecodeError(f"malformed envelope: {reason}")
        return super()._decode()


def read(channel: Any, item: bytes | str, queue: str) -> dict:
    """The envelope of a raw list item popped from ``queue``: the parsed JSON when kombu can
    make a Message of it, else a stand-in for it. Never raises."""
    text = bytes_to_str(item)  # kombu's: what is not UTF-8 reads as U+FFFD
    try:
        envelope = loads(text)  # kombu's JSON, as its transport reads it
    except Exception as exc:  # noqa: BLE001 - ValueError, RecursionError, and kombu's type hooks
        return stand_in(_plain(text), text, f"not JSON ({exc.__class__.__name__}: {str(exc)[:200]})", queue)
    reason = problem(channel, envelope)
    return envelope if reason is None else stand_in(envelope, text, reason, queue)


def problem(channel: Any, envelope: Any) -> str | None:
    """Why kombu cannot deliver ``envelope`` (parsed JSON), or None when it can. A stand-in
    is deliverable (it is refused later, by its consumer)."""
    if not isinstance(envelope, dict):
        return f"the envelope is a JSON {_json_type(envelope)}, not an object"
    properties = envelope.get("properties")
    if not isinstance(properties, dict):
        return f"its properties are a JSON {_json_type(properties)}, not an object"
    try:
        message = virtual.Message(envelope, channel=channel)
    except Exception as exc:  # noqa: BLE001 - whatever kombu's reading raises is the reason
        return f"kombu cannot read it ({exc.__class__.__name__}: {str(exc)[:200]})"
    if message.errors:
        error = message.errors[0][1]
        return f"kombu cannot read its body ({error.__class__.__name__}: {str(error)[:200]})"
    if not isinstance(message.delivery_tag, str):
        return f"its delivery_tag is a JSON {_json_type(message.delivery_tag)}, not a string"
    info = envelope["properties"].get("delivery_info")
    if not isinstance(info, dict) or not all(isinstance(info.get(key), str) for key in ("exchange", "routing_key")):
        return "its delivery_info is not an object with a string exchange and routing_key"
    if not isinstance(envelope.get("headers") or {}, dict):
        return f"its headers are a JSON {_json_type(envelope.get('headers'))}, not an object"
    if not isinstance(message.body, bytes):  # Celery's hooks log len(body): None stopped the worker too
        return f"its body is a JSON {_json_type(envelope.get('body'))}, not a string"
    for key in ("content-type", "content-encoding"):
        if not isinstance(envelope.get(key), (str, type(None))):
            return f"its {key} is a JSON {_json_type(envelope.get(key))}, not a string"
    return None


def stand_in(envelope: Any, text: str, reason: str, queue: str) -> dict:
    """A well-formed envelope that stands for a malformed one: delivered to ``queue``'s
    consumer like any message, refused by it (see :class:`Message`), and naming the
    original's run id (a string ``headers.id``) so that the refusal can be recorded there."""
    headers = envelope.get("headers") if isinstance(envelope, dict) else None
    run_id = headers.get("id") if isinstance(headers, dict) else None
    content_type = envelope.get("content-type") if isinstance(envelope, dict) else None
    return {
        "body": text[:KEPT],
        "content-type": content_type if isinstance(content_type, str) else None,
        "content-encoding": "utf-8",
        "headers": {"id": run_id} if isinstance(run_id, str) and run_id else {},
        "properties": {
            "delivery_tag": str(uuid.uuid4()),
            "delivery_info": {"exchange": "", "routing_key": queue},
            "body_encoding": "utf-8",
            "priority": 0,
            MALFORMED: reason,
        },
    }


def unrestorable(entry: bytes | str | None) -> str | None:
    """Why an entry of kombu's ``unacked`` hash cannot be restored (it is no
    ``[envelope, exchange, routing key]``), or None when it can be (or is gone)."""
    if entry is None:
        return None
    try:
        value = loads(bytes_to_str(entry))
    except Exception as exc:  # noqa: BLE001 - as in read()
        return f"an unacknowledged entry that is not JSON ({exc.__class__.__name__}: {str(exc)[:200]})"
    if not (isinstance(value, list) and len(value) == 3 and isinstance(value[0], dict)):
        return f"an unacknowledged entry that is a JSON {_json_type(value)}, not [message, exchange, routing key]"
    return None


def reason_of(envelope: Any) -> str | None:
    """Why ``envelope`` (what :func:`read` returned) is a stand-in, or None when it is not one."""
    properties = envelope.get("properties") if isinstance(envelope, dict) else None
    reason = properties.get(MALFORMED) if isinstance(properties, dict) else None
    return str(reason) if reason is not None else None


def malformed(message: Any) -> str | None:
    """Why ``message`` (a kombu Message) is a stand-in, or None when it is not one."""
    properties = getattr(message, "properties", None)
    reason = properties.get(MALFORMED) if isinstance(properties, dict) else None
    return str(reason) if reason is not None else None


def _plain(text: str) -> Any:
    """The text as plain JSON (without kombu's type hooks, which may be what failed), to find
    the run id it names; None when it is not JSON either."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    names: dict[type, str] = {str: "string", list: "array", dict: "object"}
    return names.get(type(value), type(value).__name__)

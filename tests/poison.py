"""Malformed broker messages, made from a genuine one: the named shapes that stopped a worker,
and a seeded fuzzer of random bytes and mutated envelopes (unit and integration tests share
them).

A genuine envelope is kombu's JSON as it sits in a Redis list: ``body`` (base64 of
``[args, kwargs, embed]``), ``content-type``, ``content-encoding``, ``headers`` (Celery's
task headers and Hydra's signature) and ``properties`` (``delivery_tag``,
``delivery_info``, ``body_encoding``, ``priority``, ...). Each shape and mutation gives the
message a fresh ``headers.id`` first, so that what becomes of it can be looked up under
that id, apart from every other message and from the genuine run.
"""

from __future__ import annotations

import base64
import copy
import json
import random
import uuid
from collections.abc import Callable
from typing import Any

#: The run id of :func:`genuine_envelope`.
GENUINE_ID = "b2b609db-f722-4da3-8af6-5a68e57a7c88"


def genuine_envelope() -> dict:
    """A ``hydra.run_command`` envelope as the dispatch pipeline sends it (for unit tests;
    the integration tests take a real one from a queue)."""
    kwargs = {
        "name": "job-1",
        "user": "tester",
        "namespace": "default",
        "affinity": {"os": ["linux"], "tags": [], "allowed_users": []},
        "command": "echo hello",
        "args": None,
        "shell": "bash",
        "env": {},
        "cwd": None,
        "retries": 0,
        "timeout": 30.0,
        "priority": 50,
        "backoff": None,
        "max_lost": None,
        "executor": "shell",
        "http": None,
        "job_id": "b61be25d-de21-499f-ab5f-3bd9ccbc3130",
        "attempt": 1,
    }
    embed = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
    return {
        "body": b64(json.dumps([[], kwargs, embed]).encode()),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py",
            "task": "hydra.run_command",
            "id": GENUINE_ID,
            "shadow": "hydra: job-1 #1",
            "eta": None,
            "expires": None,
            "group": None,
            "group_index": None,
            "retries": 0,
            "timelimit": [None, None],
            "root_id": GENUINE_ID,
            "parent_id": None,
            "argsrepr": "()",
            "kwargsrepr": "{'job': 'job-1', 'user': 'tester', 'command': 'echo hello', 'attempt': 1}",
            "origin": "gen1@host",
            "ignore_result": None,
            "replaced_task_nesting": 0,
            "stamped_headers": None,
            "stamps": {},
            "hydra_retry_of": None,
            "hydra_lost": 0,
            "hydra_failed": 0,
            "hydra_sig": "hmac-sha256:ff670fbc:" + "0" * 64,
        },
        "properties": {
            "correlation_id": GENUINE_ID,
            "reply_to": "3411c857-89a7-38b9-944d-d434620c6bde",
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": "hydra.pending"},
            "priority": 5,
            "body_encoding": "base64",
            "delivery_tag": "28765893-3c6f-477e-b66f-818ea97c4a02",
        },
    }


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def fresh(genuine: dict | str | bytes) -> dict:
    """A deep copy of the genuine envelope under a new run id."""
    envelope = json.loads(genuine) if isinstance(genuine, (str, bytes)) else copy.deepcopy(genuine)
    envelope["headers"]["id"] = f"poison-{uuid.uuid4()}"
    return envelope


def named_id(raw: bytes | str) -> str | None:
    """The run id a raw message names (a non-empty string ``headers.id``), as anyone reading
    its JSON would find it; None when it names none. This is the oracle of the tests: the
    refusal of a message that names a run id is recorded under it."""
    try:
        envelope = json.loads(raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw)  # as kombu reads it
    except (ValueError, RecursionError):
        return None
    headers = envelope.get("headers") if isinstance(envelope, dict) else None
    run_id = headers.get("id") if isinstance(headers, dict) else None
    return run_id if isinstance(run_id, str) and run_id else None


def _edit(change: Callable[[dict], Any]) -> Callable[[dict], bytes]:
    def make(genuine: dict) -> bytes:
        envelope = fresh(genuine)
        change(envelope)
        return json.dumps(envelope).encode()

    return make


def _const(raw: bytes) -> Callable[[dict], bytes]:
    return lambda genuine: raw


#: The shapes of envelope that stopped a worker ("Unrecoverable error"), or that Celery read
#: unguarded; the first fourteen are the ones first reported.
SHAPES: dict[str, Callable[[dict], bytes]] = {
    "not JSON at all": _const(b"not-json-at-all"),
    "a JSON string": _const(b'"hello"'),
    "a JSON list": _const(b"[1, 2, 3]"),
    "a body that is not base64": _edit(lambda e: e.update(body="!!!not base64!!!")),
    "properties as a string": _edit(lambda e: e.update(properties="x")),
    "an unknown body_encoding": _edit(lambda e: e["properties"].update(body_encoding="rot13")),
    "headers.id a dict": _edit(lambda e: e["headers"].update(id={"$gt": ""})),
    "headers.task a dict": _edit(lambda e: e["headers"].update(task={"name": "hydra.run_command"})),
    "headers as a list": _edit(lambda e: e.update(headers=["id"])),
    "no properties": _edit(lambda e: e.pop("properties")),
    "no delivery_tag": _edit(lambda e: e["properties"].pop("delivery_tag")),
    "delivery_info a string": _edit(lambda e: e["properties"].update(delivery_info="x")),
    "a body that is not JSON": _edit(lambda e: e.update(body=b64(b"{not json"))),
    "a body that is not [args, kwargs, embed]": _edit(lambda e: e.update(body=b64(b"[[], {}]"))),
    # ... and more found by trying
    "not UTF-8": _const(b'\xff\xfe{"headers": {}}'),
    "JSON null": _const(b"null"),
    "a body that is a number": _edit(lambda e: e.update(body=5)),
    "body_encoding a number": _edit(lambda e: e["properties"].update(body_encoding=5)),
    "an unknown compression": _edit(lambda e: e["headers"].update(compression="bogus")),
    "expires an empty object": _edit(lambda e: e["headers"].update(expires={})),
    "eta not a date": _edit(lambda e: e["headers"].update(eta="yesterday")),
    "timelimit not a pair": _edit(lambda e: e["headers"].update(timelimit="x")),
    "kwargs a list": _edit(lambda e: e.update(body=b64(b"[[], [], {}]"))),
    "a protocol 1 body": _edit(
        lambda e: (e["headers"].pop("task"), e.update(body=b64(b'{"task": {"x": 1}, "id": "x", "args": []}')))
    ),
    "kombu's JSON type with a bad value": _edit(
        lambda e: e["headers"].update(eta={"__type__": "decimal", "__value__": "not a number"})
    ),
    "a pickle": _edit(lambda e: e.update({"content-type": "application/x-python-serialize"})),
    "no body": _edit(lambda e: e.pop("body")),
    "a null body in a message without a task": _edit(lambda e: (e.update(body=None), e["headers"].pop("task"))),
}

#: JSON values a mutation puts in place of a field (none of them a date, so nothing waits for
#: an ETA; none the name of a task a worker has).
ODD_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    2**70,
    1e308,
    "",
    "x",
    "\u0000",
    "☃" * 3,
    "x" * 2000,
    [],
    [1, 2],
    [None, None, None],
    {},
    {"a": 1},
    {"$gt": ""},
    {"__type__": "bytes", "__value__": 5},
    [[[[[[[[[[[]]]]]]]]]]],
]


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path into a JSON value (dict keys and list indexes)."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


def _set(root: Any, path: tuple, change: Callable[[Any, Any], None]) -> None:
    parent = root
    for step in path[:-1]:
        parent = parent[step]
    change(parent, path[-1])


def _mutate_body(rng: random.Random, envelope: dict, values: list) -> None:
    """Mutate inside the body (decoded, mutated, encoded again), or its bytes."""
    raw = base64.b64decode(envelope["body"])
    if rng.random() < 0.3:
        data = bytearray(raw)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        envelope["body"] = b64(bytes(data))
        return
    body = json.loads(raw)
    path = rng.choice(_paths(body))
    _set(body, path, lambda parent, key: parent.__setitem__(key, copy.deepcopy(rng.choice(values))))
    envelope["body"] = b64(json.dumps(body).encode())


def mutated(rng: random.Random, genuine: dict, values: list | None = None) -> bytes:
    """One malformed message: random bytes, or the genuine envelope (under a fresh id) with
    fields replaced by odd values (``values``, else :data:`ODD_VALUES`), removed, or its
    body or text damaged."""
    values = ODD_VALUES if values is None else values
    kind = rng.random()
    if kind < 0.1:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))
    envelope = fresh(genuine)
    if kind < 0.3:
        _mutate_body(rng, envelope, values)
        return json.dumps(envelope).encode()
    for _ in range(rng.randint(1, 3)):
        paths = [p for p in _paths(envelope) if p != ("headers", "id") or rng.random() < 0.2]
        path = rng.choice(paths)
        if rng.random() < 0.25:
            _set(envelope, path, lambda parent, key: parent.pop(key) if isinstance(parent, dict) else None)
        else:
            value = copy.deepcopy(rng.choice(values))
            _set(envelope, path, lambda parent, key, value=value: parent.__setitem__(key, value))
        if not isinstance(envelope.get("headers"), dict) or not isinstance(envelope.get("properties"), dict):
            break  # nothing to walk into any more
    text = json.dumps(envelope).encode()
    if kind > 0.95:  # damaged text: cut short, or a byte changed
        cut = rng.randrange(1, len(text))
        text = text[:cut] if rng.random() < 0.5 else text[:cut] + bytes([rng.randrange(256)]) + text[cut + 1 :]
    return text

"""Authentic task messages: an HMAC-SHA256 over the canonical message, in a message header.

Every ``hydra.run_command`` message is sent by the dispatch pipeline's last step, which signs
it (:func:`sign`); a worker executes a message only after :func:`verify` accepted it
(``hydra.celery.worker.admit``), and the controller re-publishes a message it took from a
queue only after verifying it too, so it never launders a forged one by signing it again.

What is signed (:func:`canonical`): the task name, the task id (the run id: a signature is
good for that one attempt only, and the start fence lets an attempt run once, so a replayed
message runs nothing), the whole kwargs (the validated job body, job id and attempt) and the
chain headers (``hydra_retry_of``, ``hydra_lost``, ``hydra_failed``, which steer retries and
dead letters), as JSON with sorted keys and no spaces. Celery's own options (queue, priority,
eta) are not signed: they say where and when, not what runs.

Why an HMAC and not Celery's message signing (``task_serializer = "auth"``): every Hydra
process that publishes - the API, the controller, and each worker (failover and retries
start from the result backend) - would need the private key anyway, so a public-key scheme
buys nothing here; Celery's ``auth`` serializer refuses a bad message while decoding it, in
the consumer, where Hydra cannot record the refusal as a run; and the HMAC is the standard
library's (``hmac``, ``hashlib``). The key is a shared secret: ``HYDRA_SIGNING_KEY``, or
``HYDRA_SIGNING_KEY_FILE`` (one key per line, the first signs and every one verifies, which
is how a key is rotated; the file must not be readable by group or others). The header value
is ``hmac-sha256:<key id>:<hex digest>``; the key id is the first 8 hex digits of the key's
SHA-256, so a worker says which key a message claims without revealing any.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
import threading
from collections.abc import Mapping
from typing import Any

from hydra.model.records import Chain
from hydra.settings import get_settings

#: The message header that carries the signature.
HEADER = "hydra_sig"
SCHEME = "hmac-sha256"


class SigningKeyMissing(RuntimeError):
    """No signing key is configured (HYDRA_SIGNING_KEY or HYDRA_SIGNING_KEY_FILE)."""


_lock = threading.Lock()
_cache: dict[tuple, list[bytes]] = {}


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


def load_keys(key: str | None, path: str | None) -> list[bytes]:
    """The keys: ``key`` first (when set), then the lines of the file ``path``. Raises
    SigningKeyMissing when there are none, and PermissionError for a file others may read."""
    keys = [key.strip().encode()] if key and key.strip() else []
    if path:
        info = os.stat(path)
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise PermissionError(f"{path}: a signing key file must be readable by its owner only (chmod 600)")
        with open(path, encoding="utf-8") as fh:
            keys += [line.strip().encode() for line in fh if line.strip() and not line.startswith("#")]
    if not keys:
        raise SigningKeyMissing("no signing key: set HYDRA_SIGNING_KEY or HYDRA_SIGNING_KEY_FILE")
    return keys


def keys() -> list[bytes]:
    """This process's keys (re-read when the key file changes)."""
    settings = get_settings()
    path = settings.signing_key_file
    try:
        mtime = os.stat(path).st_mtime_ns if path else None
    except OSError:
        mtime = None
    marker = (settings.signing_key, path, mtime)
    with _lock:
        found = _cache.get(marker)
        if found is None:
            found = load_keys(settings.signing_key, path)
            _cache.clear()
            _cache[marker] = found
    return found


def canonical(run_id: str, task: str, kwargs: Mapping[str, Any], chain: Chain) -> bytes:
    """The bytes that are signed. Raises ValueError for what JSON cannot say (NaN, ...)."""
    document = {
        "v": 1,
        "task": task,
        "id": run_id,
        "kwargs": kwargs,
        "chain": [chain.retry_of, chain.lost, chain.failed],
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def _digest(key: bytes, payload: bytes) -> str:
    return hmac.new(key, payload, hashlib.sha256).hexdigest()


def sign(run_id: str, task: str, kwargs: Mapping[str, Any], chain: Chain) -> str:
    """The signature header value of a message (with this process's first key)."""
    key = keys()[0]
    return f"{SCHEME}:{key_id(key)}:{_digest(key, canonical(run_id, task, kwargs, chain))}"


def verify(run_id: str | None, task: str, kwargs: Any, chain: Chain, signature: Any) -> str | None:
    """None when ``signature`` is a valid signature of this message by one of our keys;
    otherwise why not (unsigned, unknown key, does not match)."""
    if not signature:
        return "the message is not signed (it was not published by Hydra)"
    if not isinstance(signature, str) or signature.count(":") != 2:
        return "the message's signature is malformed"
    scheme, kid, digest = signature.split(":")
    if scheme != SCHEME:
        return f"the message's signature scheme {scheme[:20]!r} is not {SCHEME}"
    if not isinstance(run_id, str) or not isinstance(kwargs, Mapping):
        return "the message has no task id or no keyword arguments"
    matching = [key for key in keys() if key_id(key) == kid]
    if not matching:
        return f"the message is signed with an unknown key ({kid[:8]!r})"
    try:
        payload = canonical(run_id, task, kwargs, chain)
    except (TypeError, ValueError):
        return "the message cannot be put in canonical form"
    if any(hmac.compare_digest(_digest(key, payload), digest) for key in matching):
        return None
    return "the message's signature does not match its content (tampered)"


def worker_settings() -> dict[str, str]:
    """The settings a worker on another machine needs to verify (and, for its follow-ups,
    sign) messages, as ``HYDRA_*`` variable -> value: this process's signing key.
    ``hydra worker-config`` writes them into a worker's settings file."""
    return {"HYDRA_SIGNING_KEY": keys()[0].decode()}


def publisher_settings() -> dict[str, str]:
    """The settings a process on another machine needs to publish messages (``apply_async``):
    the key it signs with. ``hydra client-config`` writes them into a client's settings file."""
    return {"HYDRA_SIGNING_KEY": keys()[0].decode()}

"""Authentic task messages: Ed25519 keys, and the signature of a message's canonical bytes.

Publishers (the API, the gRPC server, the controller and its scheduler, and Python processes
an operator trusts with the key) hold an Ed25519 *private* key and sign every
``hydra.run_command`` message they send; workers hold only *public* keys and run a message
only after one of them verified its signature. A stolen worker host can therefore read what
it is sent, but it cannot sign a message any worker would run. What a signature covers - the
whole message as it will be executed - is ``hydra.dispatch.envelope``; this module only turns
those bytes into a signature and back.

Keys (settings in ``hydra.settings``):

* ``HYDRA_SIGNING_KEY_FILE``: PEM file of one or more Ed25519 private keys (PKCS#8, as
  ``openssl genpkey -algorithm ed25519`` or ``hydra keys generate`` writes them), readable
  by its owner only. The first signs; the public halves of all of them verify.
* ``HYDRA_SIGNING_KEY``: the same inline (comma separated base64 of the 32-byte raw keys),
  for environments that pass secrets as variables.
* ``HYDRA_VERIFY_KEYS``: public keys, comma separated base64 of the 32-byte raw keys: what
  a worker is given (:func:`worker_settings`). ``HYDRA_VERIFY_KEY_FILE``: the same in a
  file, one per line, or as PEM ``PUBLIC KEY`` blocks.

Rotation: add the new public key to every verifier, then put the new private key first in
the publishers' key file (the old one after it, so messages signed before still verify),
and once the queues hold no message signed by the old key, drop it everywhere. The header
value is ``ed25519:<key id>:<signature, base64url>``; the key id (the first 8 hex digits of
the public key's SHA-256) tells a verifier which key to try.

Why Ed25519 and not an HMAC (its former scheme here): with a shared secret every worker could
sign, so one stolen worker host could make every other worker run anything as anyone. An
HMAC costs about 3 microseconds per message, Ed25519 about 40 to sign and 120 to verify
(bench/signing.py, part of ``make bench``), next to the milliseconds of recording a run. Why not Celery's own message
signing (``task_serializer = "auth"``): it refuses a bad message while decoding it, in the
consumer, where Hydra cannot record the refusal as a run, and it signs only the body.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import stat
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from hydra.settings import Settings, env_name, get_settings

#: The message header that carries the signature.
HEADER = "hydra_sig"
SCHEME = "ed25519"
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z ]+)-----.+?-----END \1-----", re.S)


class KeyMissing(RuntimeError):
    """A key this process needs is not configured (the message names the settings)."""


class SigningKeyMissing(KeyMissing):
    """No private key: this process cannot publish (HYDRA_SIGNING_KEY_FILE / HYDRA_SIGNING_KEY)."""


class VerifyKeyMissing(KeyMissing):
    """No public key: this process cannot tell a genuine message (HYDRA_VERIFY_KEYS, ...)."""


class KeyInvalid(KeyMissing, ValueError):
    """A key setting holds something that is not an Ed25519 key (the message names the setting)."""


@dataclass(frozen=True)
class KeyRing:
    """This process's keys: the private ones (the first signs) and every public key that verifies."""

    signing: tuple[Ed25519PrivateKey, ...] = ()
    verifying: dict[str, list[Ed25519PublicKey]] = field(default_factory=dict)

    @classmethod
    def of(cls, private: Iterable[Ed25519PrivateKey], public: Iterable[Ed25519PublicKey]) -> KeyRing:
        private = tuple(private)
        verifying: dict[str, list[Ed25519PublicKey]] = {}
        seen: set[bytes] = set()
        for key in [*(p.public_key() for p in private), *public]:
            raw = public_bytes(key)
            if raw not in seen:
                seen.add(raw)
                verifying.setdefault(key_id(key), []).append(key)
        return cls(private, verifying)

    def public_keys(self) -> list[Ed25519PublicKey]:
        return [key for keys in self.verifying.values() for key in keys]


# --- key material ----------------------------------------------------------------------------


def generate() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def public_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    """The id a signature names its key by: 8 hex digits of the public key's SHA-256."""
    return hashlib.sha256(public_bytes(key)).hexdigest()[:8]


def public_text(key: Ed25519PublicKey) -> str:
    """A public key as HYDRA_VERIFY_KEYS lists it: base64 of its 32 raw bytes."""
    return base64.b64encode(public_bytes(key)).decode()


def private_pem(key: Ed25519PrivateKey) -> str:
    """A private key as HYDRA_SIGNING_KEY_FILE holds it (PKCS#8 PEM, unencrypted)."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def private_text(key: Ed25519PrivateKey) -> str:
    """A private key as HYDRA_SIGNING_KEY takes it: base64 of its 32 raw bytes."""
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    return base64.b64encode(raw).decode()


def _raw32(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise KeyInvalid(f"{what}: not an Ed25519 key (base64 of 32 bytes expected)")
    return raw


def parse_public_keys(text: str, what: str) -> list[Ed25519PublicKey]:
    """Public keys from base64 raw keys (separated by commas, blanks or lines; ``#`` starts a
    comment line) or PEM ``PUBLIC KEY`` blocks. Raises ValueError naming ``what``."""
    data = text.encode()
    if b"-----BEGIN" in data:
        keys = []
        for block in _PEM_BLOCK.finditer(data):
            loaded = serialization.load_pem_public_key(block.group(0))
            if not isinstance(loaded, Ed25519PublicKey):
                raise KeyInvalid(f"{what}: a PEM public key that is not Ed25519")
            keys.append(loaded)
        return keys
    words = [w for line in text.splitlines() if not line.lstrip().startswith("#") for w in re.split(r"[,\s]+", line)]
    return [Ed25519PublicKey.from_public_bytes(_raw32(w, what)) for w in words if w]


def parse_private_keys(data: bytes, what: str) -> list[Ed25519PrivateKey]:
    """Private keys from PEM ``PRIVATE KEY`` blocks, or base64 raw keys (comma or line separated)."""
    if b"-----BEGIN" in data:
        keys = []
        for block in _PEM_BLOCK.finditer(data):
            try:
                loaded = serialization.load_pem_private_key(block.group(0), password=None)
            except (ValueError, TypeError) as exc:
                raise KeyInvalid(f"{what}: unreadable PEM private key ({exc})") from None
            if not isinstance(loaded, Ed25519PrivateKey):
                raise KeyInvalid(f"{what}: a private key that is not Ed25519 (openssl genpkey -algorithm ed25519)")
            keys.append(loaded)
        return keys
    text = data.decode("ascii", "replace")
    words = [w for line in text.splitlines() if not line.lstrip().startswith("#") for w in re.split(r"[,\s]+", line)]
    return [Ed25519PrivateKey.from_private_bytes(_raw32(w, what)) for w in words if w]


def _read_private_file(path: str) -> bytes:
    info = os.stat(path)
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PermissionError(f"{path}: a signing key file must be readable by its owner only (chmod 600)")
    with open(path, "rb") as fh:
        return fh.read()


def load(settings: Settings) -> KeyRing:
    """The keys ``settings`` configure. Raises ValueError for a key that cannot be read, and
    PermissionError for a private key file others may read."""
    private: list[Ed25519PrivateKey] = []
    if settings.signing_key_file:
        what = env_name("signing_key_file")
        private += parse_private_keys(
            _read_private_file(settings.signing_key_file), f"{what} {settings.signing_key_file}"
        )
    if settings.signing_key:
        private += parse_private_keys(settings.signing_key.encode(), env_name("signing_key"))
    public: list[Ed25519PublicKey] = []
    if settings.verify_keys:
        public += parse_public_keys(settings.verify_keys, env_name("verify_keys"))
    if settings.verify_key_file:
        with open(settings.verify_key_file, encoding="utf-8") as fh:
            public += parse_public_keys(fh.read(), f"{env_name('verify_key_file')} {settings.verify_key_file}")
    return KeyRing.of(private, public)


_lock = threading.Lock()
_cache: dict[tuple, KeyRing] = {}


def _mtime(path: str | None) -> int | None:
    try:
        return os.stat(path).st_mtime_ns if path else None
    except OSError:
        return None


def keyring() -> KeyRing:
    """This process's keys (read again when a key file changes, so a rotation needs no restart)."""
    settings = get_settings()
    marker = (
        settings.signing_key,
        settings.signing_key_file,
        _mtime(settings.signing_key_file),
        settings.verify_keys,
        settings.verify_key_file,
        _mtime(settings.verify_key_file),
    )
    with _lock:
        found = _cache.get(marker)
        if found is None:
            found = load(settings)
            _cache.clear()
            _cache[marker] = found
    return found


def can_sign() -> bool:
    """Whether this process holds a private key (a worker normally does not)."""
    try:
        return bool(keyring().signing)
    except (OSError, ValueError):
        return False


def require_signing() -> KeyRing:
    """The keys of a process that publishes (API, gRPC, controller); raises SigningKeyMissing."""
    ring = keyring()
    if not ring.signing:
        raise SigningKeyMissing(
            f"no signing key: set {env_name('signing_key_file')} (an Ed25519 private key, PEM; "
            f"`hydra keys generate FILE` makes one) or {env_name('signing_key')}"
        )
    return ring


def keyring_id() -> str:
    """The key id of the private key this process signs with (raises SigningKeyMissing)."""
    return key_id(require_signing().signing[0].public_key())


def require_verifying() -> KeyRing:
    """The keys of a process that checks messages (a worker); raises VerifyKeyMissing."""
    ring = keyring()
    if not ring.verifying:
        raise VerifyKeyMissing(
            f"no key to verify task messages with: set {env_name('verify_keys')} "
            f"(the publishers' public keys, as `hydra keys public` prints them) or {env_name('verify_key_file')}"
        )
    return ring


def worker_settings() -> dict[str, str]:
    """Exactly the settings a worker needs to verify what this process's publishers sign: the
    public keys, never a private one. Raises VerifyKeyMissing when there are none."""
    ring = require_verifying()
    return {env_name("verify_keys"): ",".join(public_text(key) for key in ring.public_keys())}


def derived_secret(purpose: bytes) -> bytes:
    """A secret for ``purpose`` shared by every process holding the first signing key (the
    API's console sessions); raises SigningKeyMissing."""
    key = require_signing().signing[0]
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    return hmac.new(raw, b"hydra:" + purpose, hashlib.sha256).digest()


# --- signatures ------------------------------------------------------------------------------


def sign(payload: bytes) -> str:
    """The signature header value of ``payload`` (with this process's first private key)."""
    key = require_signing().signing[0]
    digest = base64.urlsafe_b64encode(key.sign(payload)).rstrip(b"=").decode()
    return f"{SCHEME}:{key_id(key.public_key())}:{digest}"


def verify(payload: Any, signature: Any) -> str | None:
    """None when ``signature`` is a valid signature of ``payload`` (bytes, or a function
    making them) by one of our public keys; otherwise why not (unsigned, unknown key, does not
    match)."""
    if not signature:
        return "the message is not signed (it was not published by Hydra)"
    if not isinstance(signature, str) or signature.count(":") != 2:
        return "the message's signature is malformed"
    scheme, kid, text = signature.split(":")
    if scheme != SCHEME:
        return f"the message's signature scheme {scheme[:20]!r} is not {SCHEME}"
    matching = keyring().verifying.get(kid)
    if not matching:
        return f"the message is signed with an unknown key ({kid[:8]!r})"
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return "the message's signature is malformed"
    try:
        data = payload() if callable(payload) else payload
    except (TypeError, ValueError):
        return "the message cannot be put in canonical form"
    for key in matching:
        try:
            key.verify(raw, data)
            return None
        except InvalidSignature:
            continue
    return "the message's signature does not match its content (tampered)"


def publisher_settings() -> dict[str, str]:
    """The settings a process on another machine needs to publish messages itself
    (``apply_async`` in a trusted process): the private key it signs with, and the public keys.
    ``hydra client-config`` writes them into a client's settings file. Raises
    SigningKeyMissing in a process that cannot sign."""
    ring = require_signing()
    return {env_name("signing_key"): private_text(ring.signing[0]), **worker_settings()}

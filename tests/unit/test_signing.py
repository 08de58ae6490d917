"""Keys (hydra.dispatch.signing) and what a signature covers (hydra.dispatch.envelope)."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest
from celery import Celery
from celery.app.task import Context
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from hydra import names
from hydra.dispatch import signing
from hydra.dispatch.envelope import Envelope, seal
from hydra.model.records import Chain
from hydra.settings import get_settings

MESSAGE = {"name": "n", "user": "u", "command": "echo hi", "job_id": "j1", "attempt": 1, "env": {"A": "é"}}


@pytest.fixture
def keys_env(monkeypatch, tmp_path):
    """Set the key settings for one test: ``keys_env(HYDRA_...=value, ...)``; others unset."""

    def configure(**variables):
        for name in ("HYDRA_SIGNING_KEY", "HYDRA_SIGNING_KEY_FILE", "HYDRA_VERIFY_KEYS", "HYDRA_VERIFY_KEY_FILE"):
            monkeypatch.setenv(name, variables.get(name, ""))
        get_settings.cache_clear()

    yield configure
    monkeypatch.undo()
    get_settings.cache_clear()


def pem_file(tmp_path, *keys, mode=0o600, name="signing.pem"):
    path = tmp_path / name
    path.write_text("".join(signing.private_pem(key) for key in keys))
    os.chmod(path, mode)
    return str(path)


def test_the_first_private_key_signs_and_every_key_verifies(keys_env, tmp_path):
    new, old = signing.generate(), signing.generate()
    keys_env(HYDRA_SIGNING_KEY_FILE=pem_file(tmp_path, old))
    signed_before = signing.sign(b"payload")
    keys_env(HYDRA_SIGNING_KEY_FILE=pem_file(tmp_path, new, old, name="rotated.pem"))  # rotation: new first
    assert signing.verify(b"payload", signed_before) is None  # old messages still verify
    signed_now = signing.sign(b"payload")
    assert signed_now.split(":")[1] == signing.key_id(new.public_key()) != signed_before.split(":")[1]
    keys_env(HYDRA_VERIFY_KEYS=signing.public_text(new.public_key()))  # a worker after the rotation
    assert signing.verify(b"payload", signed_now) is None
    assert "unknown key" in signing.verify(b"payload", signed_before)
    assert "tampered" in signing.verify(b"other", signed_now)
    assert "not signed" in signing.verify(b"payload", None)
    assert "malformed" in signing.verify(b"payload", "ed25519:only-two")
    assert "scheme 'hmac-sha256'" in signing.verify(b"payload", "hmac-sha256:abcd:ef")


def test_a_worker_holds_public_keys_only_and_cannot_sign(keys_env, tmp_path):
    private = signing.generate()
    keys_env(HYDRA_SIGNING_KEY_FILE=pem_file(tmp_path, private))
    handed = signing.worker_settings()
    assert handed == {"HYDRA_VERIFY_KEYS": signing.public_text(private.public_key())}
    assert signing.private_text(private) not in str(handed)
    keys_env(**handed)
    assert not signing.can_sign()
    with pytest.raises(signing.SigningKeyMissing, match="no signing key: set HYDRA_SIGNING_KEY_FILE"):
        signing.sign(b"x")
    with pytest.raises(signing.SigningKeyMissing):
        signing.derived_secret(b"console")
    assert signing.require_verifying().public_keys()[0].public_bytes_raw() == private.public_key().public_bytes_raw()


def test_no_key_at_all_names_the_settings(keys_env):
    keys_env()
    with pytest.raises(signing.VerifyKeyMissing, match="set HYDRA_VERIFY_KEYS"):
        signing.require_verifying()
    with pytest.raises(signing.VerifyKeyMissing):
        signing.worker_settings()


def test_keys_are_read_inline_from_files_and_as_pem(keys_env, tmp_path):
    a, b, c = signing.generate(), signing.generate(), signing.generate()
    public_pem = b.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "verify.pem").write_bytes(public_pem)
    (tmp_path / "verify.txt").write_text(f"# the old key\n{signing.public_text(c.public_key())}\n")
    keys_env(HYDRA_SIGNING_KEY=signing.private_text(a), HYDRA_VERIFY_KEY_FILE=str(tmp_path / "verify.pem"))
    ring = signing.keyring()
    assert ring.signing[0].public_key().public_bytes_raw() == a.public_key().public_bytes_raw()
    assert {signing.key_id(a.public_key()), signing.key_id(b.public_key())} == set(ring.verifying)
    keys_env(HYDRA_VERIFY_KEY_FILE=str(tmp_path / "verify.txt"), HYDRA_VERIFY_KEYS=signing.public_text(a.public_key()))
    assert set(signing.keyring().verifying) == {signing.key_id(a.public_key()), signing.key_id(c.public_key())}


@pytest.mark.parametrize(
    "variables, error, text",
    [
        ({"HYDRA_VERIFY_KEYS": "bm90IGEga2V5"}, ValueError, "HYDRA_VERIFY_KEYS: not an Ed25519 key"),
        ({"HYDRA_SIGNING_KEY": "00" * 32}, ValueError, "HYDRA_SIGNING_KEY: not an Ed25519 key"),
    ],
)
def test_a_key_that_is_not_one_is_refused_naming_the_setting(keys_env, variables, error, text):
    keys_env(**variables)
    with pytest.raises(error, match=text):
        signing.keyring()


def test_a_key_file_others_may_read_or_of_another_kind_is_refused(keys_env, tmp_path):
    keys_env(HYDRA_SIGNING_KEY_FILE=pem_file(tmp_path, signing.generate(), mode=0o640))
    with pytest.raises(PermissionError, match="readable by its owner only"):
        signing.keyring()
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "rsa.pem"
    path.write_bytes(
        rsa_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    os.chmod(path, 0o600)
    keys_env(HYDRA_SIGNING_KEY_FILE=str(path))
    with pytest.raises(ValueError, match="not Ed25519"):
        signing.keyring()


def test_derived_secrets_are_per_purpose_and_per_key(keys_env, tmp_path):
    keys_env(HYDRA_SIGNING_KEY=signing.private_text(signing.generate()))
    first = signing.derived_secret(b"console:a")
    assert first == signing.derived_secret(b"console:a") != signing.derived_secret(b"console:b")
    keys_env(HYDRA_SIGNING_KEY=signing.private_text(signing.generate()))
    assert signing.derived_secret(b"console:a") != first


# --- the canonical form ----------------------------------------------------------------------


def test_the_canonical_form_is_sorted_compact_json_and_refuses_nan():
    envelope = Envelope.for_send(names.TASK_RUN_COMMAND, "r1", (), {"b": 1, "a": [1, 2]}, {})
    text = envelope.canonical().decode()
    assert text.startswith('{"args":[],"embed":{') and " " not in text and '"a":[1,2],"b":1' in text
    with pytest.raises(ValueError):
        replace(envelope, kwargs={"x": float("nan")}).canonical()


def test_what_is_signed_is_what_the_broker_carries_and_the_worker_executes():
    """Sent through Celery (kombu's in-memory transport, JSON), a message reads back - as a
    queued message and as the request a worker executes - as the envelope that was signed:
    steps, chain headers, eta, expires and time limits included."""
    app = Celery("unit", broker="memory://")
    app.conf.update(task_serializer="json", accept_content=["json"], task_create_missing_queues=True)
    step = {"task": names.TASK_RUN_COMMAND, "args": [], "kwargs": {"command": "x"}, "options": {"task_id": "s1"}}
    options = {
        "link": [step],
        "link_error": [step],
        "chain": [step, step],
        "countdown": 30,
        "expires": 600,
        "time_limit": 60,
    }
    sealed = seal("r1", MESSAGE, Chain("r0", lost=1, failed=0), options)
    envelope = sealed.envelope
    app.send_task(
        names.TASK_RUN_COMMAND,
        (),
        MESSAGE,
        task_id="r1",
        queue="q",
        headers={**Chain("r0", lost=1, failed=0).headers(), signing.HEADER: sealed.signature},
        link=envelope.embed["callbacks"],
        link_error=envelope.embed["errbacks"],
        chain=envelope.embed["chain"],
        chord=None,
        eta=envelope.headers["eta"],
        expires=envelope.headers["expires"],
        time_limit=60,
        soft_time_limit=None,
        ignore_result=False,
    )
    with app.connection() as connection:
        message = connection.SimpleQueue("q").get(timeout=2)
        args, kwargs, embed = message.payload
        queued = Envelope.of_message(message.headers, args, kwargs, embed)
        request = Context({**message.headers, "args": args, "kwargs": kwargs, **embed})
        message.ack()
    executed = Envelope.of_request(names.TASK_RUN_COMMAND, "r1", request)
    assert queued == executed == envelope
    assert executed.verify(sealed.signature) is None
    assert envelope.headers["timelimit"] == [60, None] and envelope.headers["eta"] and envelope.embed["chord"] is None
    app.close()


@pytest.mark.parametrize(
    "change",
    [
        {"task": "celery.group"},
        {"id": "r2"},
        {"args": ["x"]},
        {"kwargs": {**MESSAGE, "user": "root"}},
        {"embed": {"callbacks": [{"task": "x"}], "errbacks": None, "chain": None, "chord": None}},
        {"embed": {"callbacks": None, "errbacks": None, "chain": None, "chord": {"task": "x"}}},
    ],
)
def test_every_part_of_the_message_is_covered(change):
    sealed = seal("r1", MESSAGE, Chain(), {})
    assert sealed.envelope.verify(sealed.signature) is None
    assert "tampered" in replace(sealed.envelope, **change).verify(sealed.signature)


@pytest.mark.parametrize(
    "header, value",
    [
        ("hydra_retry_of", "r0"),
        ("hydra_lost", 1),
        ("hydra_failed", "0"),
        ("eta", "2030-01-01T00:00:00+00:00"),
        ("expires", "2000-01-01T00:00:00+00:00"),
        ("timelimit", [0.1, None]),
        ("ignore_result", True),
    ],
)
def test_every_covered_header_is_covered(header, value):
    sealed = seal("r1", MESSAGE, Chain(), {})
    changed = replace(sealed.envelope, headers={**sealed.envelope.headers, header: value})
    assert "tampered" in changed.verify(sealed.signature)


def test_a_message_always_records_its_end():
    assert seal("r1", MESSAGE, Chain(), {"ignore_result": True}).envelope.headers["ignore_result"] is False

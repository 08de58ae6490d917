"""Idempotent submission (hydra.control.submission) on in-memory stores: one job per key and
body, 409 for another body, keys scoped to their caller, a dead first request recovered.
The racing clients are in tests/integration (test_grpc, test_client_cli): real servers."""

from __future__ import annotations

from datetime import timedelta

import pytest

from hydra import clock
from hydra.control import submission
from hydra.errors import KeyInFlight, KeyReused
from hydra.model.access import Principal, Role
from hydra.model.idempotency import KEEP, body_digest, scope_of
from hydra.model.spec import load_job
from hydra.store.idempotency import IdempotencyStore, KeyClaim
from hydra.store.jobs import JobStore

ALICE = Principal(user="alice", roles={"*": Role.ADMIN}, act_as=frozenset({"*"}), via="token:a")
BOB = Principal(user="bob", roles={"*": Role.ADMIN}, act_as=frozenset({"*"}), via="token:b")
BODY = {"name": "build", "command": "make", "affinity": {"os": ["linux"]}}


def send(memory, actor=ALICE, key="k-1", **overrides):
    spec = load_job(dict(BODY, **overrides))
    return submission.submit(spec, actor=actor, idempotency_key=key, pipeline=memory.pipeline)


def jobs(memory) -> int:
    return memory.db["job_definitions"].count_documents({})


def test_the_same_key_and_body_answer_with_the_first_job(memory):
    memory.worker("cpu1")
    first = send(memory)
    again = send(memory)
    assert not first.replayed and again.replayed
    assert (again.job_id, again.run_id, again.status, again.worker_id) == (
        first.job_id,
        first.run_id,
        first.status,
        first.worker_id,
    )
    assert jobs(memory) == 1 and len(memory.app.sent) == 1


def test_bodies_are_compared_as_validated():
    assert body_digest(load_job(dict(BODY))) == body_digest(load_job({**dict(reversed(BODY.items())), "retries": 0}))
    assert body_digest(load_job(BODY)) != body_digest(load_job(dict(BODY, command="make test")))


def test_the_same_key_with_another_body_is_refused_and_makes_nothing(memory):
    first = send(memory)
    with pytest.raises(KeyReused) as refused:
        send(memory, command="make install")
    assert first.job_id in str(refused.value) and jobs(memory) == 1


def test_keys_belong_to_their_caller_and_namespace(memory):
    mine = send(memory)
    theirs = send(memory, actor=BOB)
    elsewhere = send(memory, namespace="other")
    assert len({mine.job_id, theirs.job_id, elsewhere.job_id}) == 3 and jobs(memory) == 3
    assert scope_of("alice", "default", "k") != scope_of("bob", "default", "k")


def test_after_24_hours_a_key_makes_a_new_job(memory, monkeypatch):
    first = send(memory)
    later = clock.utcnow() + KEEP + timedelta(minutes=1)
    monkeypatch.setattr(clock, "utcnow", lambda: later)
    second = send(memory)
    assert second.job_id != first.job_id and not second.replayed and jobs(memory) == 2
    assert send(memory).job_id == second.job_id  # and that one holds for the next 24 hours


def test_a_refused_submission_claims_no_key(memory):
    viewer = Principal(user="vic", roles={"default": Role.VIEWER}, via="token:v")
    with pytest.raises(Exception):  # noqa: B017 - Forbidden, whatever its wording
        send(memory, actor=viewer)
    assert memory.db["idempotency_keys"].count_documents({}) == 0


def _claim_without_job(memory, age: timedelta) -> KeyClaim:
    """What a first request that died between its claim and its job leaves."""
    spec = load_job(dict(BODY))
    scope = scope_of("alice", "default", "k-1")
    created = clock.utcnow() - age
    wanted = KeyClaim(
        id="",
        user="alice",
        namespace="default",
        key="k-1",
        digest=body_digest(spec),
        job_id="job-claimed",
        run_id="run-claimed",
        created_at=created,
        expires_at=created + KEEP,
    )
    claim, mine = IdempotencyStore().claim(scope, wanted)
    assert mine
    return claim


def test_a_request_while_the_first_is_served_is_told_to_send_again(memory, monkeypatch):
    monkeypatch.setattr(submission, "REPLAY_WAIT", 0.1)
    _claim_without_job(memory, timedelta(seconds=1))
    with pytest.raises(KeyInFlight):
        send(memory)
    assert jobs(memory) == 0


def test_a_first_request_that_died_is_finished_under_its_claimed_ids(memory, monkeypatch):
    monkeypatch.setattr(submission, "REPLAY_WAIT", 0.1)
    _claim_without_job(memory, submission.STALE + timedelta(seconds=1))
    answer = send(memory)
    assert (answer.job_id, answer.run_id) == ("job-claimed", "run-claimed")
    assert JobStore().find("job-claimed") is not None and jobs(memory) == 1
    assert send(memory).job_id == "job-claimed"


def test_an_idempotent_submission_checks_ownership_and_the_right_once(memory, monkeypatch):
    from hydra.control import verbs

    checks = []
    own, require = verbs.own, verbs.require_submit
    monkeypatch.setattr(verbs, "own", lambda spec, actor, **kw: checks.append("own") or own(spec, actor, **kw))
    monkeypatch.setattr(verbs, "require_submit", lambda actor, ns: checks.append("right") or require(actor, ns))
    memory.worker("cpu1")
    first = send(memory)
    assert checks == ["own", "right"] and not first.replayed
    checks.clear()
    send(memory, key=None)  # a plain submission: the same checks, also once
    assert checks == ["own", "right"]

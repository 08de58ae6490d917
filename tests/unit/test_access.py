"""Who may do what: roles, act-as, namespaces, tokens, OIDC tokens, and the verbs that check them
(on in-memory stores)."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import timedelta

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from hydra import clock
from hydra.auth import bearer, oidc, tokens
from hydra.control import admin, verbs
from hydra.control.access import Reader
from hydra.errors import Forbidden, InvalidJob, NotAuthenticated, NotFound
from hydra.model.access import Principal, Role, parse_grants
from hydra.model.spec import load_job
from hydra.settings import Settings
from hydra.store.audit import AuditStore
from hydra.store.tokens import TokenStore
from tests.issuer import Issuer

ROOT = Principal(user="root", roles={"*": Role.ADMIN}, act_as=frozenset({"*"}), via="token:root")
ALICE = Principal(user="alice", roles={"team-a": Role.OPERATOR}, via="token:alice")
VIEWER = Principal(user="vic", roles={"team-a": Role.VIEWER}, via="token:vic")
BOB_ADMIN = Principal(user="bob", roles={"team-b": Role.ADMIN}, via="token:bob")


def submit(memory, actor, **body):
    spec = load_job({"name": "j", "command": "true", **body})
    return verbs.submit(spec, actor=actor, pipeline=memory.pipeline)


def test_roles_grow_and_star_holds_everywhere():
    assert ALICE.can("submit", "team-a") and ALICE.can("read", "team-a") and not ALICE.can("delete", "team-a")
    assert not ALICE.sees("team-b") and ROOT.can("delete", "anything")
    both = Principal(user="x", roles={"*": Role.VIEWER, "ops": Role.ADMIN})
    assert both.role_in("ops") == Role.ADMIN and both.role_in("dev") == Role.VIEWER
    assert ALICE.visible() == ["team-a"] and ALICE.visible(["team-b"]) == [] and ROOT.visible() is None
    assert ALICE.home == "team-a" and ROOT.home == "default"
    assert parse_grants(["a=viewer", "*=admin"]) == {"a": Role.VIEWER, "*": Role.ADMIN}
    with pytest.raises(ValueError):
        parse_grants(["a=owner"])


def test_a_job_runs_as_its_submitter_in_its_home_namespace(memory):
    job, _run, _ = submit(memory, ALICE)
    assert (job.user, job.namespace) == ("alice", "team-a")
    with pytest.raises(Forbidden, match="act-as"):
        submit(memory, ALICE, user="rich")
    with pytest.raises(Forbidden, match="submit in namespace 'team-b'"):
        submit(memory, ALICE, namespace="team-b")
    with pytest.raises(Forbidden):
        submit(memory, VIEWER)
    job, _run, _ = submit(memory, replace(ALICE, act_as=frozenset({"rich"})), user="rich")
    assert job.user == "rich"


def test_allowed_users_are_checked_against_the_settled_user(memory):
    with pytest.raises(InvalidJob) as info:
        submit(memory, ALICE, affinity={"allowed_users": ["rich"]})
    assert "user" in info.value.errors
    assert submit(memory, ALICE, affinity={"allowed_users": ["alice"]})[0].user == "alice"


def test_another_namespace_is_not_found_and_a_missing_role_is_forbidden(memory):
    job, run, _ = submit(memory, ALICE)
    for actor in (BOB_ADMIN, Principal(user="nobody")):
        with pytest.raises(NotFound):
            Reader(actor, runs=memory.pipeline.runs).job(job.id)
        with pytest.raises(NotFound):
            verbs.cancel(run.run_id, actor=actor, pipeline=memory.pipeline)
        assert (
            Reader(actor, runs=memory.pipeline.runs).jobs_page(
                status=None, user=None, namespace=None, limit=10, cursor=None
            )[0]
            == []
        )
    assert Reader(VIEWER, runs=memory.pipeline.runs).job(job.id).id == job.id
    with pytest.raises(Forbidden):
        verbs.cancel(run.run_id, actor=VIEWER, pipeline=memory.pipeline)
    with pytest.raises(Forbidden):  # changing a job is for admins
        verbs.update(job.id, actor=ALICE, patch={"command": "echo pwned"}, pipeline=memory.pipeline)
    assert memory.pipeline.runs.get(run.run_id).status == "pending"  # nothing changed
    assert memory.pipeline.jobs.get(job.id).command == "true"


def test_an_admin_cannot_change_what_a_job_runs_as_someone_it_may_not_act_as(memory):
    job, _run, _ = submit(memory, ALICE)
    team_admin = Principal(user="ann", roles={"team-a": Role.ADMIN})
    with pytest.raises(Forbidden, match="act-as"):
        verbs.update(job.id, actor=team_admin, patch={"command": "echo pwned"}, pipeline=memory.pipeline)
    with pytest.raises(InvalidJob):
        verbs.update(job.id, actor=ROOT, patch={"namespace": "team-b"}, pipeline=memory.pipeline)
    assert verbs.update(job.id, actor=ROOT, patch={"priority": 90}, pipeline=memory.pipeline).priority == 90


def test_the_audit_trail_names_who_did_what_and_never_a_secret(memory):
    job, run, _ = submit(memory, ALICE, env={"TOKEN": "s3cret"})
    verbs.cancel(run.run_id, actor=ALICE, pipeline=memory.pipeline)
    events, _ = AuditStore().list()
    assert [(e.action, e.actor, e.target) for e in events] == [
        ("run.cancel", "alice", run.run_id),
        ("job.submit", "alice", job.id),
    ]
    assert events[1].details["env"] == ["TOKEN"] and "s3cret" not in json.dumps(
        [e.to_doc() for e in events], default=str
    )
    assert admin.audit_trail(BOB_ADMIN, namespace=None, actor_name=None, target=None, limit=10, cursor=None) == (
        [],
        None,
    )
    with pytest.raises(Forbidden):
        admin.audit_trail(ALICE, namespace=None, actor_name=None, target=None, limit=10, cursor=None)


def test_tokens_are_stored_hashed_verified_revoked_and_expire(memory):
    store = TokenStore()
    issued = tokens.issue(store, name="ci", user="alice", roles={"team-a": Role.OPERATOR})
    assert issued.secret.startswith(f"hydra_{issued.token.id}_") and issued.secret not in json.dumps(
        store.get(issued.token.id).to_doc(), default=str
    )
    principal = tokens.verify(store, issued.secret)
    assert (principal.user, principal.roles, principal.via) == (
        "alice",
        {"team-a": Role.OPERATOR},
        f"token:{issued.token.id}",
    )
    for wrong in (issued.secret[:-1] + "x", "hydra_000000000000_nope", "nonsense", issued.secret + "a"):
        with pytest.raises(NotAuthenticated):
            tokens.verify(store, wrong)
    store.revoke(issued.token.id)
    with pytest.raises(NotAuthenticated, match="revoked"):
        tokens.verify(store, issued.secret)
    old = tokens.issue(
        store, name="old", user="a", roles={"a": Role.VIEWER}, expires_at=clock.utcnow() - timedelta(seconds=1)
    )
    with pytest.raises(NotAuthenticated, match="expired"):
        tokens.verify(store, old.secret)


def test_no_token_grants_more_than_its_maker_has(memory):
    for roles in ({"team-b": "viewer"}, {"*": "viewer"}, {"team-a": "admin"}):
        with pytest.raises(Forbidden):
            admin.create_token(ALICE, name="x", user="alice", roles=roles)
    team_admin = Principal(user="ann", roles={"team-a": Role.ADMIN})
    with pytest.raises(Forbidden):
        admin.create_token(team_admin, name="x", user="bob", roles={"team-a": "viewer"})  # act as bob
    with pytest.raises(Forbidden):
        admin.create_token(team_admin, name="x", user="ann", roles={"team-a": "viewer"}, act_as=["*"])
    made = admin.create_token(team_admin, name="ok", user="ann", roles={"team-a": "operator"})
    assert [t.id for t in admin.visible_tokens(team_admin)] == [made.token.id]
    assert admin.visible_tokens(BOB_ADMIN) == []
    with pytest.raises(Forbidden):
        admin.revoke_token(BOB_ADMIN, made.token.id)
    assert admin.revoke_token(ROOT, made.token.id).revoked_at is not None


def test_the_bootstrap_token_is_made_once_and_kept_private(memory, tmp_path):
    path = tmp_path / "admin.token"
    secret, made = tokens.bootstrap(TokenStore(), path)
    assert made and path.stat().st_mode & 0o777 == 0o600
    assert tokens.bootstrap(TokenStore(), path) == (secret, False)
    assert tokens.verify(TokenStore(), secret).sees_everything
    path.write_text("garbage")
    assert tokens.bootstrap(TokenStore(), path)[1]


def test_bearer_headers(memory):
    settings = Settings(metrics_token="scrape-me")
    issued = tokens.issue(TokenStore(), name="t", user="u", roles={"a": Role.VIEWER})
    assert bearer.authenticate(f"Bearer {issued.secret}", settings=settings).user == "u"
    assert bearer.authenticate("Bearer scrape-me", settings=settings) is bearer.SCRAPER
    for header in (None, "", "Basic dTpw", "Bearer", "Bearer someone.elses.jwt"):
        with pytest.raises(NotAuthenticated):
            bearer.authenticate(header, settings=settings)


@pytest.fixture
def issuer():
    """Settings trusting a test OIDC issuer (its JWKS served on loopback), and its signer."""
    idp = Issuer("https://idp.example", subject="u-1", ttl=60)
    yield Settings(oidc_issuer=idp.name, oidc_audience="hydra", oidc_jwks_url=idp.jwks_url), idp.sign
    idp.close()


def test_an_oidc_token_is_verified_against_the_issuers_keys(issuer):
    settings, sign = issuer
    principal = oidc.verify(sign(preferred_username="ana", hydra_roles=["team-a=operator", "*=viewer"]), settings)
    assert principal.user == "ana" and principal.can("submit", "team-a") and principal.sees("other")
    assert principal.via == "oidc:https://idp.example"
    assert oidc.verify(sign(), settings).user == "u-1" and oidc.verify(sign(), settings).roles == {}
    forged = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for bad in (
        sign(signer=forged),
        sign(aud="other"),
        sign(iss="https://evil"),
        sign(exp=time.time() - 10),
        jwt.encode(
            {"sub": "x", "iss": "https://idp.example", "aud": "hydra", "exp": time.time() + 60},
            "a-shared-secret-that-is-long-enough-for-hs256",
            algorithm="HS256",
            headers={"kid": "k1"},
        ),
    ):
        with pytest.raises(NotAuthenticated):
            oidc.verify(bad, settings)

"""What a token made with a token may be, namespaces' names and their limits' deletion, and the
write-only values of a webhook (on in-memory stores)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from marshmallow import ValidationError

from api.schemas.jobs import JobSchema
from api.tokens import TokenBodySchema
from hydra import clock
from hydra.auth import tokens
from hydra.control import admin, verbs
from hydra.errors import Forbidden, InvalidRequest, NotAuthenticated
from hydra.model.access import Principal, Role, parse_grants
from hydra.model.namespaces import Namespace, problem
from hydra.model.redaction import REDACTED, patched, redacted_http, without_secrets
from hydra.model.spec import load_job
from hydra.store.audit import AuditStore
from hydra.store.namespaces import NamespaceStore
from hydra.store.sessions import ConsoleSessionStore, key_of
from hydra.store.tokens import TokenStore

ROOT = Principal(user="root", roles={"*": Role.ADMIN}, act_as=frozenset({"*"}), via="operator")
BAD_NAMES = ["$where", "a.b", "a\x00b", "☃", "Team-A", "-a", "a-", "a" * 64, "team-a\n", "", " a"]


def signed_in(secret: str) -> Principal:
    return tokens.verify(TokenStore(), secret)


def mint(maker: Principal, **fields) -> tokens.Issued:
    body = {"name": "minted", "user": maker.user, "roles": {"team-a": "admin"}, **fields}
    return admin.create_token(maker, **body)


def test_a_token_made_with_a_token_expires_no_later_and_dies_with_it(memory):
    store = TokenStore()
    soon = clock.utcnow() + timedelta(hours=1)
    maker = tokens.issue(store, name="ns admin", user="ann", roles={"team-a": Role.ADMIN}, expires_at=soon)
    made = mint(signed_in(maker.secret))  # asks for no expiry
    assert made.token.parent == maker.token.id
    assert made.token.expires_at is not None and abs((made.token.expires_at - soon).total_seconds()) < 0.01
    later = mint(signed_in(maker.secret), expires_days=30)  # asks for a later one
    assert abs((later.token.expires_at - soon).total_seconds()) < 0.01
    sooner = mint(signed_in(maker.secret), expires_days=0.001)  # an earlier one is kept
    assert sooner.token.expires_at < soon
    grandchild = mint(signed_in(made.secret))
    assert grandchild.token.parent == made.token.id and grandchild.token.expires_at <= soon

    # The maker expires: everything made with it stops, however it is stored.
    store._collection.update_one({"_id": maker.token.id}, {"$set": {"expires_at": clock.utcnow()}})
    for secret in (made.secret, grandchild.secret):
        with pytest.raises(NotAuthenticated, match="made with was revoked or has expired"):
            signed_in(secret)


def test_revoking_a_token_ends_the_tokens_made_with_it(memory):
    store = TokenStore()
    maker = tokens.issue(store, name="admin", user="ann", roles={"team-a": Role.ADMIN})
    made = mint(signed_in(maker.secret))
    grandchild = mint(signed_in(made.secret))
    assert signed_in(grandchild.secret).expires_at is None  # no expiry anywhere in its lineage
    admin.revoke_token(ROOT, maker.token.id)
    for secret in (made.secret, grandchild.secret):
        with pytest.raises(NotAuthenticated):
            signed_in(secret)
    assert store.get(made.token.id).revoked_at is None  # its own record is untouched: the lineage decides


def test_a_token_never_holds_more_roles_or_act_as_rights_than_its_maker(memory):
    maker = tokens.issue(TokenStore(), name="ns admin", user="ann", roles={"team-a": Role.ADMIN})
    ann = signed_in(maker.secret)
    for roles in ({"team-b": "viewer"}, {"*": "viewer"}, {"team-a": "admin", "team-b": "admin"}):
        with pytest.raises(Forbidden):
            mint(ann, roles=roles)
    with pytest.raises(Forbidden):
        mint(ann, act_as=["bob"])
    with pytest.raises(Forbidden):
        mint(ann, user="bob")
    assert mint(ann, roles={"team-a": "viewer"}).token.roles == {"team-a": "viewer"}


def test_a_lineage_is_bounded(memory):
    secret = tokens.issue(TokenStore(), name="root", user="ann", roles={"team-a": Role.ADMIN}).secret
    for _ in range(tokens.MAX_LINEAGE - 1):
        secret = mint(signed_in(secret)).secret
    assert len(tokens.lineage(TokenStore(), TokenStore().get(signed_in(secret).via.removeprefix("token:")))) == 8
    with pytest.raises(Forbidden, match="in a row"):
        mint(signed_in(secret))


def test_a_person_signed_in_through_oidc_makes_tokens_without_a_parent(memory):
    person = Principal(user="ann", roles={"team-a": Role.ADMIN}, via="oidc:https://idp.example")
    made = mint(person, expires_days=2)
    assert made.token.parent is None and made.token.expires_at > clock.utcnow() + timedelta(days=1)


@pytest.mark.parametrize("name", BAD_NAMES)
def test_no_namespace_a_job_cannot_have_is_a_role_key_or_a_namespace_path(memory, name):
    assert problem(name) is not None
    with pytest.raises(ValidationError):
        Namespace()(name)
    with pytest.raises(ValidationError) as refused:
        TokenBodySchema().load({"name": "t", "roles": {name: "viewer"}})
    assert "roles" in refused.value.messages
    if problem(name.strip()):  # grants read from text (the CLI, OIDC claims) are stripped first
        with pytest.raises(ValueError):
            parse_grants({name: "viewer"})
        with pytest.raises(InvalidRequest) as invalid:
            admin.create_token(ROOT, name="t", user="root", roles={name: "viewer"})
        assert list(invalid.value.errors) == ["roles"]
    for call in (
        lambda: admin.limits(ROOT, name),
        lambda: admin.set_limits(ROOT, name, max_running=1, max_queued=1),
        lambda: admin.delete_limits(ROOT, name),
    ):
        with pytest.raises(InvalidRequest) as invalid:
            call()
        assert (invalid.value.location, list(invalid.value.errors)) == ("path", ["namespace"])
    with pytest.raises(Exception, match="namespace"):
        load_job({"name": "j", "command": "true", "namespace": name})


def test_good_names_pass_everywhere(memory):
    for name in ("default", "team-a", "a", "a" * 63, "0-9"):
        assert problem(name) is None and Namespace()(name) == name
        assert load_job({"name": "j", "command": "true", "namespace": name})["namespace"] == name
    assert problem("*") is not None and problem("*", every=True) is None
    assert TokenBodySchema().load({"name": "t", "roles": {"*": "viewer", "team-a": "admin"}})["roles"]


def test_a_namespaces_limits_can_be_deleted_and_that_is_audited(memory):
    team_admin = Principal(user="ann", roles={"team-a": Role.ADMIN}, via="token:x")
    admin.set_limits(team_admin, "team-a", max_running=3, max_queued=4)
    assert NamespaceStore().limits("team-a").max_running == 3
    with pytest.raises(Forbidden):
        admin.delete_limits(Principal(user="op", roles={"team-a": Role.OPERATOR}), "team-a")
    admin.delete_limits(team_admin, "team-a")
    assert NamespaceStore().find("team-a") is None and NamespaceStore().limits("team-a").max_running is None
    admin.delete_limits(team_admin, "team-a")  # nothing left: no error, nothing audited
    events, _ = AuditStore().list(namespaces=["team-a"], actor=None, target="team-a", limit=10, cursor=None)
    assert sorted(e.action for e in events) == ["namespace.delete", "namespace.limits"]  # same millisecond: any order


WEBHOOK = {
    "name": "hook",
    "executor": "http",
    "http": {
        "url": "https://hooks.example/x",
        "method": "PUT",
        "headers": {"Authorization": "Bearer s3cret", "X-Trace": "t-1"},
        "body": {"password": "hunter2"},
        "timeout": 5,
    },
}


def test_webhook_headers_and_body_are_shown_redacted(memory):
    job, _, _ = verbs.submit(load_job(WEBHOOK), actor=ROOT, pipeline=memory.pipeline)
    shown = JobSchema().dump(memory.pipeline.jobs.get(job.id))
    assert shown["http"]["headers"] == {"Authorization": REDACTED, "X-Trace": REDACTED}
    assert shown["http"]["body"] == REDACTED and shown["http"]["url"] == "https://hooks.example/x"
    assert "s3cret" not in str(shown) and "hunter2" not in str(shown)
    assert redacted_http({"url": "u", "headers": {}, "body": None}) == {"url": "u", "headers": {}, "body": None}
    edit = without_secrets(memory.pipeline.jobs.get(job.id).spec())
    assert "env" not in edit and "headers" not in edit["http"] and "body" not in edit["http"]


def test_an_update_that_leaves_headers_and_body_out_keeps_them(memory):
    job, _, _ = verbs.submit(load_job(WEBHOOK), actor=ROOT, pipeline=memory.pipeline)
    verbs.update(job.id, actor=ROOT, patch={"http": {"url": "https://hooks.example/y"}}, pipeline=memory.pipeline)
    http = memory.pipeline.jobs.get(job.id).http
    assert http["url"] == "https://hooks.example/y" and http["method"] == "PUT" and http["timeout"] == 5
    assert http["headers"] == WEBHOOK["http"]["headers"] and http["body"] == {"password": "hunter2"}
    verbs.update(job.id, actor=ROOT, patch={"priority": 60}, pipeline=memory.pipeline)
    assert memory.pipeline.jobs.get(job.id).http["headers"] == WEBHOOK["http"]["headers"]
    verbs.update(job.id, actor=ROOT, patch={"http": {"headers": {}, "body": None}}, pipeline=memory.pipeline)
    http = memory.pipeline.jobs.get(job.id).http
    assert http["headers"] == {} and http.get("body") is None
    assert patched({"env": {"A": "1"}, "http": {"url": "u"}}, {"name": "n"}) == {
        "env": {"A": "1"},
        "http": {"url": "u"},
        "name": "n",
    }


def test_a_console_session_lives_from_sign_in_to_sign_out_or_expiry(memory):
    sessions = ConsoleSessionStore()
    sessions.start("sid-1", user="ann", via="token:x", lifetime=timedelta(hours=1))
    assert sessions.live("sid-1") and not sessions.live("sid-2")
    assert sessions.find("sid-1") is None  # stored under the id's hash, never the id
    sessions.end("sid-1")
    sessions.end("sid-1")
    assert not sessions.live("sid-1")
    sessions.start("sid-3", user="ann", via="token:x", lifetime=timedelta(seconds=-1))
    assert not sessions.live("sid-3") and sessions.find(key_of("sid-3")) is None  # expired: gone

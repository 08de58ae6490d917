"""What admins do besides jobs: API tokens, namespaces' limits, the audit trail.

* A token may be made (or revoked, or seen) only by an admin of every namespace it grants a
  role in (``*`` included), who may also act as its user and as everyone it may act as; any
  caller may revoke its own token.
* A token made with a token expires no later than its maker (a later or no expiry asked for
  is cut to the maker's), and works only while its maker does (``hydra.auth.tokens.lineage``):
  revoking a token ends every token made with it. A token made by a person signed in through
  OIDC has no maker token: it is bounded by the person's roles only.
* A namespace's limits are set and deleted (back to the defaults) by its admins, and read by
  whoever may read the namespace. Every namespace named is checked like a job's
  (``hydra.model.namespaces``).
* The audit trail of a namespace is read by its admins; events about tokens (which belong to
  no namespace) by admins of ``*``.

The secret of a token is returned once, by :func:`create_token`, and never stored.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from hydra import clock
from hydra.auth import bearer, tokens
from hydra.control.access import require
from hydra.control.verbs import audit
from hydra.errors import Forbidden, InvalidRequest
from hydra.model.access import EVERY_NAMESPACE, Principal, Role, parse_grants
from hydra.model.namespaces import problem
from hydra.model.notify import redacted_targets
from hydra.store.audit import AuditEvent, AuditStore
from hydra.store.namespaces import NamespaceLimits, NamespaceStore
from hydra.store.tokens import ApiToken, TokenStore


def _may_manage(actor: Principal, token_roles: dict[str, Role]) -> bool:
    """An admin of every namespace the token grants a role in (``*`` only by an admin of ``*``)."""
    return all(actor.can("manage", ns) for ns in token_roles)


def _may_grant(actor: Principal, token_roles: dict[str, Role], act_as: list[str], user: str) -> bool:
    """To make a token: manage it, and be able to act as its user and as each user it may
    act as (``*`` only with ``*`` itself) - a token never gives more than its maker has."""
    return _may_manage(actor, token_roles) and all(actor.may_act_as(u) for u in [user, *act_as])


def create_token(
    actor: Principal,
    *,
    name: str,
    user: str | None,
    roles: dict[str, str],
    act_as: list[str] | None = None,
    expires_days: float | None = None,
    store: TokenStore | None = None,
) -> tokens.Issued:
    """Make a token for ``actor`` (see the module's rules); InvalidRequest naming the field,
    Forbidden for more than the actor may grant."""
    try:
        granted = parse_grants(roles)
    except ValueError as exc:
        raise InvalidRequest({"roles": [str(exc)]}) from None
    if not granted:
        raise InvalidRequest({"roles": ["give at least one namespace=role"]})
    user = user or actor.user
    if not _may_grant(actor, granted, act_as or [], user):
        raise Forbidden(f"{actor.user!r} may not grant these roles or act-as rights")
    store = store or TokenStore()
    parent = tokens.made_with(actor)
    if parent is not None and len(tokens.lineage(store, store.get(parent))) >= tokens.MAX_LINEAGE:
        raise Forbidden(f"a token made by {tokens.MAX_LINEAGE} tokens in a row may not make another")
    asked = clock.utcnow() + timedelta(days=expires_days) if expires_days else None
    issued = tokens.issue(
        store,
        name=name,
        user=user,
        roles=granted,
        act_as=act_as,
        expires_at=earliest(asked, actor.expires_at),
        created_by=actor.user,
        parent=parent,
    )
    audit(
        actor,
        "token.create",
        namespace=None,
        target=issued.token.id,
        name=name,
        user=user,
        roles=issued.token.roles,
        act_as=issued.token.act_as,
    )
    return issued


def earliest(*moments: datetime | None) -> datetime | None:
    """The earliest of the moments given (None: none was)."""
    return min((m for m in moments if m is not None), default=None)


def visible_tokens(actor: Principal, *, store: TokenStore | None = None) -> list[ApiToken]:
    return [
        t for t in (store or TokenStore()).all() if t.user == actor.user or _may_manage(actor, parse_grants(t.roles))
    ]


def revoke_token(actor: Principal, token_id: str, *, store: TokenStore | None = None) -> ApiToken:
    store = store or TokenStore()
    token = store.get(token_id)
    own = tokens.made_with(actor) == token_id
    if not own and not _may_manage(actor, parse_grants(token.roles)):
        raise Forbidden(f"{actor.user!r} may not revoke token {token_id}")
    revoked = store.revoke(token_id)
    bearer.forget()
    audit(actor, "token.revoke", namespace=None, target=token_id)
    return revoked


def checked(namespace: str) -> str:
    """``namespace``, if a job could have it; InvalidRequest naming the path's ``namespace``."""
    wrong = problem(namespace)
    if wrong:
        raise InvalidRequest({"namespace": [wrong]}, location="path")
    return namespace


def limits(actor: Principal, namespace: str) -> NamespaceLimits:
    require(actor, "read", checked(namespace), kind="namespace", ident=namespace)
    return NamespaceStore().limits(namespace)


def set_limits(
    actor: Principal,
    namespace: str,
    *,
    max_running: int | None,
    max_queued: int | None,
    notify: list[dict] | None = None,
    default_memory_mb: int | None = None,
    default_cpu: float | None = None,
    max_memory_mb: int | None = None,
    max_cpu: float | None = None,
) -> NamespaceLimits:
    """Set what the namespace's operators decide: its quotas, the notification targets of
    its jobs that name none (``hydra.model.notify``; audited with their secrets redacted), and
    its jobs' default and maximum resource limits (``hydra.model.resources``)."""
    require(actor, "manage", checked(namespace), kind="namespace", ident=namespace)
    resources = {
        "default_memory_mb": default_memory_mb,
        "default_cpu": default_cpu,
        "max_memory_mb": max_memory_mb,
        "max_cpu": max_cpu,
    }
    stored = NamespaceStore().put(
        NamespaceLimits(
            id=namespace,
            max_running=max_running,
            max_queued=max_queued,
            notify=notify or None,
            default_memory_mb=default_memory_mb,
            default_cpu=default_cpu,
            max_memory_mb=max_memory_mb,
            max_cpu=max_cpu,
        ),
        by=actor.user,
    )
    audit(
        actor,
        "namespace.limits",
        namespace=namespace,
        target=namespace,
        max_running=max_running,
        max_queued=max_queued,
        notify=redacted_targets(notify),
        **{key: value for key, value in resources.items() if value is not None},
    )
    return stored


def delete_limits(actor: Principal, namespace: str) -> None:
    """Forget what was set for ``namespace``: its limits are the defaults again (idempotent;
    audited when there was something to forget)."""
    require(actor, "manage", checked(namespace), kind="namespace", ident=namespace)
    if NamespaceStore().delete(namespace):
        audit(actor, "namespace.delete", namespace=namespace, target=namespace)


def audit_trail(
    actor: Principal,
    *,
    namespace: str | None,
    actor_name: str | None,
    target: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[AuditEvent], str | None]:
    if actor.role_in(EVERY_NAMESPACE) == Role.ADMIN:
        namespaces = [namespace] if namespace else None
    else:
        managed = [ns for ns in actor.roles if actor.can("manage", ns)]
        if not managed:
            raise Forbidden(f"{actor.user!r} is an admin of no namespace")
        namespaces = [ns for ns in managed if namespace in (None, ns)]
        if not namespaces:
            return [], None
    return AuditStore().list(namespaces=namespaces, actor=actor_name, target=target, limit=limit, cursor=cursor)

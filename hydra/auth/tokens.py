"""Hydra's API tokens: ``hydra_<id>_<secret>``.

``id`` (12 hex digits) names the token in listings and revocations; ``secret`` (32 random
bytes, URL-safe base64) is shown once, when the token is made, and only its SHA-256 is
stored. A plain hash is the right tool here: the secret is random and long, so there is
nothing to brute-force that a slow hash would protect (unlike a password). Verification
compares the hashes in constant time.

A token made with a token names it as its ``parent`` and works only while every token of its
:func:`lineage` does: revoking or outliving a token ends the tokens made with it, and theirs
(as Vault's child tokens; unlike Nomad's ACL tokens, which outlive their maker). So a leaked
token revoked takes whatever was made with it along. ``hydra.control.admin`` also bounds what
a new token may hold by its maker: no role or act-as right the maker lacks, no later expiry.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from hydra import clock
from hydra.errors import NotAuthenticated
from hydra.model.access import ANY_USER, EVERY_NAMESPACE, Principal, Role, parse_grants
from hydra.store.tokens import ApiToken, TokenStore

PREFIX = "hydra_"
#: How a principal says it authenticated with a Hydra token: ``token:<id>``.
VIA = "token:"
#: Tokens in a lineage at most (a token, its maker, the maker's maker, ...): each one is read
#: when the token is verified.
MAX_LINEAGE = 8


@dataclass(frozen=True)
class Issued:
    """A token just made: ``secret`` is the whole token, shown this once."""

    token: ApiToken
    secret: str


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def issue(
    store: TokenStore,
    *,
    name: str,
    user: str,
    roles: dict[str, Role],
    act_as: list[str] | None = None,
    expires_at: datetime | None = None,
    created_by: str | None = None,
    parent: str | None = None,
) -> Issued:
    """Make and store a token (``parent``: the token it is made with); the returned secret is
    never stored, nor shown again."""
    token_id = secrets.token_hex(6)
    secret = f"{PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
    token = ApiToken(
        id=token_id,
        name=name,
        user=user,
        roles={ns: str(role) for ns, role in roles.items()},
        act_as=sorted(act_as or []),
        secret_hash=digest(secret),
        created_at=clock.utcnow(),
        created_by=created_by,
        expires_at=expires_at,
        parent=parent,
    )
    store.add(token)
    return Issued(token, secret)


def token_id_of(secret: str) -> str | None:
    """The id part of ``hydra_<id>_<secret>`` (None if it does not look like one)."""
    if not secret.startswith(PREFIX):
        return None
    token_id, sep, rest = secret[len(PREFIX) :].partition("_")
    return token_id if sep and rest and len(token_id) == 12 else None


def verify(store: TokenStore, secret: str) -> Principal:
    """The principal a token authenticates; NotAuthenticated if it is unknown, revoked,
    expired or wrong, or if a token of its :func:`lineage` no longer works."""
    token_id = token_id_of(secret)
    token = store.find(token_id) if token_id else None
    if token is None or not hmac.compare_digest(token.secret_hash, digest(secret)):
        raise NotAuthenticated("unknown or malformed token")
    if not token.active:
        raise NotAuthenticated("the token was revoked or has expired")
    ends = [t.expires_at for t in lineage(store, token) if t.expires_at is not None]
    return principal_of(token, expires_at=min(ends, default=None))


def lineage(store: TokenStore, token: ApiToken) -> list[ApiToken]:
    """``token`` and the tokens it was made with, nearest first (one ``_id`` read each).
    NotAuthenticated when one of its makers no longer works (revoked, expired, gone), or the
    lineage is longer than :data:`MAX_LINEAGE`."""
    found = [token]
    while found[-1].parent:
        if len(found) >= MAX_LINEAGE:
            raise NotAuthenticated(f"the token was made by a chain of more than {MAX_LINEAGE} tokens")
        maker = store.find(found[-1].parent)
        if maker is None or not maker.active:
            raise NotAuthenticated("the token it was made with was revoked or has expired")
        found.append(maker)
    return found


def principal_of(token: ApiToken, *, expires_at: datetime | None = None) -> Principal:
    """Whom ``token`` authenticates; ``expires_at``: when it stops working (its lineage's
    earliest expiry). NotAuthenticated for roles no token can hold any more."""
    try:
        roles = parse_grants(token.roles)
    except ValueError as exc:  # stored before namespaces were checked: it grants nothing usable
        raise NotAuthenticated(f"the token's roles are not valid ({exc}): make a new one") from None
    return Principal(
        user=token.user,
        roles=roles,
        act_as=frozenset(token.act_as),
        via=f"{VIA}{token.id}",
        expires_at=expires_at if expires_at is not None else token.expires_at,
    )


def made_with(principal: Principal) -> str | None:
    """The id of the token ``principal`` authenticated with (None: it did not use a Hydra token)."""
    return principal.via.removeprefix(VIA) if principal.via.startswith(VIA) else None


def write_secret(path: Path, secret: str) -> None:
    """Write a secret to ``path``, readable by its owner only (mode 0600 from the start)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret + "\n")
    path.chmod(0o600)


def bootstrap(store: TokenStore, path: Path, *, user: str = "admin") -> tuple[str, bool]:
    """The installation's first token: an admin of every namespace who may act as anyone,
    kept in ``path`` (mode 0600). A working token already there is kept. Returns (the
    token, whether it was made now)."""
    try:
        existing = path.read_text().strip()
        verify(store, existing)
        return existing, False
    except (OSError, NotAuthenticated):
        pass
    issued = issue(
        store,
        name="bootstrap admin",
        user=user,
        roles={EVERY_NAMESPACE: Role.ADMIN},
        act_as=[ANY_USER],
        created_by="bootstrap",
    )
    write_secret(path, issued.secret)
    return issued.secret, True

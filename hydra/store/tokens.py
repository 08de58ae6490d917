"""``TokenStore``: API tokens (``api_tokens``), stored by id with only a hash of their secret.

A token reads ``hydra_<id>_<secret>``; the secret is shown once, when the token is made
(``hydra.auth.tokens``), and only its SHA-256 is kept: a stolen database yields no usable
token. Revoking keeps the record (who had it, since when) with ``revoked_at`` set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from hydra import clock, names
from hydra.model.records import Record
from hydra.store.base import Store


@dataclass
class ApiToken(Record):
    id: str
    name: str = ""
    #: The user the token authenticates as.
    user: str = ""
    #: Role by namespace (``*``: every namespace), as words: viewer, operator, admin.
    roles: dict[str, str] = field(default_factory=dict)
    #: Users it may submit jobs as besides its own (``*``: any).
    act_as: list[str] = field(default_factory=list)
    secret_hash: str = ""
    created_at: datetime | None = None
    created_by: str | None = None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    #: The token it was made with (None: made by a person signed in through OIDC, or by an
    #: operator): it works only while that one does (``hydra.auth.tokens.lineage``).
    parent: str | None = None

    @property
    def active(self) -> bool:
        now = clock.utcnow()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class TokenStore(Store[ApiToken]):
    collection_name, record_type, kind = names.API_TOKENS, ApiToken, "token"

    def add(self, token: ApiToken) -> ApiToken:
        self._collection.insert_one(token.to_doc())
        return token

    def revoke(self, token_id: str) -> ApiToken:
        """Revoke a token (idempotent); NotFound for an unknown id."""
        token = self.get(token_id)
        if token.revoked_at is None:
            self._collection.update_one({"_id": token_id}, {"$set": {"revoked_at": clock.utcnow()}})
        return self.get(token_id)

    def all(self) -> list[ApiToken]:
        """Every token, newest first (there are few: people and services, not requests)."""
        docs = self._native("tokens", {})
        return [ApiToken.from_doc(doc) for doc in docs]

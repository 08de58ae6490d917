"""``ConsoleSessionStore``: the web console's signed-in sessions (``console_sessions``).

The console's cookie names its session by a random id (``api.console.session``). From sign-in
to sign-out this store keeps a record of the session, under the SHA-256 of that id (the
database never holds an id a cookie could carry). A cookie whose session has no record here
signs nobody in, whatever else it holds: signing out ends the session on the server, for every
copy of its cookie.

Every read and write is by ``_id`` (a random id's record is inserted once, read, and deleted:
no race to decide, no filter). A record goes at sign-out, at the next sign-in in the same
browser, or when its cookie comes back after the session expired; one whose cookie never
comes back stays (a few hundred bytes per sign-in never signed out).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from hydra import clock, names
from hydra.model.records import Record
from hydra.store.base import Store


@dataclass
class ConsoleSession(Record):
    #: The SHA-256 of the session id the cookie carries.
    id: str
    #: Who signed in, and how (``token:<id>``, ``oidc:<issuer>``): for an operator reading the collection.
    user: str = ""
    via: str = ""
    started_at: datetime | None = None
    expires_at: datetime | None = None


def key_of(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class ConsoleSessionStore(Store[ConsoleSession]):
    collection_name, record_type, kind = names.CONSOLE_SESSIONS, ConsoleSession, "console session"

    def start(self, session_id: str, *, user: str, via: str, lifetime: timedelta) -> ConsoleSession:
        """Record a session just signed in (``session_id``: random, new)."""
        now = clock.utcnow()
        record = ConsoleSession(id=key_of(session_id), user=user, via=via, started_at=now, expires_at=now + lifetime)
        self._collection.insert_one(record.to_doc())
        return record

    def live(self, session_id: str) -> bool:
        """Whether the session is signed in (recorded and not expired; an expired record goes)."""
        record = self.find(key_of(session_id))
        if record is None:
            return False
        if record.expires_at is not None and record.expires_at <= clock.utcnow():
            self._collection.delete_one({"_id": record.id})
            return False
        return True

    def end(self, session_id: str) -> None:
        """Sign the session out (idempotent)."""
        self._collection.delete_one({"_id": key_of(session_id)})

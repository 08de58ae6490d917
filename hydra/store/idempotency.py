"""``IdempotencyStore``: who used which idempotency key first (``idempotency_keys``).

The first request with a key claims it by inserting a write-once document whose ``_id`` is
derived from the key's scope (``hydra.model.idempotency``): ``<scope>/<generation>``. A
unique insert is atomic on MongoDB and FerretDB alike, so of concurrent requests exactly one
wins; the others read the winner's claim. The claim names the job and run ids the winner
will create, so a loser finds that job by ``_id`` (and the winner's answer, once stored).

A claim answers for :data:`~hydra.model.idempotency.KEEP`; after that the key's next use
claims generation ``n + 1`` (a claim is never rewritten in place: FerretDB applies a
conditional update as read-then-write, so two requests could both take an expired claim).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from pymongo.errors import DuplicateKeyError

from hydra import clock, names
from hydra.model.idempotency import claim_id
from hydra.model.records import Record
from hydra.store.base import Store

#: Generations a key may go through (one per expired use): a bound on the walk, never reached.
MAX_GENERATIONS = 100_000


@dataclass
class KeyClaim(Record):
    id: str
    user: str = ""
    namespace: str = ""
    key: str = ""
    #: The digest of the validated job body of the first request.
    digest: str = ""
    #: The job and first run the first request creates (run None for a cron job).
    job_id: str = ""
    run_id: str | None = None
    created_at: datetime | None = None
    expires_at: datetime | None = None
    #: The answer of the first request, once it was given (hydra.control.submission.Accepted).
    response: dict | None = None

    def live(self, now: datetime) -> bool:
        return self.expires_at is None or self.expires_at > now


class IdempotencyStore(Store[KeyClaim]):
    collection_name, record_type, kind = names.IDEMPOTENCY_KEYS, KeyClaim, "idempotency key"

    def claim(self, scope: str, wanted: KeyClaim) -> tuple[KeyClaim, bool]:
        """The live claim of ``scope``: ``wanted`` (with its id set) if this call inserted it
        (True), else the one another request inserted first (False)."""
        now = clock.utcnow()
        for generation in range(MAX_GENERATIONS):
            doc_id = claim_id(scope, generation)
            found = self.find(doc_id)
            if found is not None and not found.live(now):
                continue  # expired: the key's next use is the next generation
            if found is not None:
                return found, False
            mine = replace(wanted, id=doc_id)
            try:
                self._collection.insert_one(mine.to_doc())
                return mine, True
            except DuplicateKeyError:
                winner = self.find(doc_id)
                if winner is not None:
                    return winner, False
        raise RuntimeError(f"idempotency scope {scope} went through {MAX_GENERATIONS} generations")

    def answer(self, claim_id: str, response: dict) -> None:
        """Keep the first request's answer on its claim (only the winner writes it)."""
        self._collection.update_one({"_id": claim_id}, {"$set": {"response": response}})

    def release(self, claim_id: str) -> None:
        """Give a claim up: its request failed before it made the job (so the key is free again)."""
        self._collection.delete_one({"_id": claim_id})

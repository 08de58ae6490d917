"""``JobNameStore``: which job a job file's name stands for (``job_names``).

``hydra job apply`` finds a job by its namespace and name. The first apply of a name claims
it by inserting a write-once document ``<generation>:<namespace>/<name>`` that names the job:
a unique ``_id`` insert is atomic on MongoDB and FerretDB alike, so of concurrent applies of
one new name exactly one claims it and creates the job; the others read the claim and find
that job. A claim is never rewritten in place (FerretDB applies a conditional update as
read-then-write): once the job it names is deleted, renamed or was never created, the
name's next apply claims generation ``n + 1`` (``hydra.control.apply``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pymongo.errors import DuplicateKeyError

from hydra import clock, names
from hydra.model.records import Record
from hydra.store.base import Store


@dataclass
class NameClaim(Record):
    id: str
    namespace: str = ""
    name: str = ""
    #: The job the name stands for (created right after the claim when it is a new one).
    job_id: str = ""
    created_at: datetime | None = None


def claim_id(namespace: str, name: str, generation: int) -> str:
    """A claim's ``_id`` (a namespace holds no '/', so the parts cannot run into each other)."""
    return f"{generation}:{namespace}/{name}"


class JobNameStore(Store[NameClaim]):
    collection_name, record_type, kind = names.JOB_NAMES, NameClaim, "job name"

    def claim(self, namespace: str, name: str, generation: int, job_id: str) -> tuple[NameClaim, bool]:
        """Claim generation ``generation`` of the name for ``job_id``: (the claim, True) if this
        call inserted it, else (the one another apply inserted first, False)."""
        mine = NameClaim(claim_id(namespace, name, generation), namespace, name, job_id, clock.utcnow())
        try:
            self._collection.insert_one(mine.to_doc())
            return mine, True
        except DuplicateKeyError:
            winner = self.find(mine.id)
            return (winner, False) if winner is not None else self.claim(namespace, name, generation, job_id)

    def release(self, claim: NameClaim) -> None:
        """Give up a claim whose job could not be created (the name is free again)."""
        self._collection.delete_one({"_id": claim.id})

"""Whether Redis and MongoDB accept this process's credentials: asked once at start-up by
the processes that would otherwise fail later and obscurely (a worker, the controller).

A server that does not answer is not this check's business (it may come back, and every
process waits for it in its own way); a server that answers "who are you?" or "wrong
password" will keep saying so, so the process stops at once with one line naming the
setting (:class:`hydra.errors.CredentialsRefused`).
"""

from __future__ import annotations

from hydra import names
from hydra.broker import redis as broker_redis
from hydra.errors import CredentialsRefused, Unavailable
from hydra.store import mongo


def check() -> None:
    """Raise CredentialsRefused when Redis or MongoDB refuses our credentials (none given,
    or wrong ones); return quietly otherwise, also when a server does not answer."""
    for probe in (_redis, _mongo):
        try:
            probe()
        except CredentialsRefused:
            raise
        except Unavailable:
            pass


def _redis() -> None:
    with broker_redis.translated():
        broker_redis.get_redis().ping()


def _mongo() -> None:
    # A read, not a ping: MongoDB and FerretDB answer a ping without credentials.
    with mongo.translated():
        mongo.get_database()[names.RUN_FENCES].find_one({"_id": "hydra-credentials-check"})

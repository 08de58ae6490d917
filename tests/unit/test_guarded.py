"""What a store's and a Redis-backed class's public methods raise for a driver error
(hydra.store.mongo.guarded, hydra.broker.redis.guarded): the same with the plain try as with
the context manager they used before."""

from __future__ import annotations

import pytest
import redis
from pymongo.errors import AutoReconnect, DuplicateKeyError, ExecutionTimeout, OperationFailure

from hydra.broker import redis as broker_redis
from hydra.errors import BrokerCredentialsRefused, BrokerUnavailable, StoreCredentialsRefused, StoreUnavailable
from hydra.store import mongo


def raising(exc):
    def fn(*args, **kwargs):
        raise exc

    return fn


@pytest.mark.parametrize("wrap", [mongo.guarded, lambda fn: mongo.guarded(broker_redis.guarded(fn))])
def test_mongo_errors_that_mean_unreachable_become_store_unavailable(wrap):
    cause = AutoReconnect("connection reset")
    with pytest.raises(StoreUnavailable, match="unreachable: connection reset") as caught:
        wrap(raising(cause))()
    assert caught.value.__cause__ is cause
    with pytest.raises(StoreUnavailable, match="did not answer in time"):
        wrap(raising(ExecutionTimeout("too slow", code=50)))()


def test_refused_mongo_credentials_are_one_line_and_other_failures_pass_as_they_are():
    with pytest.raises(StoreCredentialsRefused) as caught:
        mongo.guarded(raising(OperationFailure("Authentication failed.", code=18)))()
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    duplicate = DuplicateKeyError("E11000", code=11000)
    with pytest.raises(DuplicateKeyError) as same:
        mongo.guarded(raising(duplicate))()
    assert same.value is duplicate
    with pytest.raises(KeyError):
        mongo.guarded(raising(KeyError("x")))()
    assert mongo.guarded(lambda a, b=1: a + b)(1, b=2) == 3


def test_redis_errors_become_broker_unavailable_and_refused_credentials_one_line():
    cause = redis.ConnectionError("Connection refused")
    with pytest.raises(BrokerUnavailable, match="Redis unreachable: ConnectionError: Connection refused") as caught:
        broker_redis.guarded(raising(cause))()
    assert caught.value.__cause__ is cause
    with pytest.raises(BrokerCredentialsRefused) as refused:
        broker_redis.guarded(raising(redis.AuthenticationError("invalid password.")))()
    assert refused.value.__suppress_context__
    with pytest.raises(ValueError):
        broker_redis.guarded(raising(ValueError("x")))()


def test_the_context_managers_translate_the_same():
    with pytest.raises(StoreUnavailable), mongo.translated():
        raise AutoReconnect("gone")
    with pytest.raises(BrokerUnavailable), broker_redis.translated():
        raise redis.TimeoutError("slow")


def test_generators_are_translated_while_they_are_read():
    def rows():
        yield 1
        raise AutoReconnect("gone")

    walk = mongo.guarded(rows)()
    assert next(walk) == 1
    with pytest.raises(StoreUnavailable):
        next(walk)

"""One error tree, mapped once: every HydraError subclass, found by walking the packages, is
answered over REST and gRPC with what its class attributes say (hydra/errors.py), and the
client turns each error answer back into the hydra.errors class of that status."""

from __future__ import annotations

import importlib
import pkgutil

import pytest
from flask import Flask
from google.rpc import code_pb2, error_details_pb2

import api
import hydra
from api import docs
from api import errors as rest
from hydra import errors
from hydra.client import errors as client_errors
from hydra.rpc.errors import InvalidArgument, status_of


def subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub} | subclasses(sub)
    return found


def every_error() -> list[type]:
    for package in (hydra, api):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if not module.name.endswith("__main__"):
                importlib.import_module(module.name)
    return sorted(subclasses(errors.HydraError) | {errors.HydraError}, key=lambda c: (c.__module__, c.__qualname__))


ERRORS = every_error()


def instance(cls: type) -> errors.HydraError:
    """An instance of ``cls`` with the fields its answers read (whatever its constructor takes)."""
    exc = cls.__new__(cls)
    Exception.__init__(exc, "what happened")
    fields = {"errors": {"user": ["bad"]}, "location": "json", "prefix": "", "message": "what happened"}
    for name, value in {**fields, "status_code": None, "body": None}.items():
        try:
            setattr(exc, name, value)
        except AttributeError:  # a property (the client's InvalidRequest.errors)
            pass
    return exc


def test_the_walk_finds_the_errors_outside_hydra_errors():
    names = {f"{cls.__module__}.{cls.__qualname__}" for cls in ERRORS}
    assert {"hydra.rpc.errors.InvalidArgument", "hydra.control.rendering.Unrenderable"} <= names
    assert {"hydra.client.errors.NotFound", "hydra.errors.StoreCredentialsRefused"} <= names


@pytest.fixture(scope="module")
def app():
    app = Flask(__name__)
    rest.init_app(app)

    @app.get("/raise/<int:index>")
    def raise_it(index: int):
        raise instance(ERRORS[index])

    return app


@pytest.mark.parametrize("index", range(len(ERRORS)), ids=[cls.__qualname__ for cls in ERRORS])
def test_each_error_is_answered_over_rest_as_its_class_says(app, index):
    cls = ERRORS[index]
    response = app.test_client().get(f"/raise/{index}")
    internal = cls.http_status >= 500 and cls.retry_after is None
    assert response.status_code == (500 if internal else cls.http_status)
    assert response.json["code"] == response.status_code and response.json["status"]
    assert response.headers.get("Retry-After") == (None if cls.retry_after is None else str(cls.retry_after))
    if internal:
        assert response.json["message"] == "internal error (logged)"
    assert str(response.status_code) in docs._STANDARD


@pytest.mark.parametrize("cls", ERRORS, ids=[cls.__qualname__ for cls in ERRORS])
def test_each_error_is_answered_over_grpc_as_its_class_says(cls):
    status = status_of(instance(cls))
    assert status.code == code_pb2.Code.Value(cls.grpc_code)
    retries = [item for item in status.details if item.Is(error_details_pb2.RetryInfo.DESCRIPTOR)]
    if cls.retry_after is None:
        assert not retries
    else:
        [packed] = retries
        retry = error_details_pb2.RetryInfo()
        packed.Unpack(retry)
        assert retry.retry_delay.seconds == cls.retry_after


def test_the_protocols_agree_on_the_main_branches():
    table = {
        errors.InvalidJob: (422, "INVALID_ARGUMENT"),
        errors.NotAuthenticated: (401, "UNAUTHENTICATED"),
        errors.Forbidden: (403, "PERMISSION_DENIED"),
        errors.NotFound: (404, "NOT_FOUND"),
        errors.Conflict: (409, "FAILED_PRECONDITION"),
        errors.KeyInFlight: (409, "ABORTED"),
        errors.Unavailable: (503, "UNAVAILABLE"),
        errors.RunEnded: (500, "INTERNAL"),
        InvalidArgument: (422, "INVALID_ARGUMENT"),
    }
    assert {cls: (cls.http_status, cls.grpc_code) for cls in table} == table
    assert errors.StoreUnavailable.retry_after == errors.RETRY_AFTER_SECONDS > 0


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, errors.InvalidRequest),
        (401, errors.NotAuthenticated),
        (403, errors.Forbidden),
        (404, errors.NotFound),
        (409, errors.Conflict),
        (422, errors.InvalidRequest),
        (503, errors.Unavailable),
    ],
)
def test_the_client_raises_the_hydra_error_of_each_status(status, cls):
    error = client_errors.error_of("GET /x", status, {"code": status, "message": "said"})
    assert isinstance(error, cls) and isinstance(error, client_errors.ClientError)
    assert (error.status_code, error.message, str(error)) == (status, "said", "said")


def test_any_other_answer_is_a_server_error():
    error = client_errors.error_of("GET /x", 500, None)
    assert type(error) is client_errors.ServerError and str(error) == "GET /x: HTTP 500"

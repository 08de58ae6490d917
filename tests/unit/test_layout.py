"""Rules of the package's shape that the linters do not check: only the stores touch MongoDB's
collections, every store and Redis-backed method speaks Hydra's errors, each status has one
meaning. (import-linter checks the layers and the absence of cycles: ``make lint``.)"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest
from pymongo.errors import AutoReconnect, ConnectionFailure
from redis.exceptions import ConnectionError as RedisConnectionError

import api
import hydra
from hydra.broker.index import Index
from hydra.broker.redis import RedisBacked
from hydra.errors import Unavailable
from hydra.model.records import Job
from hydra.model.spec import JOB_FIELDS
from hydra.model.status import ACTIVE, FOLLOWED, IN_PROGRESS, TERMINAL, RunStatus
from hydra.settings import Settings, env_name
from hydra.store import jobs, runs
from hydra.store.base import Store

REPO = Path(__file__).resolve().parents[2]
#: Attribute names that reach a collection or the database itself.
STORE_INTERNALS = {"_collection", "_fences", "_named", "get_database", "get_client"}


def python_files():
    for package in ("hydra", "api"):
        for path in sorted((REPO / package).rglob("*.py")):
            if "store" not in path.relative_to(REPO).parts:
                yield path


@pytest.mark.parametrize("path", list(python_files()), ids=lambda p: str(p.relative_to(REPO)))
def test_no_module_outside_the_stores_touches_a_collection(path):
    tree = ast.parse(path.read_text())
    used = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    used |= {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    used |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for alias in node.names}
    assert not used & STORE_INTERNALS, f"{path.name} reaches into MongoDB: {sorted(used & STORE_INTERNALS)}"
    assert not any(
        isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "db"
        for node in ast.walk(tree)
    ), f"{path.name} indexes a database"


def subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub} | subclasses(sub)
    return found


def driver_classes() -> list[type]:
    """Every Store and every RedisBacked subclass in the packages (imported by walking them)."""
    for package in (hydra, api):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if not module.name.endswith("__main__"):
                importlib.import_module(module.name)
    return sorted(subclasses(Store) | subclasses(RedisBacked), key=lambda cls: (cls.__module__, cls.__qualname__))


def down(error: type[Exception]) -> object:
    """A stand-in for a driver (or for anything a method is given) whose every use raises
    ``error``, as a driver does when its server is gone."""

    def fail(self, *args, **kwargs):
        raise error("the server is down (test)")

    uses = "getattr getitem setitem call iter len bool str repr format eq lt le gt ge hash add radd sub rsub"
    uses += " mul rmul truediv int float index contains enter fspath"
    return type("Down", (), {f"__{name}__": fail for name in uses.split()})()


def built(cls: type, error: type[Exception]) -> object:
    """An instance of ``cls`` whose MongoDB database and Redis client raise ``error``."""
    mongo, redis_client = (down(error), down(RedisConnectionError)) if issubclass(cls, Store) else (None, down(error))
    index = Index(redis_client)
    given = {
        "db": mongo,
        "client": redis_client,
        "index": index,
        "jobs": jobs.JobStore(mongo, index) if mongo is not None else None,
        "runs": runs.RunStore(mongo, index=index) if mongo is not None else None,
        "key": "hydra:test",
        "identity": "test",
        "ttl": 1.0,
    }
    parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
    kwargs = {}
    for parameter in parameters:
        if parameter.kind not in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
            continue
        if parameter.name in given and given[parameter.name] is not None:
            kwargs[parameter.name] = given[parameter.name]
        else:
            assert parameter.default is not parameter.empty, f"give {cls.__name__}'s {parameter.name} a value here"
    return cls(**kwargs)


def public_methods(cls: type) -> list[str]:
    return [
        name
        for name in dir(cls)
        if not name.startswith("_")
        and (
            inspect.isfunction(static := inspect.getattr_static(cls, name))
            or isinstance(static, (staticmethod, classmethod))
        )
    ]


DRIVER_CLASSES = driver_classes()


def test_the_walk_finds_every_store_and_redis_helper():
    found = {cls.__name__ for cls in DRIVER_CLASSES}
    assert {"JobStore", "RunStore", "Reindexer", "Retention", "Index", "LeaderLease", "Registry"} <= found
    assert len(found) >= 19


@pytest.mark.parametrize(
    ("cls", "error"),
    [
        (cls, error)
        for cls in DRIVER_CLASSES
        for error in ((ConnectionFailure, AutoReconnect) if issubclass(cls, Store) else (RedisConnectionError,))
    ],
    ids=lambda value: value.__name__,
)
def test_every_public_method_answers_a_driver_error_with_unavailable(cls, error):
    """The driver raises (and so does anything the method is given): each public method
    raises Hydra's Unavailable, a generator while it is read; none lets the driver's error
    out. A method that touched neither returns."""
    reached = 0
    for name in public_methods(cls):
        method = getattr(built(cls, error), name)
        arguments = {
            p.name: down(error)
            for p in inspect.signature(method).parameters.values()
            if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        }
        try:
            result = method(**arguments)
            if inspect.isgenerator(result):
                list(result)
        except Unavailable:
            reached += 1
        except Exception as exc:  # noqa: BLE001 - the point: which one came out
            pytest.fail(f"{cls.__name__}.{name} let {type(exc).__name__} out: {exc}")
    assert reached, f"no public method of {cls.__name__} reached its driver"


def test_the_status_groups_partition_what_they_should():
    assert ACTIVE.isdisjoint(TERMINAL) and FOLLOWED <= TERMINAL and IN_PROGRESS == ACTIVE | FOLLOWED
    assert set(RunStatus) == ACTIVE | TERMINAL


def test_every_job_body_field_is_a_field_of_the_job_record():
    assert set(JOB_FIELDS) <= set(Job.__dataclass_fields__)


def test_settings_are_read_from_their_variables_by_type():
    settings = Settings.from_env(
        {
            env_name("controller_tick"): "0.25",
            env_name("output_limit"): "10",
            env_name("mongo_db"): "x",
            env_name("allowed_users"): "a,b",
        }
    )
    assert (settings.controller_tick, settings.output_limit, settings.mongo_db, settings.allowed_users) == (
        0.25,
        10,
        "x",
        "a,b",
    )
    assert Settings.from_env({env_name("mongo_db"): ""}).mongo_db == "hydra"  # empty: the default
    with pytest.raises(ValueError, match="HYDRA_OUTPUT_LIMIT must be an integer"):
        Settings.from_env({"HYDRA_OUTPUT_LIMIT": "lots"})


def test_every_setting_is_documented_for_operators():
    documented = (REPO / "deploy" / "systemd" / "hydra.env.example").read_text()
    missing = [env_name(name) for name in Settings.__dataclass_fields__ if env_name(name) not in documented]
    assert not missing, f"deploy/systemd/hydra.env.example does not describe {missing}"

"""Rules of the package's shape that the linters do not check: only the stores touch MongoDB's
collections, every store and Redis-backed method speaks Hydra's errors, each status has one
meaning. (import-linter checks the layers and the absence of cycles: ``make lint``.)"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from hydra.broker import due, lease, registry, schedules, stops
from hydra.broker.redis import RedisBacked
from hydra.model.records import Job
from hydra.model.spec import JOB_FIELDS
from hydra.model.status import ACTIVE, FOLLOWED, IN_PROGRESS, TERMINAL, RunStatus
from hydra.settings import Settings, env_name
from hydra.store import jobs, output, runs, workers
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


@pytest.mark.parametrize(
    "cls",
    [
        jobs.JobStore,
        runs.RunStore,
        workers.WorkerStore,
        output.OutputStore,
        registry.Registry,
        lease.LeaderLease,
        due.DueIndex,
        schedules.ScheduleFeed,
        stops.StopFlags,
    ],
)
def test_every_public_method_translates_driver_errors(cls):
    assert issubclass(cls, (Store, RedisBacked))
    for name, member in vars(cls).items():
        if inspect.isfunction(member) and not name.startswith("_"):
            assert hasattr(member, "__wrapped__"), f"{cls.__name__}.{name} lets driver errors out"


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

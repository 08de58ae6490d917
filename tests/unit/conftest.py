"""In-memory fakes for the orchestration unit tests: Hydra's stores on mongomock, its Redis
on fakeredis, and an app that records what the dispatch pipeline sends instead of sending it.

The code under test is Hydra's own (stores, registry, pipeline, attempts, verbs); only the
servers are replaced. The integration tests run the same code against real servers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import fakeredis
import mongomock
import pytest

from hydra import clock
from hydra.broker.index import Index
from hydra.broker.registry import Registry, WorkerRecord
from hydra.celery.app import app as celery_app
from hydra.dispatch.pipeline import Pipeline
from hydra.dispatch.router import AffinityRouter
from hydra.model.affinity import WorkerProfile
from hydra.store.runs import RunStore


@dataclass
class Sent:
    name: str
    kwargs: dict
    options: dict


@dataclass
class RecordingApp:
    """Stands in for the Celery app: ``publish`` records the message (or raises ``fail``)."""

    sent: list[Sent] = field(default_factory=list)
    fail: Exception | None = None

    def publish(self, name: str, kwargs: dict, **options: Any) -> Any:
        if self.fail is not None:
            raise self.fail
        self.sent.append(Sent(name, kwargs, options))
        return SimpleNamespace(id=options["task_id"])

    def AsyncResult(self, task_id: str) -> Any:  # noqa: N802 - Celery's name
        return SimpleNamespace(id=task_id)


@dataclass
class Memory:
    db: Any
    redis: Any
    app: RecordingApp
    pipeline: Pipeline
    registry: Registry

    def worker(self, name: str, *, tags=(), users=None, concurrency: int = 2, status: str = "online") -> WorkerProfile:
        """Put a worker into the registry, as the controller would from its events."""
        profile = WorkerProfile(
            id=f"{name}@host",
            os="linux",
            tags=frozenset(tags),
            allowed_users=None if users is None else frozenset(users),
            max_concurrency=concurrency,
            shells=frozenset({"bash", "sh"}),
        )
        self.registry.put(WorkerRecord(profile=profile, status=status, seen_at=clock.epoch()))
        self.registry.forget_cache()
        return profile

    def queue_of(self, run_id: str) -> str | None:
        return next((s.options["queue"] for s in self.app.sent if s.options["task_id"] == run_id), None)


@pytest.fixture
def memory(monkeypatch) -> Memory:
    db = mongomock.MongoClient(tz_aware=True)["hydra_unit"]
    redis = fakeredis.FakeRedis(decode_responses=True)
    monkeypatch.setattr("hydra.store.base.get_database", lambda timeout=None: db)
    monkeypatch.setattr("hydra.broker.redis.get_redis", lambda timeout=None: redis)
    monkeypatch.setattr("hydra.broker.metrics.get_redis", lambda timeout=None: redis)
    registry = Registry()
    Index().mark_built("unit")  # an empty database: nothing to rebuild (test_indexes covers both paths)
    app = RecordingApp()
    pipeline = Pipeline(app, router=AffinityRouter(registry), runs=RunStore())
    # This process's pipeline (hydra.celery.app.current_pipeline) for the test: code that takes
    # none uses this one too, never one kept from an earlier test's fakes.
    monkeypatch.setitem(celery_app.__dict__, "pipeline", pipeline)
    return Memory(db=db, redis=redis, app=app, pipeline=pipeline, registry=registry)

"""Hydra's settings, read from the environment once per process.

Every component (API, controller, workers, CLI) reads its configuration through
:func:`get_settings`; ``celeryconfig.py`` only maps these values onto Celery's
names. Nothing else in Hydra reads ``os.environ`` for configuration, except the
worker-side ``HYDRA_ALLOWED_USERS`` profile variable (see ``hydra.worker``).
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass, fields


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None


@dataclass(frozen=True)
class Settings:
    """Typed configuration; each field names its environment variable."""

    #: HYDRA_BROKER_URL: the Redis broker (also holds the live worker registry).
    broker_url: str = "redis://127.0.0.1:6379/0"
    #: HYDRA_MONGO_URL: the MongoDB server (or FerretDB) holding definitions and runs.
    mongo_url: str = "mongodb://127.0.0.1:27017/"
    #: HYDRA_MONGO_DB: database name.
    mongo_db: str = "hydra"
    #: HYDRA_MONGO_TIMEOUT: seconds before a MongoDB call gives up (server selection).
    mongo_timeout: float = 5.0
    #: HYDRA_OUTPUT_LIMIT: bytes of stdout and of stderr kept per run.
    output_limit: int = 256 * 1024
    #: HYDRA_OFFLINE_AFTER: heartbeat intervals without a heartbeat before a worker is offline.
    offline_after: float = 2.5
    #: HYDRA_CONTROLLER_TICK: seconds between the controller's housekeeping passes.
    controller_tick: float = 0.5
    #: HYDRA_LEADER_TTL: seconds a controller's leader lease lasts without renewal.
    leader_ttl: float = 5.0
    #: HYDRA_FORGET_AFTER: seconds a worker stays listed after it went offline.
    forget_after: float = 86400.0
    #: HYDRA_VISIBILITY_TIMEOUT: seconds before Redis hands an unacknowledged message out again.
    visibility_timeout: float = 3600.0
    #: HYDRA_ROUTER_CACHE: seconds the router may reuse the registry it read.
    router_cache: float = 0.5
    #: HYDRA_DEFAULT_TIMEOUT: command timeout (seconds) when a job gives none.
    default_timeout: float = 3600.0
    #: HYDRA_API_URL: where clients (CLI, examples) find the API.
    api_url: str = "http://127.0.0.1:8000"
    #: HYDRA_SCHEDULER_LOCK_TTL: seconds the cron scheduler's leader lock lives unless renewed.
    scheduler_lock_ttl: float = 10.0
    #: HYDRA_MISFIRE_GRACE: seconds a cron tick may be late and still count as on time.
    misfire_grace: float = 60.0

    @classmethod
    def from_env(cls) -> "Settings":
        return cls(
            broker_url=os.environ.get("HYDRA_BROKER_URL") or cls.broker_url,
            mongo_url=os.environ.get("HYDRA_MONGO_URL") or cls.mongo_url,
            mongo_db=os.environ.get("HYDRA_MONGO_DB") or cls.mongo_db,
            mongo_timeout=_env_float("HYDRA_MONGO_TIMEOUT", cls.mongo_timeout),
            output_limit=_env_int("HYDRA_OUTPUT_LIMIT", cls.output_limit),
            offline_after=_env_float("HYDRA_OFFLINE_AFTER", cls.offline_after),
            controller_tick=_env_float("HYDRA_CONTROLLER_TICK", cls.controller_tick),
            router_cache=_env_float("HYDRA_ROUTER_CACHE", cls.router_cache),
            leader_ttl=_env_float("HYDRA_LEADER_TTL", cls.leader_ttl),
            visibility_timeout=_env_float("HYDRA_VISIBILITY_TIMEOUT", cls.visibility_timeout),
            forget_after=_env_float("HYDRA_FORGET_AFTER", cls.forget_after),
            default_timeout=_env_float("HYDRA_DEFAULT_TIMEOUT", cls.default_timeout),
            api_url=os.environ.get("HYDRA_API_URL") or cls.api_url,
            scheduler_lock_ttl=_env_float("HYDRA_SCHEDULER_LOCK_TTL", cls.scheduler_lock_ttl),
            misfire_grace=_env_float("HYDRA_MISFIRE_GRACE", cls.misfire_grace),
        )

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once; tests call ``get_settings.cache_clear()``)."""
    return Settings.from_env()

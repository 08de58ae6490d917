"""The live worker registry in Redis: profiles, liveness and load.

The controller writes it from Celery events (heartbeats, online/offline, task ends); the
router reads it on every publish. It is a cache of what the workers say, never the record
of truth: after a Redis flush the controller rebuilds it from the next heartbeats.

Layout (names in ``hydra.names``):
  ``hydra:workers``  hash  worker id -> JSON {profile..., status, last_heartbeat, freq, active}
  ``hydra:load``     hash  worker id -> runs routed to it and not finished
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from hydra import names
from hydra.broker.redis import RedisBacked
from hydra.model.affinity import WorkerProfile
from hydra.model.priority import level_keys
from hydra.settings import get_settings


@dataclass
class WorkerRecord:
    """A worker as the registry knows it."""

    profile: WorkerProfile
    status: str = "online"  # online | offline
    last_heartbeat: float = 0.0  # epoch seconds (the worker's own clock, as sent in the event)
    freq: float = 2.0  # its heartbeat interval
    active: int = 0  # tasks executing at its last heartbeat
    processed: int = 0
    hostname: str = ""
    pid: int | None = None
    sw_ver: str = ""
    seen_at: float = 0.0  # controller's clock when last heard from
    incarnation: str | None = None  # random token of the worker's current process

    def is_stale(self, now: float, offline_after: float) -> bool:
        """Not heard from for ``offline_after`` heartbeat intervals, by the controller's clock
        (``seen_at`` and ``now`` both come from the controller, so worker clock skew is moot)."""
        return now - self.seen_at > offline_after * self.freq

    def to_json(self) -> str:
        data = self.profile.to_dict()
        data.update(
            status=self.status,
            last_heartbeat=self.last_heartbeat,
            freq=self.freq,
            active=self.active,
            processed=self.processed,
            hostname=self.hostname,
            pid=self.pid,
            sw_ver=self.sw_ver,
            seen_at=self.seen_at,
            incarnation=self.incarnation,
        )
        return json.dumps(data)

    @classmethod
    def from_json(cls, raw: str) -> WorkerRecord:
        data = json.loads(raw)
        return cls(
            profile=WorkerProfile.from_dict(data),
            status=data.get("status", "online"),
            last_heartbeat=float(data.get("last_heartbeat") or 0),
            freq=float(data.get("freq") or 2.0),
            active=int(data.get("active") or 0),
            processed=int(data.get("processed") or 0),
            hostname=data.get("hostname") or "",
            pid=data.get("pid"),
            sw_ver=data.get("sw_ver") or "",
            seen_at=float(data.get("seen_at") or 0),
            incarnation=data.get("incarnation"),
        )


class Registry(RedisBacked):
    """Read/write access to the registry; one instance per process is enough."""

    def __init__(self, client=None):
        super().__init__(client)
        self._cache: tuple[float, list[WorkerProfile]] | None = None

    # -- controller side -------------------------------------------------------------
    def put(self, record: WorkerRecord) -> None:
        self.redis.hset(names.WORKERS_KEY, record.profile.id, record.to_json())

    def get(self, worker_id: str) -> WorkerRecord | None:
        raw = self.redis.hget(names.WORKERS_KEY, worker_id)
        return WorkerRecord.from_json(raw) if raw else None

    def records(self) -> dict[str, WorkerRecord]:
        return {wid: WorkerRecord.from_json(raw) for wid, raw in self.redis.hgetall(names.WORKERS_KEY).items()}

    def remove(self, worker_id: str) -> None:
        pipe = self.redis.pipeline()
        pipe.hdel(names.WORKERS_KEY, worker_id)
        pipe.hdel(names.LOAD_KEY, worker_id)
        pipe.execute()

    # -- router side -----------------------------------------------------------------
    def online(self, *, max_age: float | None = None) -> list[WorkerProfile]:
        """Profiles of the workers the controller last declared online.

        Cached up to ``max_age`` seconds (HYDRA_ROUTER_CACHE). Only the controller decides
        liveness, by its own clock, so routers on other machines need no clock agreement.
        """
        max_age = get_settings().router_cache if max_age is None else max_age
        now = time.monotonic()
        if self._cache is not None and now - self._cache[0] <= max_age:
            return self._cache[1]
        profiles = [r.profile for r in self.records().values() if r.status == "online"]
        self._cache = (now, profiles)
        return profiles

    def forget_cache(self) -> None:
        self._cache = None

    def inflight(self, worker_ids: list[str]) -> dict[str, int]:
        if not worker_ids:
            return {}
        values = self.redis.hmget(names.LOAD_KEY, worker_ids)
        return {wid: int(v or 0) for wid, v in zip(worker_ids, values, strict=True)}

    def add_load(self, worker_id: str, delta: int) -> int:
        value = self.redis.hincrby(names.LOAD_KEY, worker_id, delta)
        if value < 0:  # a decrement raced a reset; never let load go negative
            self.redis.hset(names.LOAD_KEY, worker_id, 0)
            value = 0
        return value

    def set_load(self, worker_id: str, value: int) -> None:
        self.redis.hset(names.LOAD_KEY, worker_id, max(0, value))

    def queued(self, queue: str) -> int:
        """Messages waiting in a worker's queue, over all its priority levels."""
        pipe = self.redis.pipeline()
        for key in level_keys(queue):
            pipe.llen(key)
        return sum(pipe.execute())

    def loads(self) -> dict[str, int]:
        return {wid: int(v) for wid, v in self.redis.hgetall(names.LOAD_KEY).items()}

    def ping(self) -> None:
        """Raise BrokerUnavailable unless Redis answers."""
        self.redis.ping()

    # -- the controller's own liveness ----------------------------------------------------
    def mark_controller_alive(self, name: str, *, ttl: int) -> None:
        """The leading controller says it is alive (every tick; gone ``ttl`` s after it stops)."""
        self.redis.set(names.CONTROLLER_ALIVE_KEY, name, ex=ttl)

    def controller_alive(self) -> str | None:
        """The name of the leading controller, while it ticks."""
        return self.redis.get(names.CONTROLLER_ALIVE_KEY)

    def count_tick(self, took_ms: float | None = None) -> int:
        """Count one completed pass of the leading controller (and how long it took, the
        latest 1000 kept); returns the count."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.incr(names.CONTROLLER_TICKS_KEY)
        if took_ms is not None:
            pipe.lpush(names.CONTROLLER_TICK_MS_KEY, round(took_ms, 3))
            pipe.ltrim(names.CONTROLLER_TICK_MS_KEY, 0, 999)
        return int(pipe.execute()[0])

    def tick_durations(self) -> list[float]:
        """How long the leading controller's latest passes took (milliseconds, newest first)."""
        return [float(v) for v in self.redis.lrange(names.CONTROLLER_TICK_MS_KEY, 0, -1)]

    def ticks(self) -> int:
        """Passes the leading controllers have completed (tests wait for the next ones)."""
        return int(self.redis.get(names.CONTROLLER_TICKS_KEY) or 0)

"""The live worker registry in Redis: profiles, liveness and load.

The controller writes it from Celery events (heartbeats, online/offline, task ends); the
router reads it on every publish. It is a cache of what the workers say, never the record
of truth: after a Redis flush the controller rebuilds it from the next heartbeats.

Layout (names in ``hydra.names``):
  ``hydra:workers``          hash    worker id -> JSON {profile..., status, last_heartbeat, freq, active}
  ``hydra:workers:version``  string  changed with every change of a profile or liveness
  ``hydra:load``             hash    worker id -> runs routed to it and not finished
  ``hydra:loadgroups``       hash    online worker id -> its load group's sorted set
  ``hydra:loadz:<group>``    zset    online worker id -> its load (``hydra.model.roster``)
  ``hydra:workers:drained``  set     drained worker ids (a copy of MongoDB's ``worker_drains``)

The router decodes the profiles once per version (:meth:`Registry.roster`) and reads one
member per eligible load group (:meth:`Registry.least_loaded`): a decision costs one round
trip whatever the size of the fleet. Every change of a load goes through one Lua step that
writes the hash and the worker's sorted set together.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass

from hydra import names
from hydra.broker.redis import RedisBacked
from hydra.model.affinity import WorkerProfile, least_loaded
from hydra.model.priority import level_keys
from hydra.model.roster import Group, Roster, group_key
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


#: A load change: the hash and, for an online worker, its group's sorted set, in one step.
#: KEYS: load hash, groups hash; ARGV: worker, "add" | "set", value. Returns the new load.
_CHANGE_LOAD = """
local v
if ARGV[2] == 'add' then
  v = redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[3])
  if v < 0 then v = 0; redis.call('HSET', KEYS[1], ARGV[1], 0) end
else
  v = math.max(0, tonumber(ARGV[3]))
  redis.call('HSET', KEYS[1], ARGV[1], v)
end
local group = redis.call('HGET', KEYS[2], ARGV[1])
if group then redis.call('ZADD', group, v, ARGV[1]) end
return v
"""
#: A worker joins its load group (leaving the one it was in). KEYS: load hash, groups hash,
#: the group's sorted set; ARGV: worker.
_JOIN = """
local old = redis.call('HGET', KEYS[2], ARGV[1])
if old and old ~= KEYS[3] then redis.call('ZREM', old, ARGV[1]) end
redis.call('HSET', KEYS[2], ARGV[1], KEYS[3])
redis.call('ZADD', KEYS[3], tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or 0), ARGV[1])
return 1
"""
#: A worker leaves its load group (offline, forgotten). KEYS: groups hash; ARGV: worker.
_LEAVE = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then redis.call('ZREM', old, ARGV[1]); redis.call('HDEL', KEYS[1], ARGV[1]) end
return 1
"""
#: Messages waiting over all of a queue's priority levels (KEYS: the levels' lists).
_QUEUED = """
local n = 0
for _, key in ipairs(KEYS) do n = n + redis.call('LLEN', key) end
return n
"""
#: The first ARGV[1] members (with their loads) of each group's sorted set in KEYS.
_FIRSTS = """
local out = {}
for i, key in ipairs(KEYS) do out[i] = redis.call('ZRANGE', key, 0, tonumber(ARGV[1]) - 1, 'WITHSCORES') end
return out
"""
#: Members of a group's sorted set read first; more only when none of them is in the roster.
PEEK, PEEK_MORE = 1, 16


class Registry(RedisBacked):
    """Read/write access to the registry; one instance per process is enough."""

    def __init__(self, client=None):
        super().__init__(client)
        #: (checked at (monotonic), registry version, the roster decoded at that version)
        self._roster: tuple[float, str | None, Roster] | None = None
        #: worker id -> (profile, status) this process last wrote (the controller's memo)
        self._shapes: dict[str, tuple[str, str]] = {}

    # -- controller side -------------------------------------------------------------
    def put(self, record: WorkerRecord) -> None:
        """Write a worker's record; a change of its profile or liveness also moves it in or
        out of its load group and changes the registry's version (a heartbeat does neither)."""
        self._put(record, with_queue=False)

    def beat(self, record: WorkerRecord) -> tuple[int, int]:
        """:meth:`put`, and in the same round trip read the worker's load and the messages
        waiting in its queue (the controller's load correction); returns both."""
        return self._put(record, with_queue=True)

    def beats(self, records: list[WorkerRecord]) -> list[tuple[int, int]]:
        """:meth:`beat` for many workers in one round trip (those whose profile or liveness
        changed are written one by one); returns each one's load and queued messages."""
        pipe = self.redis.pipeline(transaction=False)
        plain = []
        for record in records:
            if self._shapes.get(record.profile.id) != self._shape(record):
                continue
            plain.append(record)
            pipe.hset(names.WORKERS_KEY, record.profile.id, record.to_json())
            pipe.hget(names.LOAD_KEY, record.profile.id)
            self._script(_QUEUED)(keys=level_keys(record.profile.queue), client=pipe)
        pipe.set(names.WORKERS_VERSION_KEY, secrets.token_hex(8), nx=True)
        results = pipe.execute() if plain else [False]
        if results[-1]:  # the version was gone: Redis restarted or was flushed
            self._shapes.clear()
        read = {r.profile.id: (int(results[3 * i + 1] or 0), int(results[3 * i + 2])) for i, r in enumerate(plain)}
        return [read[r.profile.id] if r.profile.id in read and not results[-1] else self.beat(r) for r in records]

    @staticmethod
    def _shape(record: WorkerRecord) -> tuple[str, str]:
        return json.dumps(record.profile.to_dict(), sort_keys=True), record.status

    def _put(self, record: WorkerRecord, *, with_queue: bool) -> tuple[int, int]:
        wid = record.profile.id
        shape = self._shape(record)
        changed = self._shapes.get(wid) != shape
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(names.WORKERS_KEY, wid, record.to_json())
        if changed:
            if record.status == "online":
                group = names.LOAD_GROUP_PREFIX + group_key(record.profile)
                self._script(_JOIN)(keys=[names.LOAD_KEY, names.LOAD_GROUPS_KEY, group], args=[wid], client=pipe)
            else:
                self._script(_LEAVE)(keys=[names.LOAD_GROUPS_KEY], args=[wid], client=pipe)
        pipe.set(names.WORKERS_VERSION_KEY, secrets.token_hex(8), nx=not changed)
        version_at = len(pipe)
        if with_queue:
            pipe.hget(names.LOAD_KEY, wid)
            self._script(_QUEUED)(keys=level_keys(record.profile.queue), client=pipe)
        results = pipe.execute()
        self._shapes[wid] = shape
        if not changed and results[version_at - 1]:
            # The version was gone: Redis restarted or was flushed, and with it the groups.
            self._shapes.clear()
            return self._put(record, with_queue=with_queue)
        if not with_queue:
            return 0, 0
        return int(results[version_at] or 0), int(results[version_at + 1])

    def get(self, worker_id: str) -> WorkerRecord | None:
        raw = self.redis.hget(names.WORKERS_KEY, worker_id)
        return WorkerRecord.from_json(raw) if raw else None

    def records(self) -> dict[str, WorkerRecord]:
        return {wid: WorkerRecord.from_json(raw) for wid, raw in self.redis.hgetall(names.WORKERS_KEY).items()}

    def remove(self, worker_id: str) -> None:
        pipe = self.redis.pipeline()
        pipe.hdel(names.WORKERS_KEY, worker_id)
        pipe.hdel(names.LOAD_KEY, worker_id)
        self._script(_LEAVE)(keys=[names.LOAD_GROUPS_KEY], args=[worker_id], client=pipe)
        pipe.set(names.WORKERS_VERSION_KEY, secrets.token_hex(8))
        pipe.execute()
        self._shapes.pop(worker_id, None)

    # -- router side -----------------------------------------------------------------
    def roster(self, *, max_age: float | None = None) -> Roster:
        """The workers the controller last declared online, in load groups.

        Reused for ``max_age`` seconds (HYDRA_ROUTER_CACHE) without a look at Redis; after
        that one GET of the registry's version tells whether to decode it again. Only the
        controller decides liveness, by its own clock, so routers on other machines need no
        clock agreement.
        """
        max_age = get_settings().router_cache if max_age is None else max_age
        now = time.monotonic()
        cached = self._roster
        if cached is not None and now - cached[0] <= max_age:
            return cached[2]
        version = self.redis.get(names.WORKERS_VERSION_KEY)
        if cached is not None and version is not None and version == cached[1]:
            self._roster = (now, version, cached[2])
            return cached[2]
        drained = self.drained()
        online = [r.profile for r in self.records().values() if r.status == "online"]
        roster = Roster([p for p in online if p.id not in drained], drained=[p for p in online if p.id in drained])
        self._roster = (now, version, roster)
        return roster

    def online(self, *, max_age: float | None = None) -> list[WorkerProfile]:
        """Profiles of the workers the controller last declared online (see :meth:`roster`)."""
        return self.roster(max_age=max_age).workers

    def forget_cache(self) -> None:
        """Look at the registry's version at the next read (the roster is kept if it did not move)."""
        if self._roster is not None:
            self._roster = (float("-inf"), self._roster[1], self._roster[2])

    # -- drained workers (written by the drain verbs and the leading controller) -----------
    def drained(self) -> set[str]:
        """The drained workers' ids: the router places nothing on them."""
        return set(self.redis.smembers(names.DRAINED_KEY))

    def set_drained(self, worker_id: str, drained: bool) -> None:
        """Drain or undrain one worker, and change the registry's version (routers see it at once)."""
        pipe = self.redis.pipeline()
        (pipe.sadd if drained else pipe.srem)(names.DRAINED_KEY, worker_id)
        pipe.set(names.WORKERS_VERSION_KEY, secrets.token_hex(8))
        pipe.execute()

    def sync_drained(self, worker_ids: set[str]) -> bool:
        """Make the drained set exactly ``worker_ids`` (what MongoDB holds); whether it changed."""
        if self.drained() == worker_ids:
            return False
        pipe = self.redis.pipeline()
        pipe.delete(names.DRAINED_KEY)
        if worker_ids:
            pipe.sadd(names.DRAINED_KEY, *sorted(worker_ids))
        pipe.set(names.WORKERS_VERSION_KEY, secrets.token_hex(8))
        pipe.execute()
        return True

    def least_loaded(self, groups: tuple[Group, ...] | list[Group]) -> WorkerProfile | None:
        """The least-loaded worker of ``groups`` (``hydra.model.affinity.least_loaded``'s
        order), from the first member of each group's sorted set: one round trip. A group
        whose first members are unknown to the roster (it is older or newer than the sorted
        set) is read more deeply, then worker by worker."""
        inflight: dict[str, int] = {}
        winners: list[WorkerProfile] = []
        pending = list(groups)
        for peek in (PEEK, PEEK_MORE):
            if not pending:
                break
            keys = [names.LOAD_GROUP_PREFIX + group.key for group in pending]
            replies = self._script(_FIRSTS)(keys=keys, args=[peek], client=self.redis)
            missed = []
            for group, flat in zip(pending, replies, strict=True):
                first = next(((flat[i], flat[i + 1]) for i in range(0, len(flat), 2) if flat[i] in group.by_id), None)
                if first is None:
                    missed.append(group)
                    continue
                winners.append(group.by_id[first[0]])
                inflight[first[0]] = int(float(first[1]))
            pending = missed
        if pending:  # not (yet) in their sorted sets: read their loads one by one
            rest = [w for g in pending for w in g.workers]
            inflight.update(self.inflight([w.id for w in rest]))
            winners.extend(rest)
        return least_loaded(winners, inflight)

    def inflight(self, worker_ids: list[str]) -> dict[str, int]:
        if not worker_ids:
            return {}
        values = self.redis.hmget(names.LOAD_KEY, worker_ids)
        return {wid: int(v or 0) for wid, v in zip(worker_ids, values, strict=True)}

    def add_load(self, worker_id: str, delta: int) -> int:
        keys = [names.LOAD_KEY, names.LOAD_GROUPS_KEY]
        return int(self._script(_CHANGE_LOAD)(keys=keys, args=[worker_id, "add", delta], client=self.redis))

    def set_load(self, worker_id: str, value: int) -> None:
        keys = [names.LOAD_KEY, names.LOAD_GROUPS_KEY]
        self._script(_CHANGE_LOAD)(keys=keys, args=[worker_id, "set", value], client=self.redis)

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

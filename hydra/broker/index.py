"""The stores' secondary indexes in Redis: how a listing or a sweep finds records without
asking MongoDB to filter.

FerretDB 1.24 pushes only ``{_id: <string>}`` equality down to its backend; any other
filter decodes every document of the collection in Go (0.15-0.4 ms each), so a listing
or a sweep that filters in MongoDB costs O(history). The stores therefore keep, beside
each write to MongoDB, entries here that name the records by ``_id``, ordered the way
the listings page (newest first on a time, then ``_id``); a listing walks them with a
keyset cursor and fetches only the records of its page by ``_id``. Sweeps read the
``active`` hash, whose size is the work in progress, not the history.

MongoDB stays the record of truth (``hydra.store``): a listing checks each record it
shows against its filter (an entry that is stale is skipped, never shown), and until the
indexes are known to be complete - :meth:`Index.built`, set by a full rebuild from
MongoDB (``hydra.store.reindex``), gone with a flush - the stores query MongoDB natively.

Layout, per namespace, under ``hydra:ix:<namespace>:`` (scores are epoch milliseconds; the
scripts that keep it are ``hydra.broker.index_scripts``)::

    jobs                        zset  job id -> created_at        jobs not deleted
    jobs:deleted                zset  job id -> created_at        deleted jobs (retention walks them)
    jobs:user:<user>            zset
    jobs:status:<status>        zset                              by the job's status (its latest run's)
    jobs:user:<user>:status:<s> zset
    jobs:filed                  hash  job id -> its status set    which status set it is in ('' none):
                                                                  a move takes it out of that one
    jobs:scheduled              zset                              jobs with a cron schedule
    jobs:monitored              zset                              jobs marked monitor: true (/metrics)
    jobs:undispatched           zset                              accepted; first run maybe not recorded
    latest                      hash  job id -> run id            a job's latest run, while it is active
    runs:job:<job id>           zset  run id -> queued_at         every run of a job
    active                      hash  run id -> "status|worker|queue|not_before|queued_at|job id"
    dead                        zset  run id -> queued_at         dead letters not retried
    dead:retried                zset                              dead letters retried by hand
    dead:job:<job id>           zset                              a job's dead letters
    ends:job:<job id>           zset  "run id|status|seconds" -> finished_at
                                                                  its newest ended attempts (RECENT_ENDS)
    audit                       zset  event id -> at              the audit trail
    audit:actor:<user>          zset                              what one user did
    audit:target:<id>           zset                              what was done to one job, run, token

(audit events about tokens, which belong to no namespace, under ``hydra:ix:_:``)

plus ``hydra:ix:namespaces`` (set) and ``hydra:ix:built``. Every change of one record is
one Lua script (atomic, one round trip).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator

from hydra import names
from hydra.broker import index_scripts as lua
from hydra.broker.index_entries import RECENT_ENDS, Active, Ended, active_value, dead_mark, end_entry, score_of
from hydra.broker.redis import RedisBacked
from hydra.model.records import Job, Run

#: Entries read per round trip while walking a sorted set.
CHUNK = 200


class Index(RedisBacked):
    """Reads and writes of the secondary indexes (see the module docstring)."""

    def _run(self, source: str, *args, pipe=None) -> object:
        return self._script(source)(keys=[names.INDEX_NAMESPACES_KEY], args=list(args), client=pipe)

    def batch(self):
        """A pipeline to pass as ``pipe=`` to the writes below (a rebuild files thousands of
        records per round trip); ``execute()`` it."""
        pipe = self.redis.pipeline(transaction=False)
        for source in (lua.PUT_JOB, lua.PUT_RUN, lua.DROP_RUN):
            self._script(source)
        return pipe

    # -- keys ---------------------------------------------------------------------------------
    @staticmethod
    def jobs_key(namespace: str, *, status: str | None = None, user: str | None = None) -> str:
        key = names.index_prefix(namespace) + "jobs"
        if user is not None:
            key += f":user:{user}"
        if status is not None:
            key += f":status:{status}"
        return key

    @staticmethod
    def deleted_key(namespace: str) -> str:
        return names.index_prefix(namespace) + "jobs:deleted"

    @staticmethod
    def scheduled_key(namespace: str) -> str:
        return names.index_prefix(namespace) + "jobs:scheduled"

    @staticmethod
    def monitored_key(namespace: str) -> str:
        return names.index_prefix(namespace) + "jobs:monitored"

    @staticmethod
    def undispatched_key(namespace: str) -> str:
        return names.index_prefix(namespace) + "jobs:undispatched"

    @staticmethod
    def runs_key(namespace: str, job_id: str) -> str:
        return names.index_prefix(namespace) + f"runs:job:{job_id}"

    @staticmethod
    def dead_keys(namespace: str, *, job_id: str | None = None, include_retried: bool = False) -> list[str]:
        prefix = names.index_prefix(namespace)
        if job_id is not None:
            return [prefix + f"dead:job:{job_id}"]
        return [prefix + "dead", prefix + "dead:retried"] if include_retried else [prefix + "dead"]

    @staticmethod
    def ends_key(namespace: str, job_id: str) -> str:
        return names.index_prefix(namespace) + f"ends:job:{job_id}"

    @staticmethod
    def active_key(namespace: str) -> str:
        return names.index_prefix(namespace) + "active"

    # -- state --------------------------------------------------------------------------------
    def built(self, part: str | None = None) -> bool:
        """True when the indexes of ``part`` (``jobs``, ``runs`` or ``audit``; default all) were built
        completely from MongoDB and kept since."""
        parts = names.INDEX_PARTS if part is None else (part,)
        return int(self.redis.exists(*(names.INDEX_BUILT_PREFIX + p for p in parts))) == len(parts)

    def mark_built(self, token: str, part: str | None = None) -> None:
        for p in names.INDEX_PARTS if part is None else (part,):
            self.redis.set(names.INDEX_BUILT_PREFIX + p, token)

    def unbuild(self) -> None:
        """Say the indexes may have lost entries (Redis restarted): listings read MongoDB
        until a rebuild completes."""
        self.redis.delete(*(names.INDEX_BUILT_PREFIX + p for p in names.INDEX_PARTS))

    def namespaces(self) -> list[str]:
        return sorted(self.redis.smembers(names.INDEX_NAMESPACES_KEY))

    # -- jobs ---------------------------------------------------------------------------------
    def put_job(
        self,
        job: Job,
        *,
        status: str | None = None,
        latest: str | None = None,
        undispatched: bool | None = None,
        previous_user: str | None = None,
        pipe=None,
    ) -> None:
        """File ``job`` from its record: listed (or deleted), by user, by ``status`` (default
        its stored status), scheduled, undispatched, and its ``latest`` run."""
        status = job.status if status is None else status
        undisp = "" if undispatched is None else ("1" if undispatched else "0")
        self._run(
            lua.PUT_JOB,
            names.index_prefix(job.namespace),
            job.id,
            score_of(job.created_at),
            job.user,
            status or "",
            "0" if job.deleted_at else "1",
            "1" if job.schedule else "0",
            undisp,
            latest or "",
            previous_user or "",
            job.namespace,
            "1" if job.monitor else "0",
            pipe=pipe,
        )

    def job_run_changed(self, namespace: str, job_id: str, user: str, status: str, run_id: str, how: str) -> None:
        """The job's run ``run_id`` was recorded (``how='record'``: it is now the job's latest)
        or ended (``'end'``) as ``status``: the job is filed under it."""
        self._run(lua.JOB_RUN, names.index_prefix(namespace), job_id, user, status, run_id, how)

    def job_dispatched(self, namespace: str, job_id: str) -> None:
        self.redis.zrem(self.undispatched_key(namespace), job_id)

    def drop_job(self, namespace: str, job_id: str, user: str) -> None:
        self._run(lua.DROP_JOB, names.index_prefix(namespace), job_id, user)

    # -- runs ---------------------------------------------------------------------------------
    def put_run(self, run: Run, *, new: bool = False, sent_at: float | None = None, pipe=None) -> None:
        """File ``run`` from its record: among its job's runs, active or not, dead letter.
        ``new``: only add the entries that are missing (before the record is inserted); with
        ``sent_at`` (epoch seconds, only with ``new``), also note the run as sent in
        ``hydra:sent`` (``hydra.broker.sent``), in the same script."""
        sent = (names.SENT_KEY, sent_at) if new and sent_at is not None else ()
        self._run(
            lua.PUT_RUN,
            names.index_prefix(run.namespace),
            run.id,
            run.job_id,
            score_of(run.queued_at),
            active_value(run),
            dead_mark(run),
            run.namespace,
            "new" if new else "set",
            end_entry(run),
            score_of(run.finished_at),
            *sent,
            pipe=pipe,
        )

    def run_claimed(self, namespace: str, run_id: str, *, worker_id: str, job_id: str, user: str) -> None:
        """A worker claimed ``run_id``: filed as running, and - in the same round trip - its
        namespace's quota place moved from queued to running (``hydra.broker.quotas``) and
        its ``hydra:sent`` entry removed (``hydra.broker.sent``)."""
        self._run(
            lua.CLAIM,
            names.index_prefix(namespace),
            run_id,
            worker_id,
            job_id or "",
            user or "",
            names.quota_key(namespace, "queued"),
            names.quota_key(namespace, "running"),
            names.SENT_KEY,
        )

    def run_ended(self, run: Run) -> None:
        """``run`` (its record after the end) ended: no longer active; maybe a dead letter;
        its job is filed under its status; and - in the same round trip - its quota places are
        freed (``hydra.broker.quotas``: the namespace's, its job's max_concurrent)."""
        self._run(
            lua.END,
            names.index_prefix(run.namespace),
            run.id,
            run.job_id,
            run.user or "",
            run.status,
            score_of(run.queued_at),
            dead_mark(run),
            run.namespace,
            end_entry(run),
            score_of(run.finished_at),
            names.quota_key(run.namespace, "queued"),
            names.quota_key(run.namespace, "running"),
            names.job_slots_key(run.job_id or "-"),
        )

    def forget_active(self, namespace: str, run_id: str) -> None:
        self.redis.hdel(self.active_key(namespace), run_id)

    def drop_run(self, namespace: str, run_id: str, job_id: str, pipe=None) -> None:
        self._run(lua.DROP_RUN, names.index_prefix(namespace), run_id, job_id, pipe=pipe)

    # -- the audit trail ----------------------------------------------------------------------
    @staticmethod
    def audit_key(namespace: str | None, *, actor: str | None = None, target: str | None = None) -> str:
        """The events of ``namespace`` (None: of no namespace), or of one target or actor there."""
        key = names.index_prefix(namespace or names.INDEX_NO_NAMESPACE) + "audit"
        if target is not None:
            return key + f":target:{target}"
        if actor is not None:
            return key + f":actor:{actor}"
        return key

    def put_audit(
        self, event_id: str, *, at, namespace: str | None, actor: str, target: str | None, pipe=None, also=None
    ) -> None:
        """File an audit event (insert-only: it is never refiled differently); ``also(pipe)``
        adds commands of the caller's to the same round trip (a submission's count)."""
        own = pipe is None
        pipe = self.redis.pipeline(transaction=False) if own else pipe
        if also is not None:
            also(pipe)
        score = score_of(at)
        keys = [self.audit_key(namespace), self.audit_key(namespace, actor=actor)]
        if target is not None:
            keys.append(self.audit_key(namespace, target=target))
        for key in keys:
            pipe.zadd(key, {event_id: score})
        if namespace:
            pipe.sadd(names.INDEX_NAMESPACES_KEY, namespace)
        if own:
            pipe.execute()

    # -- reads --------------------------------------------------------------------------------
    def newest(self, keys: list[str], before: tuple[int, str] | None = None) -> Iterator[tuple[int, str]]:
        """(score, member) of every member of ``keys``, newest first on (score, member), each
        once, strictly after ``before`` in that order; read lazily, CHUNK at a time."""
        streams = [self._walk_down(key, before) for key in keys]
        last = None
        for item in heapq.merge(*streams, reverse=True):
            if item != last:
                yield item
            last = item

    def _walk_down(self, key: str, before: tuple[int, str] | None) -> Iterator[tuple[int, str]]:
        # Keyset, not offsets: entries added or removed meanwhile shift nothing. Each read
        # starts at the score of the last item (inclusive) and skips what was yielded; a run
        # of equal scores longer than the read is read again with a larger one.
        bound, size = before, CHUNK
        while True:
            top = "+inf" if bound is None else str(bound[0])
            chunk = self.redis.zrevrangebyscore(key, top, "-inf", start=0, num=size, withscores=True)
            fresh = [item for item in ((int(s), m) for m, s in chunk) if bound is None or item < bound]
            yield from fresh
            if len(chunk) < size:
                return
            if fresh:
                bound, size = fresh[-1], CHUNK
            else:
                size *= 2

    def oldest(
        self, key: str, *, below: int, after: tuple[int, str] | None = None, limit: int = CHUNK
    ) -> list[tuple[int, str]]:
        """Up to ``limit`` (score, member) of ``key`` with score < ``below``, oldest first,
        strictly after ``after`` (a keyset cursor of this walk)."""
        bound, size = after, max(limit, 1)
        out: list[tuple[int, str]] = []
        while len(out) < limit:
            low = "-inf" if bound is None else str(bound[0])
            chunk = self.redis.zrangebyscore(key, low, f"({below}", start=0, num=size, withscores=True)
            fresh = [item for item in ((int(s), m) for m, s in chunk) if bound is None or item > bound]
            out += fresh
            if len(chunk) < size:
                break
            if fresh:
                bound, size = fresh[-1], max(limit, 1)
            else:
                size *= 2
        return out[:limit]

    def members(self, keys: Iterable[str]) -> list[tuple[str, int, str]]:
        """Every (key, score, member) of small sets (scheduled, undispatched), in one round trip."""
        keys = list(keys)
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.zrange(key, 0, -1, withscores=True)
        out = []
        for key, entries in zip(keys, pipe.execute(), strict=True):
            out += [(key, int(score), member) for member, score in entries]
        return out

    def active(self, namespaces: list[str] | None = None) -> list[Active]:
        """Every run in progress (pending, queued, running) of ``namespaces`` (default all)."""
        spaces = self.namespaces() if namespaces is None else namespaces
        pipe = self.redis.pipeline(transaction=False)
        for ns in spaces:
            pipe.hgetall(self.active_key(ns))
        out = []
        for ns, entries in zip(spaces, pipe.execute(), strict=True):
            out += [Active.parse(ns, run_id, value) for run_id, value in entries.items()]
        return out

    def count(self, key: str) -> int:
        return int(self.redis.zcard(key))

    def counts(self, keys: list[str]) -> list[int]:
        """The size of each sorted set of ``keys``, in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.zcard(key)
        return [int(n) for n in pipe.execute()]

    def recent_ends(self, jobs: list[tuple[str, str]]) -> dict[str, list[Ended]]:
        """The latest ended attempts (at most RECENT_ENDS, newest first) of each (namespace,
        job id), by job id, in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for namespace, job_id in jobs:
            pipe.zrevrange(self.ends_key(namespace, job_id), 0, RECENT_ENDS - 1, withscores=True)
        return {
            job_id: [Ended.parse(entry, score) for entry, score in found]
            for (_ns, job_id), found in zip(jobs, pipe.execute(), strict=True)
        }

    def memory(self) -> dict[str, int]:
        """Keys under ``hydra:ix:`` and the bytes Redis uses for them (sampled: MEMORY USAGE
        of each key; for sizing and the history benchmark)."""
        keys = used = 0
        for key in self.redis.scan_iter(match=names.INDEX_PREFIX + "*", count=1000):
            keys += 1
            used += int(self.redis.memory_usage(key, samples=0) or 0)
        return {"keys": keys, "bytes": used}

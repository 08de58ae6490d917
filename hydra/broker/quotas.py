"""Namespaces' quotas and jobs' ``max_concurrent`` at placement: which runs hold a place on a worker.

Two Redis sets per namespace, of run ids: ``hydra:ns:<ns>:queued`` (placed on a worker's
queue, not started) and ``hydra:ns:<ns>:running``. A run enters ``queued`` when the router
places it - in one Lua step that first checks the namespace's limits, so racing API
processes cannot overshoot them - moves to ``running`` when a worker claims it, and leaves
when its attempt ends. Sets, not counters: placing the same run twice, or ending it twice,
counts once.

A job with ``max_concurrent`` (``hydra.model.resources``) has a third set,
``hydra:jobslots:<job>``: its runs placed on workers, queued or running. The same Lua step
checks it and adds the run to it, so a job's limit holds against racing API processes, the
scheduler, retries and the controller alike, and - being in Redis, not in one process - across
a controller failover. Its run leaves it when its attempt ends, with the namespace's sets.

The router counts a placed run against its worker's load in the same step
(:meth:`NamespaceSlots.take` with ``load_on``: the load hash and the worker's load group, as
``Registry.add_load`` changes them), so a submission's place and load cost one round trip.

MongoDB stays the truth: the controller removes members whose runs ended or are no longer
placed (``hydra.control.sweeps.Sweeps.correct_quotas``), and refills the sets from MongoDB after Redis lost
them (``Failover.reconcile``).
"""

from __future__ import annotations

from hydra import names
from hydra.broker.redis import RedisBacked

_PLACE = """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 or redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then
  return 0
end
local queued = redis.call('SCARD', KEYS[1])
local running = redis.call('SCARD', KEYS[2])
local max_running = tonumber(ARGV[2])
local max_queued = tonumber(ARGV[3])
if max_running >= 0 and queued + running >= max_running then return -1 end
if max_queued >= 0 and queued >= max_queued then return -2 end
local max_job = tonumber(ARGV[5])
if max_job >= 0 and redis.call('SISMEMBER', KEYS[4], ARGV[1]) == 0 and redis.call('SCARD', KEYS[4]) >= max_job then
  return -3
end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[4])
if max_job >= 0 then
  redis.call('SADD', KEYS[4], ARGV[1])
  redis.call('SADD', KEYS[5], ARGV[6])
end
return 1
"""
#: :data:`_PLACE`, and when the run may be placed (or holds its place already) one more run
#: counted against worker ARGV[7]'s load: KEYS[6] the load hash, KEYS[7] the load groups
#: (``hydra.broker.registry``'s ``_CHANGE_LOAD``, "add" 1).
_PLACE_AND_LOAD = (
    "local function place()\n"
    + _PLACE
    + """end
local placed = place()
if placed >= 0 then
  local v = redis.call('HINCRBY', KEYS[6], ARGV[7], 1)
  if v < 0 then v = 0; redis.call('HSET', KEYS[6], ARGV[7], 0) end
  local group = redis.call('HGET', KEYS[7], ARGV[7])
  if group then redis.call('ZADD', group, v, ARGV[7]) end
end
return placed
"""
)


def _keys(namespace: str) -> tuple[str, str]:
    return names.quota_key(namespace, "queued"), names.quota_key(namespace, "running")


class NamespaceSlots(RedisBacked):
    def take(
        self,
        namespace: str,
        run_id: str,
        *,
        max_running: int | None,
        max_queued: int | None,
        job_id: str | None = None,
        max_concurrent: int | None = None,
        load_on: str | None = None,
    ) -> str | None:
        """Count ``run_id`` as queued in ``namespace`` (and, with ``max_concurrent``, among its
        job's runs) unless that breaks a limit; returns None when it may be placed, else why not.
        With ``load_on`` (a worker id), a run that may be placed is also counted against that
        worker's load, in the same step."""
        queued, running = _keys(namespace)
        limited = job_id is not None and max_concurrent is not None
        keys = [
            queued,
            running,
            names.QUOTA_NAMESPACES_KEY,
            names.job_slots_key(job_id or "-"),
            names.QUOTA_JOBS_KEY,
        ]
        args = [
            run_id,
            -1 if max_running is None else max_running,
            -1 if max_queued is None else max_queued,
            namespace,
            max_concurrent if limited else -1,
            job_id or "",
        ]
        if load_on is not None:
            script, keys, args = (
                self._script(_PLACE_AND_LOAD),
                [*keys, names.LOAD_KEY, names.LOAD_GROUPS_KEY],
                [*args, load_on],
            )
        else:
            script = self._script(_PLACE)
        answer = int(script(keys=keys, args=args, client=self.redis))
        if answer == -3:
            return f"job {job_id} has {max_concurrent} runs in flight (max_concurrent {max_concurrent})"
        if answer == -1:
            return f"namespace {namespace!r} has {max_running} runs in flight (max_running {max_running})"
        if answer == -2:
            return f"namespace {namespace!r} has {max_queued} runs waiting on workers (max_queued {max_queued})"
        return None

    def started(self, namespace: str, run_id: str) -> None:
        queued, running = _keys(namespace)
        pipe = self.redis.pipeline()
        pipe.srem(queued, run_id)
        pipe.sadd(running, run_id)
        pipe.execute()

    def released(self, namespace: str, run_id: str, job_id: str | None = None) -> None:
        """The run holds no place any more (it ended, or went back to pending)."""
        pipe = self.redis.pipeline()
        for key in _keys(namespace):
            pipe.srem(key, run_id)
        if job_id:
            pipe.srem(names.job_slots_key(job_id), run_id)
        pipe.execute()

    def held(self, namespace: str) -> tuple[set[str], set[str]]:
        """(queued, running) run ids of the namespace."""
        queued, running = _keys(namespace)
        pipe = self.redis.pipeline()
        pipe.smembers(queued)
        pipe.smembers(running)
        got = pipe.execute()
        return set(got[0]), set(got[1])

    def namespaces(self) -> list[str]:
        """Namespaces that may hold places (a superset: see :meth:`forget_if_empty`)."""
        return sorted(self.redis.smembers(names.QUOTA_NAMESPACES_KEY))

    def forget_if_empty(self, namespace: str) -> None:
        queued, running = self.held(namespace)
        if not queued and not running:
            self.redis.srem(names.QUOTA_NAMESPACES_KEY, namespace)

    def hold(self, namespace: str, run_id: str, *, running: bool, job_id: str | None = None) -> None:
        """Count a run MongoDB says is queued or running (refilling after a Redis loss; with
        ``job_id``, among its job's runs too)."""
        queued_key, running_key = _keys(namespace)
        pipe = self.redis.pipeline()
        pipe.sadd(running_key if running else queued_key, run_id)
        pipe.sadd(names.QUOTA_NAMESPACES_KEY, namespace)
        if job_id:
            pipe.sadd(names.job_slots_key(job_id), run_id)
            pipe.sadd(names.QUOTA_JOBS_KEY, job_id)
        pipe.execute()

    # -- jobs' max_concurrent places -------------------------------------------------------------
    def job_held(self, job_id: str) -> set[str]:
        """Run ids holding places of a job with max_concurrent."""
        return set(self.redis.smembers(names.job_slots_key(job_id)))

    def jobs(self) -> list[str]:
        """Jobs that may hold places (a superset: see :meth:`forget_job_if_empty`)."""
        return sorted(self.redis.smembers(names.QUOTA_JOBS_KEY))

    def job_released(self, job_id: str, run_id: str) -> None:
        self.redis.srem(names.job_slots_key(job_id), run_id)

    def forget_job_if_empty(self, job_id: str) -> None:
        if not self.job_held(job_id):
            self.redis.srem(names.QUOTA_JOBS_KEY, job_id)

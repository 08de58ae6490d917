"""A leader lease in Redis: one process at a time does the work that must not be doubled
(the controllers' housekeeping; the cron scheduler's ticks).

``SET key token NX PX ttl`` takes the lease; the holder renews it with a Lua
compare-and-expire, and releases it on exit with a compare-and-delete, so a process never
extends or drops a lease it lost. With an ``epoch_key``, each acquisition increments that
counter (a fencing token recorded with what the leader decides). A standby takes over at
most one TTL after the holder died.

The lease keeps the duplicate work away, not the correctness: every decision a leader takes
is also fenced in MongoDB (an attempt's end is a unique insert, a cron tick's run id is
derived from the tick), so even two leaders at once - a paused leader that wakes up after
its lease expired - cannot fail an attempt over twice or fire a tick twice.
"""

from __future__ import annotations

import secrets

import redis

from hydra.broker.redis import RedisBacked

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


class LeaderLease(RedisBacked):
    def __init__(
        self, key: str, *, identity: str, ttl: float, epoch_key: str | None = None, client: redis.Redis | None = None
    ):
        super().__init__(client)
        self.key, self.epoch_key = key, epoch_key
        self.ttl = ttl
        self.token = f"{identity}/{secrets.token_hex(6)}"
        self.epoch: int | None = None
        self.held = False

    def hold(self) -> bool:
        """Take or renew the lease; True while this process holds it. Raises
        BrokerUnavailable (and counts as not held) when Redis cannot be asked."""
        try:
            if self.held:
                self.held = bool(self.redis.eval(_RENEW, 1, self.key, self.token, int(self.ttl * 1000)))
            elif self.redis.set(self.key, self.token, nx=True, px=int(self.ttl * 1000)):
                self.held = True
                self.epoch = int(self.redis.incr(self.epoch_key)) if self.epoch_key else None
        except Exception:
            self.held = False
            raise
        if not self.held:
            self.epoch = None
        return self.held

    def free_or_ours(self) -> bool:
        """True unless another process holds the lease now (this one may have missed a renewal
        without anyone taking over). Raises BrokerUnavailable when Redis cannot be asked."""
        holder = self.redis.get(self.key)
        return holder is None or holder == self.token

    def release(self) -> None:
        """Give the lease up (if still ours); never raises, since it expires by itself."""
        if self.held:
            try:
                self.redis.eval(_RELEASE, 1, self.key, self.token)
            except Exception:  # noqa: BLE001 - Redis gone: the lease expires by itself
                pass
        self.held, self.epoch = False, None

"""A leader lease in Redis: one controller at a time does the work that must not be doubled.

``SET key token NX PX ttl`` takes the lease; the holder renews it every tick with a Lua
compare-and-expire, and releases it on exit with a compare-and-delete, so a controller
never extends or drops a lease it lost. Each acquisition increments ``hydra:controller:epoch``
(a fencing token recorded with what the leader decides). A standby takes over at most one
TTL plus one tick after the leader died.

The lease keeps the duplicate work away, not the correctness: every decision the leader
takes is also fenced in MongoDB (an attempt's end is a unique insert), so even two leaders
at once - a paused leader that wakes up after its lease expired - cannot fail an attempt
over twice.
"""
from __future__ import annotations

import secrets

import redis

from hydra import names

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


class LeaderLease:
    def __init__(self, client: redis.Redis, *, identity: str, ttl: float,
                 key: str = names.LEADER_KEY, epoch_key: str = names.LEADER_EPOCH_KEY):
        self.client = client
        self.key, self.epoch_key = key, epoch_key
        self.ttl_ms = int(ttl * 1000)
        self.token = f"{identity}/{secrets.token_hex(6)}"
        self.epoch: int | None = None
        self.held = False

    def hold(self) -> bool:
        """Take or renew the lease; True while this process holds it."""
        if self.held:
            self.held = bool(self.client.eval(_RENEW, 1, self.key, self.token, self.ttl_ms))
            if not self.held:
                self.epoch = None
            return self.held
        if self.client.set(self.key, self.token, nx=True, px=self.ttl_ms):
            self.held = True
            self.epoch = int(self.client.incr(self.epoch_key))
        return self.held

    def release(self) -> None:
        if self.held:
            self.client.eval(_RELEASE, 1, self.key, self.token)
        self.held, self.epoch = False, None

    def holder(self) -> str | None:
        return self.client.get(self.key)

"""Stop flags: ``hydra:stop:<run_id>`` asks the worker running a run to stop it.

Set by whoever ended an attempt elsewhere (the controller's ``lost``) or asked to cancel it,
read by the worker's watchdog (``hydra.celery.watchdog``) every 0.25 s. A fast path only:
the watchdog also reads the run's end fence in MongoDB, which covers a flushed Redis.
"""

from __future__ import annotations

from hydra import names
from hydra.broker.redis import RedisBacked

#: Seconds a flag lives (longer than any attempt still being looked for).
FLAG_TTL = 24 * 3600


class StopFlags(RedisBacked):
    def request(self, run_id: str, reason: str) -> None:
        self.redis.set(names.stop_key(run_id), reason, ex=FLAG_TTL)

    def reason(self, run_id: str) -> str | None:
        """Why the run was asked to stop, or None."""
        return self.redis.get(names.stop_key(run_id))

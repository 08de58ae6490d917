"""The change feed of cron schedules: which jobs' schedules changed, in order.

The API calls :meth:`ScheduleFeed.notify` after each change of a job (create, update,
delete, pause, resume); it bumps ``hydra:schedule:seq`` and records the job id in the sorted
set ``hydra:schedule:changes`` in one atomic step. The scheduler reads the ids past the last
sequence number it saw and re-reads only those jobs (``hydra.control.scheduler``).
"""

from __future__ import annotations

from hydra import names
from hydra.broker.redis import RedisBacked

#: How many sequence numbers of changes Redis keeps; a scheduler further behind reloads all.
KEEP_CHANGES = 100_000

_NOTIFY = """
local seq = redis.call('INCR', KEYS[1])
redis.call('ZADD', KEYS[2], seq, ARGV[1])
if seq % 1000 == 0 then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', seq - tonumber(ARGV[2])) end
return seq
"""


class ScheduleFeed(RedisBacked):
    def notify(self, job_id: str) -> int:
        """Say that ``job_id``'s schedule may have changed; returns the change's number."""
        return int(
            self.redis.eval(_NOTIFY, 2, names.SCHEDULE_SEQ_KEY, names.SCHEDULE_CHANGES_KEY, job_id, KEEP_CHANGES)
        )

    def current(self) -> int:
        """The number of the latest change (0 when Redis holds none)."""
        return int(self.redis.get(names.SCHEDULE_SEQ_KEY) or 0)

    def changed(self, after: int, upto: int) -> list[str]:
        """Job ids changed after change ``after``, up to ``upto``."""
        return list(self.redis.zrangebyscore(names.SCHEDULE_CHANGES_KEY, f"({after}", upto))

"""What the console's charts draw, limited to what the caller may see, and bounded.

* runs per minute by outcome, and the run-duration distribution, over a window of at most a
  day (``hydra.broker.series``: read from per-minute counters, never from the history);
* queue depth per worker now (the messages waiting in each visible worker's queue, and in
  ``hydra.pending`` for a caller who may read every namespace).
"""

from __future__ import annotations

import math
import time

from hydra import names
from hydra.broker import series
from hydra.broker.metrics import DURATION_BUCKETS, queue_depths
from hydra.broker.redis import get_redis, translated
from hydra.control.access import Reader
from hydra.store.workers import WorkerView

#: The windows a chart offers (minutes).
WINDOWS = (15, 60, 360, 1440)


def runs(reader: Reader, minutes: int, now: float | None = None) -> dict:
    """Ended attempts per bucket and status, and how long those that ran took, over the last ``minutes``."""
    window = series.read(reader.actor.visible(), minutes=minutes, now=time.time() if now is None else now)
    labels = [series.bound_label(b) for b in DURATION_BUCKETS]
    return {
        "minutes": min(max(1, int(minutes)), series.MAX_WINDOW),
        "step": window.step,
        "starts": window.starts,
        "by_status": dict(sorted(window.by_status.items())),
        "durations": [
            {"le": label, "upper": None if math.isinf(b) else b, "count": window.durations.get(label, 0)}
            for label, b in zip(labels, DURATION_BUCKETS, strict=True)
        ],
    }


def depths(reader: Reader, workers: list[WorkerView] | None = None) -> list[dict]:
    """Messages waiting per visible worker queue (and ``hydra.pending`` for a caller who sees
    everything); ``workers``: the visible workers, when the caller has read them already."""
    workers = reader.all_workers() if workers is None else workers
    queues = {w.queue or names.worker_queue(w.id): w.id for w in workers}
    if reader.actor.sees_everything:
        queues[names.PENDING_QUEUE] = "(pending)"
    with translated():
        found = queue_depths(list(queues), get_redis())
    return [{"worker": wid, "queue": queue, "depth": found[queue]} for queue, wid in queues.items()]

"""The baseline for ``make bench``: the same command through a bare Celery task.

Same Redis server as Hydra (its own database numbers), same JSON serializer, same
at-least-once settings (acks late, prefetch 1), a Redis result backend; no routing, no
MongoDB, no events. Started by bench/run.py as ``celery -A bench.bare worker``.
"""

import os
import subprocess
import time

from celery import Celery

app = Celery("bare", broker=os.environ["BARE_BROKER_URL"], backend=os.environ["BARE_RESULT_URL"])
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    result_expires=3600,
)


@app.task(name="bare.run")
def run(command: str) -> dict:
    started = time.time()
    done = subprocess.run(["sh", "-c", command], capture_output=True, timeout=60)
    return {
        "started": started,
        "finished": time.time(),
        "returncode": done.returncode,
        "stdout": done.stdout.decode(errors="replace"),
    }

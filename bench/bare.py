"""The peers of ``make bench``: the same command through a plain Celery task.

Same Redis server as Hydra (their own database numbers), same JSON serializer, same
at-least-once settings (acks late, prefetch 1); no routing, no events. The result backend
is what tells the two peers apart:

* **bare Celery**: the Redis result backend (``BARE_RESULT_URL=redis://...``);
* **Celery with its MongoDB result backend** on the same MongoDB server as Hydra
  (``BARE_RESULT_URL=mongodb://.../<the stack's database>``, collection ``celery_taskmeta``): what a user picks for durable results.

Started by bench/run.py as ``celery -A bench.bare worker`` with those variables; the bench
process makes its own clients with :func:`make_app`.
"""

import os
import subprocess
import time

from celery import Celery


def make_app(broker: str, backend: str) -> Celery:
    app = Celery(f"bare-{backend.split(':', 1)[0]}", broker=broker, backend=backend)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        result_expires=3600,
        mongodb_backend_settings={"taskmeta_collection": "celery_taskmeta"},
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

    return app


if "BARE_BROKER_URL" in os.environ:  # a peer's worker (`celery -A bench.bare worker`)
    app = make_app(os.environ["BARE_BROKER_URL"], os.environ["BARE_RESULT_URL"])

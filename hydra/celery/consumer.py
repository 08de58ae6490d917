"""The worker's consumer: a message it cannot decode or does not know is recorded, not lost.

Celery's consumer logs such a message and drops it (acknowledges or rejects it). Hydra's
(``worker_consumer`` in ``hydra.celery.config``) first records it through ``RunStore.refuse``: a
message whose run Hydra recorded gets the refusal noted on that run (which the controller's
sweep then publishes again or ends, see ``Controller.revive_vanished``); any other one becomes
a ``dead_letter`` run with the reason - visible at ``GET /runs/<id>`` under the message's id -
and a log line (``run.undecodable``).
"""

from __future__ import annotations

import logging

from celery.worker.consumer import Consumer

from hydra.errors import Unavailable
from hydra.store.runs import RunStore

log = logging.getLogger(__name__)


def record_bad_message(message, reason: str, by: str) -> str | None:
    """Record a message nobody will run; never raises (the consumer must go on)."""
    headers = getattr(message, "headers", None)
    headers = headers if isinstance(headers, dict) else {}
    run_id = headers.get("id") if isinstance(headers.get("id"), str) else None
    try:
        recorded = RunStore().refuse(run_id, reason[:2000], by=by, dead_letter=True)
    except Unavailable as exc:
        log.error("could not record a bad message (%s): %s", reason, exc)
        return None
    except Exception:
        log.exception("could not record a bad message (%s)", reason)
        return None
    info = getattr(message, "delivery_info", None) or {}
    log.warning(
        "bad message dead-lettered: %s",
        reason,
        extra={
            "event": "run.undecodable",
            "run_id": recorded,
            "worker": by,
            "reason": reason,
            "queue": info.get("routing_key") if isinstance(info, dict) else None,
        },
    )
    return recorded


class HydraConsumer(Consumer):
    def on_decode_error(self, message, exc):
        record_bad_message(message, f"undecodable message ({message.content_type}): {exc}", self.hostname)
        super().on_decode_error(message, exc)

    def on_invalid_task(self, body, message, exc):
        record_bad_message(message, f"invalid message ({message.content_type}): {exc}", self.hostname)
        super().on_invalid_task(body, message, exc)

    def on_unknown_task(self, body, message, exc):
        headers = message.headers if isinstance(message.headers, dict) else {}
        record_bad_message(message, f"unknown task {str(headers.get('task'))[:100]!r}", self.hostname)
        super().on_unknown_task(body, message, exc)

    def on_unknown_message(self, body, message):
        record_bad_message(message, "a message that is no Celery task", self.hostname)
        super().on_unknown_message(body, message)

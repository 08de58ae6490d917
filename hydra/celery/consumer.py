"""The worker's consumer: a message it cannot decode or does not know is recorded, not lost.

Celery's consumer logs such a message and drops it (acknowledges or rejects it). Hydra's
(``worker_consumer`` in ``celeryconfig``) first records it through ``RunStore.refuse``: a
message whose run Hydra recorded gets the refusal noted on that run (which the controller's
sweep then publishes again or ends, see ``hydra.control.sweeps.Sweeps.revive_vanished``); any other one becomes
a ``dead_letter`` run with the reason - visible at ``GET /runs/<id>`` under the message's id -
and a log line (``run.undecodable``).

Before Celery's own handler of task messages runs, :meth:`HydraConsumer.create_task_handler`
checks what that handler reads without guarding it (``hydra.celery.protocol``) and hands a
message that fails to the matching hook of Celery's: a body that cannot be decoded (among
them the stand-ins ``hydra.broker.envelope`` makes of envelopes kombu cannot read) to
``on_decode_error``, a message without a task name to ``on_unknown_message``, malformed
headers or body to ``on_invalid_task``. Each records and acknowledges or rejects it, and
the worker goes on consuming.

Task events go out together: Celery's dispatcher buffers a worker's ``task-*`` events and
publishes the buffer as one ``task.multi`` message (a list, which Flower's receiver reads
event by event), but Celery flushes it on the loop's next turn, so each event became a
``PUBLISH`` of its own - three per job, about a third of the worker main process's CPU. Here
the flush comes :data:`EVENT_BATCH_SECONDS` after the first buffered event (Celery's own
``buffer_limit`` of 24 events still flushes a full buffer at once), so the events of a burst
share their ``PUBLISH``; each event keeps the time it happened (``timestamp``, set when it is
buffered). What is still buffered when the consumer stops or shuts down is sent then; when
the broker connection breaks, it is sent first on the next one.

Only ``hydra.run_command`` is known here: Celery registers its built-in tasks on every app
(``celery.group``, ``celery.chord``, ``celery.chord_unlock``, ``celery.chain``, ``celery.map``,
``celery.starmap``, ``celery.chunks``, ``celery.accumulate``, ``celery.backend_cleanup``),
and a message naming one would apply whatever signatures it carries - Hydra's signature
check is the task's own. The consumer keeps no strategy for them, so they are refused as
unknown tasks before anything of them runs.
"""

from __future__ import annotations

import logging
import threading
import time

from celery.exceptions import InvalidTaskError
from celery.worker.consumer import Consumer
from kombu.exceptions import ContentDisallowed

from hydra import names
from hydra.celery import protocol
from hydra.errors import Unavailable
from hydra.store.runs import RunStore

log = logging.getLogger(__name__)

#: How long a buffered task event waits for others to share its ``PUBLISH`` (seconds).
EVENT_BATCH_SECONDS = 0.25
#: A flush scheduled this long past its time is taken as lost (the timer was reset by a
#: reconnect) and scheduled again.
EVENT_FLUSH_LOST = 2.0


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
    #: When the flush of the buffered task events is due (monotonic clock), or None.
    _events_due: float | None = None

    def on_send_event_buffered(self):
        """Flush the task-event buffer :data:`EVENT_BATCH_SECONDS` from the first event in it,
        rather than on the loop's next turn (Celery's own: one ``PUBLISH`` per event)."""
        hub = self.hub
        if hub is None or threading.get_ident() != getattr(hub, "_loop_thread", None):
            return super().on_send_event_buffered()  # another thread: Celery's thread-safe call_soon
        now = time.monotonic()
        due = self._events_due
        if due is not None and now < due + EVENT_FLUSH_LOST:
            return None  # a flush is on its way and takes this event too
        self._events_due = now + EVENT_BATCH_SECONDS
        hub.call_later(EVENT_BATCH_SECONDS, self._flush_buffered_events)
        return None

    def _flush_buffered_events(self):
        self._events_due = None
        self._flush_events()

    def on_close(self):
        """The broker connection broke: what the window holds moves to the dispatcher's
        outbound buffer, which Celery's ``Events`` step hands to the next connection's
        dispatcher and sends first (Celery's own flush on the next turn would have failed
        into that buffer too). No I/O here: the connection is gone."""
        dispatcher = self.event_dispatcher
        if dispatcher is not None:
            with dispatcher.mutex:
                for group, events in dispatcher._group_buffer.items():
                    if events:
                        dispatcher._outbound_buffer.append((list(events), f"{group}.multi"))
                        events.clear()
        self._events_due = None
        super().on_close()

    def stop(self):
        self._flush_pending_events()
        super().stop()

    def shutdown(self):
        self._flush_pending_events()
        super().shutdown()

    def _flush_pending_events(self):
        """Send what the batch window still holds (a stop, a warm shutdown)."""
        self._events_due = None
        try:
            self._flush_events()
        except Exception:  # the broker may be gone: monitoring events are not worth a failed stop
            log.debug("task events not flushed at stop", exc_info=True)

    def create_task_handler(self, *args, **kwargs):
        """Celery's handler of task messages, behind the checks of ``hydra.celery.protocol``."""
        handle = super().create_task_handler(*args, **kwargs)

        def on_task_received(message):
            try:
                body = message.decode()
            except ContentDisallowed as exc:
                return self.on_invalid_task(None, message, exc)
            except Exception as exc:  # noqa: BLE001 - kombu's decoders raise anything (zlib, json, ...)
                return self.on_decode_error(message, exc)
            headers = message.headers
            if "task" not in headers:  # protocol 1, or no task at all: Hydra sends protocol 2 only
                return self.on_unknown_message(body, message)
            reason = protocol.header_problem(headers) or protocol.body_problem(body)
            if reason is not None:
                return self.on_invalid_task(body, message, InvalidTaskError(reason))
            return handle(message)

        return on_task_received

    def update_strategies(self):
        super().update_strategies()
        for name in [name for name in self.strategies if name != names.TASK_RUN_COMMAND]:
            del self.strategies[name]  # Celery's built-ins: see the module docstring

    def on_decode_error(self, message, exc):
        record_bad_message(message, f"undecodable message ({message.content_type}): {exc}", self.hostname)
        super().on_decode_error(message, exc)

    def on_invalid_task(self, body, message, exc):
        record_bad_message(message, f"invalid message ({message.content_type}): {exc}", self.hostname)
        super().on_invalid_task(body, message, exc)

    def on_unknown_task(self, body, message, exc):
        headers = message.headers if isinstance(message.headers, dict) else {}
        task = str(headers.get("task"))[:100]
        record_bad_message(message, f"refused: only {names.TASK_RUN_COMMAND} runs here, not {task!r}", self.hostname)
        super().on_unknown_task(body, message, exc)

    def on_unknown_message(self, body, message):
        record_bad_message(message, "a message that is no Celery task", self.hostname)
        super().on_unknown_message(body, message)

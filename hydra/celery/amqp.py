"""Celery's AMQP (how a task message and its ``task-sent`` event are made), with the sent
event naming the attempt as the worker's events do.

Celery names a ``task-sent`` event by the real task name (``hydra.run_command``) even when
the message has a ``shadow`` (``hydra: nightly-build #2``, ``hydra.dispatch.steps.shadow_name``),
while the worker's ``task-received`` event carries the shadow. Flower (``celery.events.state``)
keeps the name of whichever of the two it merged last, and nothing orders them: the
publisher's event and the worker's travel separately, so a ``task-sent`` that arrived after
``task-received`` (or alone: a run cancelled before a worker took it) showed the bare task
name. Here the sent event carries the shadow too. The message itself - its ``task`` header,
which routing, signing and the worker's checks read - is left as Celery made it.
"""

from __future__ import annotations

from celery.app.amqp import AMQP


class HydraAMQP(AMQP):
    def as_task_v2(self, *args, **kwargs):
        message = super().as_task_v2(*args, **kwargs)
        shadow = message.headers.get("shadow")
        if shadow and message.sent_event is not None:
            message.sent_event["name"] = shadow
        return message

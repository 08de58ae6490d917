"""Flower shows an attempt's shadow name whatever order its events arrive in.

Flower keeps its tasks in ``celery.events.state.State``, which takes ``name`` from the
``task-sent`` and ``task-received`` events - from whichever it merged last. The worker's
``task-received`` names the shadow (Celery's ``Request``); Celery's own ``task-sent`` named the
real task, so a sent event arriving after the received one showed ``hydra.run_command``.
"""

from __future__ import annotations

import itertools
import json
import time

from celery.events.state import State
from celery.worker.request import Request
from kombu import Message

from hydra import names
from hydra.celery.app import app, run_command

SHADOW = "hydra: nightly build #2"


def _message():
    return app.amqp.create_task_message(
        "run-1",
        names.TASK_RUN_COMMAND,
        (),
        {"job_id": "j", "name": "nightly build", "attempt": 2},
        create_sent_event=True,
        shadow=SHADOW,
        kwargsrepr="{'name': 'nightly build'}",
    )


def test_the_sent_event_names_the_shadow_and_the_message_keeps_its_task():
    message = _message()
    assert message.sent_event["name"] == SHADOW
    assert message.headers["task"] == names.TASK_RUN_COMMAND  # what routing, signing and the worker read
    assert message.headers["shadow"] == SHADOW


def _received_event(message) -> dict:
    """The ``task-received`` event as the worker's strategy sends it (``name=req.name``)."""
    body = json.dumps(message.body)
    request = Request(
        Message(body=body, headers=message.headers, content_type="application/json", content_encoding="utf-8"),
        app=app,
        task=run_command,
    )
    return {"type": "task-received", "uuid": request.id, "name": request.name, "hostname": "w1"}


def test_flowers_state_shows_the_shadow_in_either_order():
    message = _message()
    sent = {"type": "task-sent", "hostname": "api-host", **message.sent_event}
    received = _received_event(message)
    assert received["name"] == SHADOW
    started = {"type": "task-started", "uuid": "run-1", "hostname": "w1"}
    succeeded = {"type": "task-succeeded", "uuid": "run-1", "hostname": "w1", "runtime": 0.1}
    for order in itertools.permutations([sent, received, started, succeeded]):
        state = State()
        for clock, event in enumerate(order):
            state.event({**event, "timestamp": time.time(), "local_received": time.time(), "clock": clock})
        assert state.tasks["run-1"].name == SHADOW, [e["type"] for e in order]

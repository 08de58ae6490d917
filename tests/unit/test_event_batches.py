"""A worker's task events go out together (``hydra.celery.consumer``): Celery's dispatcher
buffers them, and Hydra's consumer flushes the buffer once per batch window instead of on
the loop's next turn (one ``PUBLISH`` per event). Real parts: Celery's ``EventDispatcher``
and kombu's hub and timer, over kombu's in-memory transport; Flower's state
(``celery.events.state.State``) reads what was published."""

from __future__ import annotations

import threading
import time

import pytest
from celery.events.state import State
from celery.worker.consumer.events import Events
from kombu import Connection, Exchange, Queue
from kombu.asynchronous import Hub
from vine import promise

from hydra.celery import consumer as consumer_module
from hydra.celery.app import app
from hydra.celery.consumer import HydraConsumer

NODE = "unit@batch"


class Harness(HydraConsumer):
    """Hydra's consumer with only what its event hooks read: a hub whose loop runs in this
    thread, and Celery's task-event dispatcher made by Celery's ``Events`` bootstep (each
    dispatcher on a connection of its own, as ``connection_for_write`` gives)."""

    def __init__(self):  # no Celery start-up
        self.hub = Hub()
        self.hub._loop_thread = threading.get_ident()
        self.app, self.hostname, self.amqheartbeat = app, NODE, None
        self.controller, self.task_buckets = None, {}  # what Celery's on_close reads
        self._flush_events_promise = promise(self._flush_events)
        self.events_step = Events(self)  # Celery's bootstep: the dispatcher as a worker has it
        self.events_step.start(self)
        self.blueprint = None  # stop() and shutdown() hand over to Celery's: see below

    def connection_for_write(self, heartbeat=None):  # what Celery's Events step asks for: a new one
        return Connection("memory://")

    def fire_due(self):
        """The loop's turn: the timers that are due."""
        self.hub.fire_timers(max_timers=100)


@pytest.fixture
def events():
    """(consumer, a function returning the task-event messages published since last asked)."""
    with Connection("memory://") as reader:
        queue = Queue("flower-like", Exchange("celeryev", type="topic"), routing_key="task.#", channel=reader)
        queue.declare()
        consumer = Harness()

        def published():
            bodies = []
            while (message := queue.get(no_ack=True)) is not None:
                bodies.append(message.decode())
            return bodies

        yield consumer, published


def send_job_events(consumer, uuid: str):
    send = consumer.event_dispatcher.send
    send("task-received", uuid=uuid, name=f"hydra: {uuid} #1", args="()", kwargs="{}")
    send("task-started", uuid=uuid)
    send("task-succeeded", uuid=uuid, result="{}", runtime=0.01)


def test_a_jobs_three_events_go_out_as_one_message_after_the_window(events, monkeypatch):
    consumer, published = events
    monkeypatch.setattr(consumer_module, "EVENT_BATCH_SECONDS", 0.05)
    send_job_events(consumer, "run-1")
    send_job_events(consumer, "run-2")
    consumer.fire_due()
    assert published() == []  # not on the loop's next turn, as Celery would
    time.sleep(0.06)
    consumer.fire_due()
    (batch,) = published()
    assert [(e["type"], e["uuid"]) for e in batch] == [
        (kind, run) for run in ("run-1", "run-2") for kind in ("task-received", "task-started", "task-succeeded")
    ]
    stamps = [e["timestamp"] for e in batch]
    assert stamps == sorted(stamps) and stamps[-1] - stamps[0] < 0.05  # when each happened, not when it was sent
    # The next event opens a new window.
    send_job_events(consumer, "run-3")
    time.sleep(0.06)
    consumer.fire_due()
    (batch,) = published()
    assert {e["uuid"] for e in batch} == {"run-3"}


def test_flowers_state_reads_a_batch_event_by_event(events, monkeypatch):
    consumer, published = events
    monkeypatch.setattr(consumer_module, "EVENT_BATCH_SECONDS", 0.0)
    send_job_events(consumer, "run-1")
    consumer.fire_due()
    state = State()
    receiver = app.events.Receiver(consumer.event_dispatcher.connection, handlers={"*": state.event})
    for body in published():
        receiver._receive(body, None)  # what Flower's receiver does with each message
    task = state.tasks["run-1"]
    assert task.name == "hydra: run-1 #1" and task.state == "SUCCESS" and task.worker.hostname == NODE


def test_a_full_buffer_goes_out_at_once(events):
    consumer, published = events
    for i in range(consumer.event_dispatcher.buffer_limit // 3):
        send_job_events(consumer, f"run-{i}")
    assert len(published()) == 1  # Celery's buffer_limit, before any window ends


def test_stop_and_shutdown_send_what_the_window_holds(events, monkeypatch):
    consumer, published = events
    stopped = []
    monkeypatch.setattr(consumer_module.Consumer, "stop", lambda self: stopped.append("stop"))
    monkeypatch.setattr(consumer_module.Consumer, "shutdown", lambda self: stopped.append("shutdown"))
    send_job_events(consumer, "run-1")
    consumer.stop()
    assert [len(batch) for batch in published()] == [3] and stopped == ["stop"]
    send_job_events(consumer, "run-2")
    consumer.shutdown()
    assert [len(batch) for batch in published()] == [3] and stopped == ["stop", "shutdown"]


def test_a_broken_connection_hands_the_window_to_the_next_dispatcher(events, monkeypatch):
    consumer, published = events
    monkeypatch.setattr(consumer_module, "EVENT_BATCH_SECONDS", 60.0)  # the window would not end in time
    send_job_events(consumer, "run-1")
    before = consumer.event_dispatcher
    consumer.on_close()  # Celery's consumer, as the connection broke (no I/O: it is gone)
    assert published() == [] and consumer._events_due is None
    consumer.events_step.start(consumer)  # Celery's reconnect: a new dispatcher, the old one's outbound buffer first
    assert consumer.event_dispatcher is not before
    (batch,) = published()
    assert [e["type"] for e in batch] == ["task-received", "task-started", "task-succeeded"]


def test_a_flush_lost_with_its_timer_is_scheduled_again(events, monkeypatch):
    consumer, published = events
    monkeypatch.setattr(consumer_module, "EVENT_BATCH_SECONDS", 0.0)
    send_job_events(consumer, "run-1")
    consumer.hub.timer.clear()  # a reconnect reset the timers before the flush fired
    consumer.fire_due()
    assert published() == []
    consumer._events_due = time.monotonic() - consumer_module.EVENT_FLUSH_LOST - 1  # long past its time
    send_job_events(consumer, "run-2")
    consumer.fire_due()
    (batch,) = published()
    assert [e["uuid"] for e in batch] == ["run-1"] * 3 + ["run-2"] * 3


def test_an_event_from_another_thread_takes_celerys_thread_safe_path(events):
    consumer, _published = events
    thread = threading.Thread(target=send_job_events, args=(consumer, "run-1"))
    thread.start()
    thread.join()
    assert consumer._flush_events_promise in consumer.hub._ready  # Celery's call_soon
    assert consumer._events_due is None and not consumer.hub.timer.queue

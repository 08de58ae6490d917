"""Reading messages off the broker: no envelope stops a consumer (hydra.broker.envelope, the
checks of hydra.celery.protocol in front of Celery's task handler).

Each named shape, and a property-based fuzz of random bytes and mutated envelopes, goes
through the path a worker takes: the transport reads the item (``envelope.read``), kombu
builds its Message, and Celery's own task handler (behind Hydra's checks) hands it to its
default strategy, which builds Celery's Request, or to one of Celery's hooks. Nothing may
raise; a malformed message must reach a hook, naming its run id when it had one. The
integration tests (tests/integration/test_poison.py) push the same messages into real
queues of a real worker and controller.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import random
from types import SimpleNamespace

import fakeredis
import pytest
from celery.utils.collections import LimitedSet
from celery.worker.consumer import Consumer
from celery.worker.strategy import default as default_strategy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kombu import Connection
from kombu.exceptions import DecodeError
from kombu.transport import redis as kombu_redis
from kombu.utils.json import dumps

from hydra import names
from hydra.broker import envelope
from hydra.broker.redis import CLIENT_OPTIONS
from hydra.broker.sent import SentIndex
from hydra.broker.transport import Channel
from hydra.celery.app import app
from hydra.celery.consumer import HydraConsumer
from hydra.celery.protocol import body_problem, header_problem
from tests import poison

QUEUE = names.worker_queue("unit@test")


@pytest.fixture(scope="module")
def channel():
    """A virtual channel (kombu's in-memory transport): what ``envelope.read`` needs of one."""
    with Connection("memory://") as connection:
        yield connection.default_channel


class Harness(HydraConsumer):
    """Hydra's consumer with Celery's task handler and default strategy, and only what those
    read of a running consumer; its hooks note which was called instead of recording (which
    needs MongoDB; the integration tests see the records)."""

    def __init__(self):  # no Celery start-up
        self.hooks: list[tuple[str, object]] = []
        self.requests: list = []
        self.hostname = "unit@test"
        self.connection_errors = ()
        self.event_dispatcher = None
        self.timer = SimpleNamespace(call_at=lambda *a, **k: self.hooks.append(("eta", None)))
        self.apply_eta_task = self.disable_rate_limits = True
        self.task_buckets = {}
        self.on_task_request = self.requests.append
        self._limit_task = self._limit_post_eta = None
        self.pool = SimpleNamespace(apply_async=None)
        self.controller = SimpleNamespace(state=SimpleNamespace(revoked=LimitedSet()))
        self.on_task_message = set()
        self.restart_count = 0
        self._maximum_prefetch_restored = True
        self.strategies = {names.TASK_RUN_COMMAND: default_strategy(app.tasks[names.TASK_RUN_COMMAND], app, self)}

    def call_soon_ack(self, *args, **kwargs):
        pass

    # Celery's own hooks (they log the message, then acknowledge or reject it), without
    # Hydra's recording in front of them; on_unknown_task's also marks the task failed in
    # the result backend, which needs MongoDB.
    def on_decode_error(self, message, exc):
        self.hooks.append(("on_decode_error", exc))
        Consumer.on_decode_error(self, message, exc)

    def on_invalid_task(self, body, message, exc):
        self.hooks.append(("on_invalid_task", exc))
        Consumer.on_invalid_task(self, body, message, exc)

    def on_unknown_task(self, body, message, exc):
        self.hooks.append(("on_unknown_task", exc))

    def on_unknown_message(self, body, message):
        self.hooks.append(("on_unknown_message", None))
        Consumer.on_unknown_message(self, body, message)


def deliver(channel, raw: bytes):
    """What becomes of ``raw`` popped from a worker's queue: (the Message kombu delivered,
    the hook Celery's consumer called or None, Celery's Request when it took the message)."""
    item = envelope.read(channel, raw, QUEUE)
    json.loads(dumps([item, "", QUEUE]))  # kombu keeps it thus while unacknowledged
    message = envelope.Message(item, channel=channel)
    message.accept = {"application/json"}
    channel.qos.append(message, message.delivery_tag)  # as kombu's basic_consume does
    consumer = Harness()
    consumer.create_task_handler()(message)
    hook = consumer.hooks[0][0] if consumer.hooks else None
    request = consumer.requests[0] if consumer.requests else None
    assert (hook is None) == (request is not None), consumer.hooks
    if hook in ("on_decode_error", "on_invalid_task", "on_unknown_message"):
        assert message.acknowledged  # taken off the queue
    return message, hook, request


def test_a_genuine_message_goes_through_unchanged(channel):
    raw = json.dumps(poison.genuine_envelope()).encode()
    assert envelope.read(channel, raw, QUEUE) == json.loads(raw)
    _message, hook, request = deliver(channel, raw)
    assert hook is None and request.id == poison.GENUINE_ID and request.kwargs["command"] == "echo hello"


@pytest.mark.parametrize("shape", list(poison.SHAPES))
def test_each_named_shape_reaches_a_celery_hook_with_its_run_id(channel, shape):
    raw = poison.SHAPES[shape](poison.genuine_envelope())
    message, hook, _request = deliver(channel, raw)
    assert hook is not None
    named = poison.named_id(raw)
    if envelope.malformed(message):
        assert hook == "on_decode_error" and message.headers.get("id") == named
    elif named is not None:
        assert message.headers["id"] == named  # the consumer records the refusal under it


def test_a_stand_in_says_why_and_stays_one_when_restored(channel):
    item = envelope.read(channel, b"not-json-at-all", QUEUE)
    assert "not JSON" in envelope.reason_of(item)
    again = envelope.read(channel, dumps(item).encode(), QUEUE)  # as kombu restores it after a crash
    assert again == item
    with pytest.raises(DecodeError, match="malformed envelope: not JSON"):
        envelope.Message(again, channel=channel).decode()


def test_protocol_accepts_what_celery_and_hydra_send():
    genuine = poison.genuine_envelope()
    assert header_problem(genuine["headers"]) is None
    assert (
        body_problem([[], {"command": "x"}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}])
        is None
    )
    assert header_problem({**genuine["headers"], "eta": "2026-01-01T00:00:00+00:00", "timelimit": [10, 20.5]}) is None


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"task": ["x"]}, "headers.task"),
        ({"id": 5}, "headers.id"),
        ({"expires": {}}, "headers.expires"),
        ({"eta": 0}, "headers.eta"),
        ({"timelimit": [1, float("inf")]}, "headers.timelimit"),
        ({"timelimit": [None]}, "headers.timelimit"),
        ({"retries": True}, "headers.retries"),
        ({"hydra_lost": "x"}, "headers.hydra_lost"),
        ({"shadow": {}}, "headers.shadow"),
        ({"ignore_result": "no"}, "headers.ignore_result"),
        ({"stamps": []}, "headers.stamps"),
    ],
)
def test_protocol_names_the_header_that_is_wrong(change, reason):
    assert reason in header_problem({**poison.genuine_envelope()["headers"], **change})


def test_the_channel_reads_where_kombu_5_7_did():
    """The transport's channel carries kombu 5.7's ``_brpop_read``, ``_get`` and ``_receive_one``
    with the envelope read by ``envelope.read``: when kombu's change, read them again."""
    digests = {
        name: hashlib.sha256(inspect.getsource(getattr(kombu_redis.Channel, name)).encode()).hexdigest()[:16]
        for name in ("_brpop_read", "_get", "_receive_one", "_deliver_fanout_message")
    }
    assert digests == KOMBU_METHODS, digests
    for name in digests:
        assert "envelope." in inspect.getsource(getattr(Channel, name))


KOMBU_METHODS = {
    "_brpop_read": "c42518699709f2df",
    "_get": "be26a9f1eb4cf8da",
    "_receive_one": "d59b8751d89757dc",
    "_deliver_fanout_message": "06662335a70a5b62",
}


# -- fuzz ---------------------------------------------------------------------------------

# No digits in text: a mutation must not make a valid date (an ETA would hold the message,
# an expiry in the past would revoke it: both are Celery's to do, with a message it can read).
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Nd",)), max_size=20)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
FUZZ = settings(max_examples=300, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=200))
def test_random_bytes_never_stop_the_consumer(channel, raw):
    _message, hook, _request = deliver(channel, raw)
    assert hook is not None


@FUZZ
@given(st.integers(0, 2**32), JSON)
def test_mutated_envelopes_never_stop_the_consumer(channel, seed, value):
    """A genuine envelope with fields replaced (by the fuzzer's odd values, or by any JSON
    value hypothesis draws), removed, or damaged: the consumer takes it or hands it to a
    hook, and a stand-in keeps the run id the message named."""
    raw = poison.mutated(random.Random(seed), poison.genuine_envelope(), [*poison.ODD_VALUES, value])
    message, _hook, _request = deliver(channel, raw)
    if envelope.malformed(message):
        assert message.headers.get("id") == poison.named_id(raw)


def test_an_item_that_is_not_utf8_does_not_stop_a_scan_of_its_queue():
    """The controller looks for a run's message in its queue (``SentIndex.holds``) with
    Hydra's own client, which reads what anyone pushed there."""
    client = fakeredis.FakeRedis(**{key: CLIENT_OPTIONS[key] for key in ("decode_responses", "encoding_errors")})
    client.lpush(QUEUE, b"\xff\xfe" + poison.GENUINE_ID.encode(), b"\x84not utf-8")
    assert SentIndex(client).holds(QUEUE, poison.GENUINE_ID)
    assert not SentIndex(client).holds(QUEUE, "another-run")


@pytest.mark.parametrize(
    "entry, restorable",
    [
        (None, True),  # gone meanwhile: kombu does nothing
        (dumps([poison.genuine_envelope(), "", QUEUE]), True),
        (b"not-json-at-all", False),
        ("[1, 2]", False),
        ('"x"', False),
        ("[1, 2, 3]", False),
    ],
)
def test_an_unacked_entry_is_restored_only_when_it_is_message_exchange_and_routing_key(entry, restorable):
    assert (envelope.unrestorable(entry) is None) == restorable

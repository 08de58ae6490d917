"""hydra.execution.live.ChunkWriter with an in-memory sink: numbering, flushing, the cap, retries."""

from __future__ import annotations

import threading
import time

import pytest
from pymongo.errors import ConnectionFailure

from hydra.execution.live import ChunkWriter
from hydrastack.waiting import wait_until


class Sink:
    """Stores records by _id like OutputStore would (as their documents); can be told to fail."""

    def __init__(self):
        self.docs: dict[str, dict] = {}
        self.failures = 0
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self, records):
        with self.lock:
            self.calls += 1
            if self.failures:
                self.failures -= 1
                raise ConnectionFailure("down")
            for doc in (record.to_doc() for record in records):
                assert doc["_id"] not in self.docs, "a chunk was stored twice"
                self.docs[doc["_id"]] = doc

    def chunks(self):
        return [d for k, d in sorted(self.docs.items()) if not k.endswith("/eof")]

    def text(self, stream=None):
        return "".join(d["text"] for d in self.chunks() if stream in (None, d["stream"]))


def test_chunks_are_numbered_in_order_and_eof_counts_everything():
    sink = Sink()
    with ChunkWriter("r1", limit=1000, interval=0.05, insert=sink) as writer:
        writer.write("stdout", b"one\n")
        time.sleep(0.2)
        writer.write("stderr", b"err\n")
        writer.write("stdout", b"two\n")
    chunks = sink.chunks()
    assert [c["_id"] for c in chunks] == [f"r1/{i:08d}" for i in range(len(chunks))]
    assert [c["seq"] for c in chunks] == list(range(len(chunks)))
    assert sink.text("stdout") == "one\ntwo\n" and sink.text("stderr") == "err\n"
    eof = sink.docs["r1/eof"]
    assert eof["chunks"] == len(chunks) and eof["stdout_bytes"] == 8 and eof["stderr_bytes"] == 4
    assert eof["stdout_cut"] is False


def test_output_is_stored_while_the_writer_is_open():
    sink = Sink()
    writer = ChunkWriter("r2", limit=1000, interval=0.1, insert=sink)
    writer.write("stdout", b"early\n")
    wait_until(sink.chunks, 10, interval=0.02, message="the flusher's chunk")
    assert sink.text() == "early\n"  # stored by the flusher, not by close()
    assert "r2/eof" not in sink.docs
    writer.close()
    assert "r2/eof" in sink.docs


def test_consecutive_writes_to_one_stream_are_coalesced():
    sink = Sink()
    with ChunkWriter("r3", limit=10_000, interval=5, insert=sink) as writer:
        for i in range(100):
            writer.write("stdout", f"{i}\n".encode())
    assert len(sink.chunks()) == 1 and sink.text().splitlines() == [str(i) for i in range(100)]


def test_the_cap_keeps_the_head_marks_the_cut_and_keeps_counting():
    sink = Sink()
    with ChunkWriter("r4", limit=10, interval=5, insert=sink) as writer:
        writer.write("stdout", b"0123456789abcdef")
        writer.write("stdout", b"more")
        writer.write("stderr", b"ok")
    stdout = [c for c in sink.chunks() if c["stream"] == "stdout"]
    assert stdout[0]["text"] == "0123456789" and not stdout[0]["cut"]
    assert stdout[1]["cut"] and "passed 10 bytes" in stdout[1]["text"]
    # At the end: how much fell between head and tail, then the tail (the last limit // 2 bytes).
    assert stdout[2]["cut"] and stdout[2]["text"] == "[... hydra: 5 bytes of stdout omitted ...]\n"
    assert stdout[3] == {**stdout[3], "text": "fmore", "cut": False}
    assert len(stdout) == 4
    eof = sink.docs["r4/eof"]
    assert eof["stdout_bytes"] == 20 and eof["stdout_cut"] is True and eof["stderr_cut"] is False
    assert sink.text("stderr") == "ok"


def test_a_character_split_between_writes_is_decoded_whole():
    sink = Sink()
    snowman = "\u2603".encode()
    with ChunkWriter("r5", limit=100, interval=5, insert=sink) as writer:
        writer.write("stdout", b"a" + snowman[:1])
        writer.write("stdout", snowman[1:] + b"b")
    assert sink.text() == "a\u2603b"


def test_a_failed_insert_is_retried_without_losing_or_repeating_chunks():
    sink = Sink()
    sink.failures = 2
    with ChunkWriter("r6", limit=100, interval=0.05, insert=sink) as writer:
        writer.write("stdout", b"x\n")
        time.sleep(0.3)
        writer.write("stdout", b"y\n")
    assert sink.text() == "x\ny\n" and "r6/eof" in sink.docs


def test_writes_after_close_are_ignored_and_close_is_idempotent():
    sink = Sink()
    writer = ChunkWriter("r7", limit=100, interval=5, insert=sink)
    writer.close()
    writer.write("stdout", b"late")
    writer.close()
    assert sink.chunks() == [] and sink.docs["r7/eof"]["chunks"] == 0


@pytest.mark.parametrize("limit", [0, 1])
def test_tiny_limits(limit):
    sink = Sink()
    with ChunkWriter("r8", limit=limit, interval=5, insert=sink) as writer:
        writer.write("stdout", b"abc")
    assert sink.text().startswith("abc"[:limit]) and sink.chunks()[1]["cut"]
    assert sink.text().endswith("abc"[len("abc") - (limit - limit // 2) :])  # the tail: nothing, or "c"
    assert sink.docs["r8/eof"]["stdout_bytes"] == 3


def test_a_run_that_ends_before_its_first_flush_stores_nothing_when_asked():
    sink = Sink()
    with ChunkWriter("r9", limit=100, interval=5, insert=sink, skip_if_unflushed=True) as writer:
        writer.write("stdout", b"quick\n")
    assert sink.docs == {} and writer.stored == 0  # the run record carries its output

    sink = Sink()
    with ChunkWriter("r10", limit=100, interval=0.05, insert=sink, skip_if_unflushed=True) as writer:
        writer.write("stdout", b"first\n")
        wait_until(sink.chunks, 10, interval=0.02, message="the flusher's first chunk")
        writer.write("stdout", b"second\n")
    assert sink.text() == "first\nsecond\n" and writer.stored == len(sink.chunks())  # once started, all


def test_runs_share_one_flusher_thread_and_each_is_stored_while_it_runs():
    """No thread per run: every writer of the process is stored by one long-lived thread, each
    at its own ``interval`` while its command runs."""
    ChunkWriter("warm", limit=1000, insert=Sink()).close()
    with ChunkWriter("warm2", limit=1000, insert=Sink()) as first:
        first.write("stdout", b"x")
    before = threading.active_count()
    sinks = [Sink() for _ in range(5)]
    writers = [ChunkWriter(f"r{i}", limit=1000, insert=sink, interval=0.05) for i, sink in enumerate(sinks)]
    for i, writer in enumerate(writers):
        writer.write("stdout", f"line {i}\n".encode())
    assert threading.active_count() == before
    deadline = time.monotonic() + 30
    while not all(sink.chunks() for sink in sinks) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [sink.text() for sink in sinks] == [f"line {i}\n" for i in range(5)]  # stored before the end
    for writer in writers:
        writer.close()
    assert [sink.text() for sink in sinks] == [f"line {i}\n" for i in range(5)]

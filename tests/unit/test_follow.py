"""The fan-out of a run's output to its followers (hydra.control.follow): one reader per run,
every chunk once and in order for every follower, from the stored output into the live one,
through dropped pages, until the page that says the run ended."""

from __future__ import annotations

import threading

from hydra.control import follow as follow_module
from hydra.control.follow import Hub, follow
from hydra.model.records import Chunk


class FakeRun:
    """A run's output as the store holds it: chunks appended while it runs, then its end."""

    def __init__(self, run_id: str = "r1"):
        self.run_id = run_id
        self.lock = threading.Lock()
        self.chunks: list[Chunk] = []
        self.status = "running"
        self.ended = False
        self.reads = 0
        self.readers: set[str] = set()  # the threads that read

    def write(self, count: int = 1) -> None:
        with self.lock:
            for _ in range(count):
                seq = len(self.chunks)
                self.chunks.append(Chunk(id=f"{self.run_id}/{seq}", run_id=self.run_id, seq=seq, text=f"line {seq}\n"))

    def end(self, status: str = "succeeded") -> None:
        with self.lock:
            self.status, self.ended = status, True

    def read(self, run_id: str, after: int, limit: int) -> dict:
        assert run_id == self.run_id
        with self.lock:
            self.reads += 1
            self.readers.add(threading.current_thread().name)
            chunks = [chunk for chunk in self.chunks if chunk.seq > after][:limit]
            last = chunks[-1].seq if chunks else after
            ended = self.ended and last + 1 >= len(self.chunks)
            return {
                "run_id": run_id,
                "status": self.status,
                "chunks": chunks,
                "next": last,
                "ended": ended,
                "stdout_bytes": 1 if ended else None,
                "stderr_bytes": 0 if ended else None,
            }


def take(pages) -> dict:
    """The next page (keep-alives skipped: a feed on a loaded machine may be slow to start)."""
    return next(page for page in pages if page is not None)


def collect(pages) -> tuple[list[int], dict]:
    seqs: list[int] = []
    last: dict = {}
    for page in pages:
        if page is None:
            continue
        seqs += [chunk.seq for chunk in page["chunks"]]
        last = page
    return seqs, last


def test_a_follower_gets_the_stored_output_then_the_live_output_once_each_then_the_end():
    run = FakeRun()
    run.write(5)
    hub = Hub(run.read, interval=0.01)
    pages = follow(hub, run.run_id, keepalive=0.05)
    first = take(pages)
    assert [c.seq for c in first["chunks"]] == [0, 1, 2, 3, 4]
    run.write(3)
    run.end()
    seqs, last = collect(pages)
    assert [0, 1, 2, 3, 4, *seqs] == list(range(8))
    assert last["ended"] is True and last["status"] == "succeeded" and last["stdout_bytes"] == 1
    assert hub.follower_count() == 0


def test_a_follower_joining_mid_run_from_a_chunk_gets_what_follows_it():
    run = FakeRun()
    run.write(10)
    hub = Hub(run.read, interval=0.01)
    pages = follow(hub, run.run_id, after=6, keepalive=0.05)
    run.write(2)
    run.end()
    seqs, last = collect(pages)
    assert seqs == [7, 8, 9, 10, 11] and last["ended"]


def test_many_followers_of_one_run_each_get_every_chunk_from_one_reader():
    run = FakeRun()
    run.write(7)  # some stored before anyone follows
    hub = Hub(run.read, interval=0.01)
    results: dict[int, tuple[list[int], dict]] = {}
    joined = threading.Barrier(33)

    def follower(index: int) -> None:
        pages = follow(hub, run.run_id, keepalive=0.05)
        first = take(pages)
        joined.wait()
        seqs, last = collect(pages)
        results[index] = ([c.seq for c in first["chunks"]] + seqs, last)

    threads = [threading.Thread(target=follower, args=(i,)) for i in range(32)]
    for thread in threads:
        thread.start()
    joined.wait()
    for _ in range(50):
        run.write(2)
        threading.Event().wait(0.002)
    run.end("failed")
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == 32
    for seqs, last in results.values():
        assert seqs == list(range(107))
        assert last["ended"] and last["status"] == "failed"
    # only the feed read the store (one feed at a time: the run was followed throughout)
    assert run.readers == {f"hydra-follow-{run.run_id}"}
    assert hub.follower_count() == 0


def test_a_follower_whose_queue_overflowed_takes_the_gap_from_what_the_feed_kept(monkeypatch):
    monkeypatch.setattr(follow_module, "QUEUE_PAGES", 2)
    run = FakeRun()
    hub = Hub(run.read, interval=0.005)
    pages = follow(hub, run.run_id, keepalive=0.05)
    assert take(pages)["chunks"] == []  # subscribed, nothing stored yet
    for _ in range(20):  # the follower takes nothing meanwhile: pages are dropped
        run.write(1)
        threading.Event().wait(0.01)
    run.end()
    seqs, last = collect(pages)
    assert seqs == list(range(20)) and last["ended"]


def test_a_status_change_without_output_is_a_page():
    run = FakeRun()
    run.status = "queued"
    hub = Hub(run.read, interval=0.01)
    pages = follow(hub, run.run_id, keepalive=0.05)
    assert take(pages)["status"] == "queued"
    run.status = "running"
    page = take(pages)
    assert page["status"] == "running" and page["chunks"] == [] and not page["ended"]
    pages.close()
    assert hub.follower_count() == 0


def test_an_ended_run_is_one_page_and_no_feed_is_left():
    run = FakeRun()
    run.write(3)
    run.end()
    hub = Hub(run.read, interval=0.01)
    seqs, last = collect(follow(hub, run.run_id))
    assert seqs == [0, 1, 2] and last["ended"]
    assert hub.follower_count() == 0


def test_nothing_new_yields_keepalives():
    run = FakeRun()
    hub = Hub(run.read, interval=0.01)
    pages = follow(hub, run.run_id, keepalive=0.02)
    take(pages)
    assert next(pages) is None
    pages.close()


class Lines:
    def __init__(self, text: str):
        self.text = text

    def iter_lines(self, decode_unicode: bool = False):
        return iter(self.text.split("\n"))


def test_the_client_reads_page_events_and_skips_keepalives_and_other_events():
    from hydra.client.output import server_sent_events

    stream = Lines(
        ': keep-alive\n\nid: 0\nevent: page\ndata: {"next": 0}\n\n'
        'event: other\ndata: {"next": 9}\n\n'
        'id: 2\nevent: page\ndata:{"next":\ndata: 2}\n\n'
    )
    assert list(server_sent_events(stream)) == [{"next": 0}, {"next": 2}]  # type: ignore[arg-type]


def test_a_follower_joining_a_followed_run_catches_up_from_the_feed_not_the_store():
    run = FakeRun()
    run.write(5)
    hub = Hub(run.read, interval=3600)  # the feed reads once, then sleeps
    first = follow(hub, run.run_id, keepalive=0.05)
    assert [c.seq for c in take(first)["chunks"]] == [0, 1, 2, 3, 4]
    reads = run.reads
    late = follow(hub, run.run_id, after=2, keepalive=0.05)
    page = take(late)
    assert [c.seq for c in page["chunks"]] == [3, 4] and page["status"] == "running"
    assert run.reads == reads
    first.close()
    late.close()
    hub.stop()


def test_a_follower_after_the_last_one_left_gets_a_feed_that_reads():
    run = FakeRun()
    run.write(2)
    hub = Hub(run.read, interval=0.005)
    for _ in range(20):  # join and leave again and again while feeds come and go
        pages = follow(hub, run.run_id, keepalive=0.05)
        assert [c.seq for c in take(pages)["chunks"]] == [0, 1]
        pages.close()
    run.write(1)
    run.end()
    seqs, last = collect(follow(hub, run.run_id, keepalive=0.05))
    assert seqs == [0, 1, 2] and last["ended"]

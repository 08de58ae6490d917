"""Following a run's output: one reader per run and process, fanned out to every follower.

``GET /runs/<id>/output/events`` (server-sent events), the console, ``hydra logs -f``, the
Python client's ``follow`` and gRPC's ``WatchRun`` all follow a run through :func:`follow`.

A process keeps one :class:`Feed` per run that somebody follows in it: a thread that reads the
run's output from the start (``hydra.control.output.page_of``: its status, then the chunks
after the last one it read), then every :data:`POLL_INTERVAL` seconds, keeps the chunks (what
the store keeps of a run is bounded by the output limit), and hands each page that says
something new (chunks, another status, the end) to the queue of every follower of that run.
However many clients follow one run, the process reads it from the store once. A feed stops
when the run's output ended or its last follower left.

A follower never misses or repeats a chunk across its switch from stored output to live
output: it subscribes and takes what the feed read after its ``after`` in one step under the
feed's lock, then takes the feed's pages, skipping chunks it already has. A page that starts
after the follower's last chunk - its queue was full (:data:`QUEUE_PAGES`) and its oldest
pages were dropped - is a gap: the follower takes what the feed read since its last chunk
instead. The last page it yields says ``ended: true`` with the run's final status and byte
counts.

Under the API's gunicorn (gevent worker class, ``deploy/``), the threads and queues here are
greenlets: a follower holds no worker thread while it waits.
"""

from __future__ import annotations

import bisect
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from hydra.model.records import Chunk

log = logging.getLogger(__name__)

#: Seconds between two reads of a followed run (a chunk is stored <= 0.4 s after it is written).
POLL_INTERVAL = 0.2
#: Pages a follower's queue holds; a follower that falls further behind takes what the feed kept.
QUEUE_PAGES = 64
#: Chunks per page read.
PAGE_CHUNKS = 256
#: Seconds a follower waits for a page before it yields ``None`` (a keep-alive for its client).
KEEPALIVE = 15.0

#: ``read(run_id, after, limit)``: the page after chunk ``after`` (``page_of``'s shape).
ReadPage = Callable[[str, int, int], dict]


@dataclass(eq=False)
class Follower:
    """One follower's end of a feed: the pages it has not taken yet."""

    feed: Feed
    pages: queue.Queue = field(default_factory=lambda: queue.Queue(QUEUE_PAGES))


class Feed:
    """The one reader of a run's output in this process (see the module docstring): it keeps
    the chunks it read (what the store keeps of a run is bounded by the output limit)."""

    def __init__(self, hub: Hub, run_id: str):
        self.hub = hub
        self.run_id = run_id
        self.followers: set[Follower] = set()
        self.chunks: list[Chunk] = []
        self.last: dict | None = None  # the last page read (its status, ended, byte counts)

    @property
    def after(self) -> int:
        return self.chunks[-1].seq if self.chunks else -1

    def run(self) -> None:
        try:
            while not self.hub.stopped.is_set():
                with self.hub.lock:
                    if not self.followers:  # leave the hub under the lock a new follower takes
                        self._leave()
                        return
                try:
                    page = self.hub.read(self.run_id, self.after, PAGE_CHUNKS)
                except Exception:  # a store outage: the followers wait, the feed tries again
                    log.warning("reading the output of run %s failed", self.run_id, exc_info=True)
                    self.hub.stopped.wait(1.0)
                    continue
                self.publish(page)
                if page["ended"]:
                    return
                if len(page["chunks"]) < PAGE_CHUNKS:
                    self.hub.stopped.wait(self.hub.interval)
        finally:
            with self.hub.lock:
                self._leave()

    def _leave(self) -> None:
        if self.hub.feeds.get(self.run_id) is self:
            del self.hub.feeds[self.run_id]

    def publish(self, page: dict) -> None:
        """Keep the page's chunks and hand the page, if it says something new, to every
        follower (dropping a follower's oldest page when its queue is full)."""
        with self.hub.lock:
            news = page["chunks"] or page["ended"] or self.last is None or page["status"] != self.last["status"]
            page = {**page, "after": self.after}
            self.chunks += page["chunks"]
            self.last = page
            if not news:
                return
            for follower in self.followers:
                while True:
                    try:
                        follower.pages.put_nowait(page)
                        break
                    except queue.Full:  # it catches up from self.chunks when it sees the gap
                        try:
                            follower.pages.get_nowait()
                        except queue.Empty:
                            pass

    def since(self, after: int) -> dict | None:
        """Everything read after chunk ``after``, as one page with the last status (None before
        the first read). Called with the hub's lock held."""
        if self.last is None:
            return None
        chunks = self.chunks[bisect.bisect_right([c.seq for c in self.chunks], after) :]
        return {**self.last, "after": after, "chunks": chunks, "next": chunks[-1].seq if chunks else after}


class Hub:
    """A process's feeds, by run id."""

    def __init__(self, read: ReadPage, *, interval: float = POLL_INTERVAL):
        self.read = read
        self.interval = interval
        self.lock = threading.Lock()
        self.feeds: dict[str, Feed] = {}
        self.stopped = threading.Event()

    def subscribe(self, run_id: str, after: int) -> tuple[Follower, dict | None]:
        """A new follower of the run, and - taken at the same moment, so that nothing falls
        between them - what its feed read after chunk ``after`` already (None: nothing yet)."""
        with self.lock:
            found = self.feeds.get(run_id)
            feed = found or self.feeds.setdefault(run_id, Feed(self, run_id))
            follower = Follower(feed)
            feed.followers.add(follower)
            backlog = feed.since(after)
        if found is None:
            threading.Thread(target=feed.run, name=f"hydra-follow-{run_id}", daemon=True).start()
        return follower, backlog

    def unsubscribe(self, follower: Follower) -> None:
        with self.lock:
            follower.feed.followers.discard(follower)

    def since(self, follower: Follower, after: int) -> dict | None:
        with self.lock:
            return follower.feed.since(after)

    def follower_count(self) -> int:
        with self.lock:
            return sum(len(feed.followers) for feed in self.feeds.values())

    def stop(self) -> None:
        self.stopped.set()


def follow(hub: Hub, run_id: str, *, after: int = -1, keepalive: float = KEEPALIVE) -> Iterator[dict | None]:
    """The pages of run ``run_id``'s output after chunk ``after`` as they come, each with new
    chunks or a new status, the last one with ``ended: true``; ``None`` after ``keepalive``
    seconds without news. The caller checked that its client may read the run."""
    follower, page = hub.subscribe(run_id, after)
    status: str | None = None
    try:
        while True:
            if page is None:
                try:
                    page = follower.pages.get(timeout=keepalive)
                except queue.Empty:
                    yield None
                    continue
            if page["after"] > after:  # pages were dropped: what the feed read since ours
                page = hub.since(follower, after) or page
            chunks = [chunk for chunk in page["chunks"] if chunk.seq > after]
            ended = page["ended"]
            if chunks or ended or page["status"] != status:
                after = chunks[-1].seq if chunks else after
                status = page["status"]
                yield {**page, "chunks": chunks, "next": after}
                if ended:
                    return
            page = None
    finally:
        hub.unsubscribe(follower)

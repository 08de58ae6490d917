"""Following a run's output: one reader per run and process, fanned out to every follower.

``GET /runs/<id>/output/events`` (server-sent events), the console, ``hydra logs -f``, the
Python client's ``follow`` and gRPC's ``WatchRun`` all follow a run through :func:`follow`.

A process keeps one :class:`Feed` per run that somebody follows in it: a thread that reads the
run's next page (``hydra.control.output.page_of``: its status, then the chunks after the last
one it read) every :data:`POLL_INTERVAL` seconds and hands each page that says something new
(chunks, another status, the end) to the queue of every follower of that run. However many
clients follow one run, the process reads it once per interval. A feed stops when the run's
output ended or its last follower left.

A follower never misses or repeats a chunk across its switch from stored output to live
output (:func:`follow`): it subscribes to the feed first, then reads what is stored from
``after`` on (page by page, as any reader), and from then on takes the feed's pages, skipping
the chunks it already has. A page that starts after the follower's last chunk - its queue was
full (:data:`QUEUE_PAGES`) and its oldest pages were dropped - is a gap: the
follower reads the gap from the store before it goes on. The last page it yields says
``ended: true`` with the run's final status and byte counts.

Under the API's gunicorn (gevent worker class, ``deploy/``), the threads and queues here are
greenlets: a follower holds no worker thread while it waits.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

#: Seconds between two reads of a followed run (a chunk is stored <= 0.4 s after it is written).
POLL_INTERVAL = 0.2
#: Pages a follower's queue holds; a follower that falls further behind reads the store.
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

    run_id: str
    pages: queue.Queue = field(default_factory=lambda: queue.Queue(QUEUE_PAGES))


class Feed:
    """The one reader of a run's output in this process (see the module docstring)."""

    def __init__(self, hub: Hub, run_id: str):
        self.hub = hub
        self.run_id = run_id
        self.followers: set[Follower] = set()
        self.after = -1
        self.status: str | None = None

    def run(self) -> None:
        try:
            while not self.hub.stopped.is_set():
                with self.hub.lock:
                    if not self.followers:
                        self.hub.feeds.pop(self.run_id, None)
                        return
                try:
                    page = self.hub.read(self.run_id, self.after, PAGE_CHUNKS)
                except Exception:  # a store outage: the followers wait, the feed tries again
                    log.warning("reading the output of run %s failed", self.run_id, exc_info=True)
                    self.hub.stopped.wait(1.0)
                    continue
                news = page["chunks"] or page["ended"] or page["status"] != self.status
                if news:
                    self.publish({**page, "after": self.after})
                self.after, self.status = page["next"], page["status"]
                if page["ended"]:
                    return
                if len(page["chunks"]) < PAGE_CHUNKS:
                    self.hub.stopped.wait(self.hub.interval)
        finally:
            with self.hub.lock:
                if self.hub.feeds.get(self.run_id) is self:
                    del self.hub.feeds[self.run_id]

    def publish(self, page: dict) -> None:
        with self.hub.lock:
            followers = list(self.followers)
        for follower in followers:
            while True:
                try:
                    follower.pages.put_nowait(page)
                    break
                except queue.Full:  # drop its oldest page: it reads the store when it sees the gap
                    try:
                        follower.pages.get_nowait()
                    except queue.Empty:
                        pass


class Hub:
    """A process's feeds, by run id."""

    def __init__(self, read: ReadPage, *, interval: float = POLL_INTERVAL):
        self.read = read
        self.interval = interval
        self.lock = threading.Lock()
        self.feeds: dict[str, Feed] = {}
        self.stopped = threading.Event()

    def subscribe(self, run_id: str) -> Follower:
        follower = Follower(run_id)
        with self.lock:
            found = self.feeds.get(run_id)
            feed = found or self.feeds.setdefault(run_id, Feed(self, run_id))
            feed.followers.add(follower)
        if found is None:
            threading.Thread(target=feed.run, name=f"hydra-follow-{run_id}", daemon=True).start()
        return follower

    def unsubscribe(self, follower: Follower) -> None:
        with self.lock:
            feed = self.feeds.get(follower.run_id)
            if feed is not None:
                feed.followers.discard(follower)

    def follower_count(self) -> int:
        with self.lock:
            return sum(len(feed.followers) for feed in self.feeds.values())

    def stop(self) -> None:
        self.stopped.set()


def follow(
    hub: Hub, read: ReadPage, run_id: str, *, after: int = -1, keepalive: float = KEEPALIVE
) -> Iterator[dict | None]:
    """The pages of run ``run_id``'s output after chunk ``after`` as they come, each with new
    chunks or a new status, the last one with ``ended: true``; ``None`` after ``keepalive``
    seconds without news. ``read`` reads the store for this follower (the caller checked that
    it may read the run); ``hub`` gives the live pages."""
    follower = hub.subscribe(run_id)
    status: str | None = None
    try:
        while True:  # what is stored, page by page
            page = read(run_id, after, PAGE_CHUNKS)
            after, status = page["next"], page["status"]
            yield page
            if page["ended"]:
                return
            if len(page["chunks"]) < PAGE_CHUNKS:
                break
        while True:  # live
            try:
                page = follower.pages.get(timeout=keepalive)
            except queue.Empty:
                yield None
                continue
            while page["after"] > after:  # a gap: read it from the store
                stored = read(run_id, after, PAGE_CHUNKS)
                if not stored["chunks"]:
                    break
                after = stored["next"]
                yield {**stored, "ended": False}
            chunks = [chunk for chunk in page["chunks"] if chunk.seq > after]
            ended = page["ended"]
            if not chunks and not ended and page["status"] == status:
                continue
            after = chunks[-1].seq if chunks else after
            status = page["status"]
            yield {**page, "chunks": chunks, "next": after, "ended": ended}
            if ended:
                return
    finally:
        hub.unsubscribe(follower)

"""The Client's methods that read a run's output: a page at a time (:meth:`output`), followed
as it comes (:meth:`follow`), all of it with the first or last lines only (:meth:`log`), or
the stored text as a download (:meth:`download_output`).

A stream longer than the output limit is stored as its head, a notice, and - once the command
has ended - a marker saying how many bytes were left out, then its tail: every reader shows
where the errors usually are. :func:`first_lines` and :func:`last_lines` cut a list of chunks
to lines, keeping each chunk's stream.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import Any

import requests

from hydra.client.errors import WaitTimeout
from hydra.client.operations import operation, segment
from hydra.client.records import Chunk, OutputPage


def first_lines(chunks: Iterable[Chunk], count: int) -> Iterator[Chunk]:
    """The chunks that hold the first ``count`` lines (the last one cut after its line's end);
    lazy: it stops taking chunks once it has them (a followed run's output, say)."""
    left = count
    for chunk in chunks:
        if left <= 0:
            return
        ends = chunk.text.count("\n")
        if ends < left:
            left -= ends
            yield chunk
            continue
        cut = -1
        for _ in range(left):
            cut = chunk.text.index("\n", cut + 1)
        yield replace(chunk, text=chunk.text[: cut + 1])
        return


def last_lines(chunks: list[Chunk], count: int) -> list[Chunk]:
    """The chunks that hold the last ``count`` lines (the first one cut at its line's start);
    text after the last newline counts as a line."""
    if count <= 0:
        return []
    kept: list[Chunk] = []
    left = count
    final = True  # the text's very last newline ends the last line: it starts none
    for chunk in reversed(chunks):
        text = chunk.text
        end = len(text)
        if final and text:
            final = False
            if text.endswith("\n"):
                end -= 1
        while end > 0:
            start = text.rfind("\n", 0, end)
            if start < 0:
                break
            left -= 1
            if left == 0:
                if start + 1 < len(text):
                    kept.append(replace(chunk, text=text[start + 1 :]))
                return kept[::-1]
            end = start
        kept.append(chunk)
    return kept[::-1]


#: Seconds a follower waits for the next event (the server sends a keep-alive every 15 s).
FOLLOW_READ_TIMEOUT = 40.0
#: Seconds before a follower whose stream broke off asks again (after its last chunk).
RECONNECT_PAUSE = 0.5


def server_sent_events(response: requests.Response) -> Iterator[dict]:
    """The JSON data of each ``page`` event of a text/event-stream answer, in order
    (comments - keep-alives - and other events skipped)."""
    event, data = "message", []
    for line in response.iter_lines(decode_unicode=True):
        if line is None:
            continue
        if not line:  # the blank line ends an event
            if event == "page" and data:
                yield json.loads("\n".join(data))
            event, data = "message", []
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)


class OutputReading:
    """Mixed into ``hydra.client.Client``: what reads a run's output."""

    timeout: float
    request: Callable[..., Any]
    _exchange: Callable[..., Any]

    @operation("GET /runs/{run_id}/output")
    def output(self, run_id: str, *, after: int = -1, wait: float = 0.0, limit: int | None = None) -> OutputPage:
        """One page of a run's output after chunk ``after``; ``wait`` > 0 holds the request
        (at most 10 s) until there is something new or the run ends."""
        params: dict = {"after": after, "wait": wait}
        if limit is not None:
            params["limit"] = limit
        answer = self.request("GET", f"/runs/{segment(run_id)}/output", params=params, timeout=self.timeout + wait)
        return OutputPage.from_json(answer)

    @operation("GET /runs/{run_id}/output/events")
    def follow(
        self,
        run_id: str,
        *,
        after: int = -1,
        timeout: float | None = None,
        on_status: Callable[[str], None] | None = None,
    ) -> Iterator[Chunk]:
        """Yield the run's output chunks as they come, until the run has ended and all of its
        output was read (server-sent events, ``GET /runs/{id}/output/events``; a stream that
        breaks off is resumed after the last chunk). ``on_status(status)`` is called whenever
        the status changes. Raises WaitTimeout after ``timeout`` seconds (None: no limit)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        status = None
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise WaitTimeout(f"run {run_id} still {status} after {timeout:g}s")
            # the server sends a keep-alive every 15 s: a read that waits longer lost the stream
            read_timeout = FOLLOW_READ_TIMEOUT if left is None else min(FOLLOW_READ_TIMEOUT, max(left, 0.1))
            response, _ = self._exchange(
                "GET",
                f"/runs/{segment(run_id)}/output/events",
                params={"after": after},
                headers={"Accept": "text/event-stream"},
                timeout=(self.timeout, read_timeout),
                stream=True,
            )
            try:
                with response:
                    for data in server_sent_events(response):
                        page = OutputPage.from_json(data)
                        if page.status != status:
                            status = page.status
                            if on_status is not None:
                                on_status(status)
                        yield from page.chunks
                        after = page.next
                        if page.ended:
                            return
            except requests.RequestException:
                pass
            time.sleep(RECONNECT_PAUSE)  # cut off or quiet for too long: ask again from where it was

    def log(self, run_id: str, *, head: int | None = None, tail: int | None = None) -> list[Chunk]:
        """The run's stored output as chunks, in the order written (stdout and stderr
        interleaved): all of it, or its first ``head`` lines, or its last ``tail`` lines."""
        chunks: list[Chunk] = []
        after = -1
        while head is None or sum(chunk.text.count("\n") for chunk in chunks) < head:
            page = self.output(run_id, after=after)
            if page.retry_after and not page.chunks:
                time.sleep(page.retry_after)
                continue
            chunks += page.chunks
            if not page.chunks:
                break
            after = page.next
        if head is not None:
            chunks = list(first_lines(chunks, head))
        return last_lines(chunks, tail) if tail is not None else chunks

    @operation("GET /runs/{run_id}/output.txt")
    def download_output(self, run_id: str) -> str:
        """The run's output as one text (``GET /runs/{id}/output.txt``): stdout and stderr in
        the order written; the full output when the installation keeps it, else what is stored
        (head, the omission marker, tail)."""
        return self._exchange("GET", f"/runs/{segment(run_id)}/output.txt", ok=(200,), text=True)[0]

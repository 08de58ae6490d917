"""A byte sink that keeps the beginning and the end of a stream in bounded memory.

A run's stdout and stderr are recorded through :class:`CappedBuffer`, so a command that
prints gigabytes costs the worker at most ``limit`` bytes per stream, and the record still
shows how the output started and how it ended.
"""

from __future__ import annotations


class CappedBuffer:
    """Keeps at most ``limit`` bytes of a stream: the first ``limit // 2`` bytes and the last
    ``limit - limit // 2`` bytes; counts everything written.

    Memory stays O(limit) however much is written. ``limit=0`` keeps nothing but still counts.
    Not thread-safe: one writer, and read it (:meth:`text`) when the writer is done.
    """

    def __init__(self, limit: int):
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        self._limit = limit
        self._head_limit = limit // 2
        self._tail_limit = limit - self._head_limit
        self._head = bytearray()
        self._tail = bytearray()
        self._total = 0

    def write(self, data: bytes) -> None:
        """Counts ``data`` and keeps the part of it that belongs to the head or the tail."""
        self._total += len(data)
        view = memoryview(data)
        room = self._head_limit - len(self._head)
        if room > 0:
            self._head += view[:room]
            view = view[room:]
        if view and self._tail_limit:
            # Append only the chunk's last tail_limit bytes, then trim to tail_limit:
            # the tail never holds more than twice its limit, even for a huge chunk.
            self._tail += view[-self._tail_limit :]
            del self._tail[: -self._tail_limit]

    @property
    def total(self) -> int:
        """Bytes written in all."""
        return self._total

    @property
    def truncated(self) -> bool:
        """True when some of the written bytes were not kept (``total > limit``)."""
        return self._total > self._limit

    def text(self) -> str:
        """The kept bytes decoded as UTF-8 (``errors="replace"``).

        When truncated: the head, then a line ``[... hydra: N bytes omitted ...]`` (with a
        newline before and after it), then the tail; head and tail are decoded separately,
        so a character cut in two at either edge becomes U+FFFD instead of an error.
        """
        if not self.truncated:
            return (self._head + self._tail).decode("utf-8", errors="replace")
        omitted = self._total - len(self._head) - len(self._tail)
        return (
            self._head.decode("utf-8", errors="replace")
            + f"\n[... hydra: {omitted} bytes omitted ...]\n"
            + self._tail.decode("utf-8", errors="replace")
        )

"""A TCP relay that delays every chunk by ``delay`` +- ``jitter`` in each direction.

``tc netem`` is the usual tool, but this machine's kernel is built without it
(``CONFIG_NET_SCH_NETEM`` is not set, and there are no modules to load): the latency
scenario puts this relay between a namespaced worker and Redis and MongoDB instead. It
listens on the test bridge's address and forwards to the servers on the same address, so
the traffic stays on the bridge. Order is kept per direction (a chunk never overtakes an
earlier one), as on a real link.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time


class DelayRelay:
    def __init__(self, host: str, routes: dict[int, int], delay: float, jitter: float):
        """``routes``: listening port -> target port (both on ``host``)."""
        self.host = host
        self.routes = routes
        self.delay = delay
        self.jitter = jitter
        self.chunks = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._servers: list[asyncio.base_events.Server] = []
        self._tasks: set[asyncio.Task] = set()

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(timeout=10)

    def stop(self) -> None:
        async def close() -> None:
            for server in self._servers:
                server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.sleep(0)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _listen(self) -> None:
        for listen, target in self.routes.items():
            server = await asyncio.start_server(
                lambda r, w, t=target: self._spawn(self._relay(r, w, t)), self.host, listen
            )
            self._servers.append(server)

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _relay(self, client_reader, client_writer, target: int) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(self.host, target)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(
            self._pump(client_reader, server_writer), self._pump(server_reader, client_writer), return_exceptions=True
        )

    async def _pump(self, reader, writer) -> None:
        queue: asyncio.Queue = asyncio.Queue()
        last_due = 0.0

        async def send() -> None:
            while True:
                due, data = await queue.get()
                if data is None:
                    break
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()

        sender = asyncio.ensure_future(send())
        try:
            while True:
                data = await reader.read(65536)
                due = max(last_due, time.monotonic() + self.delay + random.uniform(-self.jitter, self.jitter))
                last_due = due
                if not data:
                    await queue.put((due, None))
                    break
                self.chunks += 1
                await queue.put((due, data))
            await sender
        finally:
            sender.cancel()
            with contextlib.suppress(Exception):
                writer.close()

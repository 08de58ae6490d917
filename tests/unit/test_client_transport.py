"""The client's transport: a request the API never saw, because it closed a kept-alive
connection just as the client reused it, is sent once more if it is idempotent, never if it
is a POST. Against a real HTTP server on loopback that closes the connection unanswered."""

from __future__ import annotations

import socket
import threading

import pytest

from hydra.client import Client, Unavailable

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n{}"


class ClosingServer:
    """Answers requests on kept-alive connections; when ``drop`` is set, closes the connection
    on the next request without answering it (what a keep-alive timeout does to a request that
    arrives as it fires)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.seen: list[str] = []
        self.drop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            buffer = b""
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, buffer = buffer.split(b"\r\n\r\n", 1)
                lines = head.decode().split("\r\n")
                length = next(
                    (int(v) for k, _, v in (line.partition(": ") for line in lines) if k.lower() == "content-length"), 0
                )
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                buffer = buffer[length:]
                self.seen.append(" ".join(lines[0].split()[:2]))
                if self.drop.is_set():
                    self.drop.clear()
                    return  # closed unanswered
                conn.sendall(ANSWER)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def server():
    running = ClosingServer()
    yield running
    running.close()


def test_a_get_on_a_connection_closed_unanswered_is_sent_again(server):
    client = Client(server.url, token="t", timeout=5)
    assert client.request("GET", "/jobs/a") == {}
    server.drop.set()
    assert client.request("GET", "/jobs/b") == {}  # on a new connection
    assert server.seen == ["GET /jobs/a", "GET /jobs/b", "GET /jobs/b"]


def test_a_post_on_a_connection_closed_unanswered_is_not_sent_again(server):
    client = Client(server.url, token="t", timeout=5)
    assert client.request("GET", "/health") == {}
    server.drop.set()
    with pytest.raises(Unavailable):
        client.request("POST", "/jobs/", json={"command": "echo once"}, ok=(200, 201))
    assert server.seen == ["GET /health", "POST /jobs/"]

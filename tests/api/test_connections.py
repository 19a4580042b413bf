"""Server limits on a real socket: an idle connection, a trickled head and a slow body are
closed, not held open (uvicorn with the protocol and middleware `digits serve` uses)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from digits.api import connections, middleware
from digits.api.connections import HeadDeadlineProtocol
from digits.api.metrics import Metrics
from digits.api.middleware import RequestContextMiddleware
from digits.api.testing import free_port

LIMIT_S = 0.5


async def _echo(scope: Scope, receive: Receive, send: Send) -> None:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"got %d" % len(body)})


@pytest.fixture
def port(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    monkeypatch.setattr(connections, "HEAD_TIMEOUT_S", LIMIT_S)
    monkeypatch.setattr(middleware, "BODY_TIMEOUT_S", LIMIT_S)
    app = RequestContextMiddleware(_echo, max_body_bytes=10_000, metrics=Metrics())
    chosen = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=chosen, http=HeadDeadlineProtocol, lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield chosen
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    return sock


def _closed(sock: socket.socket, within_s: float = 3.0) -> bool:
    sock.settimeout(within_s)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return True


def test_a_prompt_request_is_served(port: int) -> None:
    with _connect(port) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
        assert b"got 3" in sock.recv(4096)


def test_an_idle_connection_is_closed(port: int) -> None:
    with _connect(port) as sock:
        started = time.monotonic()
        assert _closed(sock)
        assert time.monotonic() - started < LIMIT_S + 2


def test_a_trickled_head_is_closed(port: int) -> None:
    with _connect(port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        with pytest.raises(OSError):  # the server hangs up while the head still trickles in
            for i in range(30):
                sock.sendall(b"X-Slow-%d: 1\r\n" % i)
                time.sleep(0.1)
                sock.settimeout(0.01)
                try:
                    if sock.recv(1) == b"":
                        raise ConnectionResetError("closed")
                except TimeoutError:
                    pass


def test_a_slow_body_is_answered_408_and_closed(port: int) -> None:
    with _connect(port) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
        sock.settimeout(5)
        answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408")
        assert _closed(sock)

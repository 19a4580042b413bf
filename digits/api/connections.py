"""Connection limits uvicorn does not set itself: a connection must send its request line and
headers within HEAD_TIMEOUT_S of opening (or of starting its next request), so idle and
slowly-trickled connections are closed instead of held open without limit. The body has its
own deadline (digits.api.middleware), the time between keep-alive requests is gunicorn's
``keepalive``, and the number of connections per worker is ``limit_concurrency``."""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEAD_TIMEOUT_S = 10.0
KEEPALIVE_S = 5  # idle between two requests of one connection
MAX_CONNECTIONS = 256  # per worker; beyond it new requests are answered 503


class HeadDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol with a deadline for each request's head."""

    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_deadline()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._start_head_deadline()

    def on_headers_complete(self) -> None:
        self._cancel_head_deadline()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_deadline()
        super().connection_lost(exc)

    def _start_head_deadline(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(HEAD_TIMEOUT_S, self._head_too_slow)

    def _cancel_head_deadline(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.close()

"""DIGITS_RATE_LIMIT: writes per minute per session, or per client address for requests without
a valid session token (creating sessions included), so the UI's many users, each with a session
of their own, are never limited as one client.

Each worker process counts on its own, in memory: with N workers a client that spreads its
requests over all of them gets up to N times the limit. That bounds what one client costs
without any shared store; docs/deploy.md says so.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

from digits.api.clients import Network, client_address
from digits.api.sessions import HEADER

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_KEYS = 100_000  # beyond this, buckets idle for a minute (full again) are dropped


class RateLimiter:
    """A token bucket per key: ``per_minute`` writes in a burst, refilled continuously."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0  # tokens per second
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def acquire(self, key: str) -> float:
        """0 when the write may go ahead (and is counted), else the seconds until it may."""
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - at) * self.rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                return (1.0 - tokens) / self.rate
            self._buckets[key] = (tokens - 1.0, now)
            if len(self._buckets) > MAX_KEYS:
                self._forget_idle(now)
            return 0.0

    def _forget_idle(self, now: float) -> None:
        idle = [k for k, (_, at) in self._buckets.items() if now - at >= 60.0]
        for key in idle:
            del self._buckets[key]


class RateLimitMiddleware:
    """Answers 429 with Retry-After to a write over its session's (or address's) limit."""

    def __init__(
        self, app: ASGIApp, *, per_minute: int, trusted_proxies: Sequence[Network]
    ) -> None:
        self.app = app
        self.limiter = RateLimiter(per_minute)
        self.trusted_proxies = trusted_proxies

    def _key(self, scope: Scope) -> str:
        token = next((v for k, v in scope["headers"] if k == HEADER.lower().encode()), None)
        if token is not None:
            # The signature alone decides the key: no database read for a refusal.
            verified = scope["app"].state.sessions.verify(token.decode("latin-1"))
            if verified is not None:
                return f"session:{verified[0]}"
        return f"address:{client_address(scope, self.trusted_proxies)}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in WRITES:
            await self.app(scope, receive, send)
            return
        wait = self.limiter.acquire(self._key(scope))
        if not wait:
            await self.app(scope, receive, send)
            return
        body = json.dumps(
            {"detail": "too many writes: over DIGITS_RATE_LIMIT per minute; retry later"}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(math.ceil(wait)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

"""One pure-ASGI middleware for what every request needs: a request id, trusted hosts, the body
limit, security headers, the access log line and the latency histogram (errors it answers
itself are JSON with a ``detail``, like every other error of the API).

The body limit is enforced on the raw bytes before any parser sees them: a declared
Content-Length over the limit is refused at once, and a chunked body is read only up to the
limit (then refused), so no oversized upload is ever buffered whole.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import Sequence
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from digits.api.clients import Network, client_address
from digits.api.metrics import Metrics
from digits.logs import request_id_var

logger = logging.getLogger("digits.access")

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")
_BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# The whole body must arrive within this: 2 MiB at 100 kB/s, a slow phone, takes 20 s.
BODY_TIMEOUT_S = 30.0


def _json_response(status: int, detail: str, request_id: str) -> tuple[Message, Message]:
    body = json.dumps({"detail": detail}).encode()
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", request_id.encode()),
            (b"connection", b"close"),
            *SECURITY_HEADERS,
        ],
    }
    return start, {"type": "http.response.body", "body": body}


class RequestContextMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        metrics: Metrics,
        trusted_hosts: list[str] | None = None,
        trusted_proxies: Sequence[Network] = (),
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics
        self.trusted_proxies = trusted_proxies
        hosts = [h.lower() for h in trusted_hosts or ["*"]]
        self.trusted_hosts = None if "*" in hosts else hosts

    def _host_allowed(self, scope: Scope, headers: dict[bytes, bytes]) -> bool:
        # Two Host headers: the check and the application could each read a different one.
        if sum(name == b"host" for name, _ in scope["headers"]) > 1:
            return False
        if self.trusted_hosts is None:
            return True
        host = headers.get(b"host", b"").decode("latin-1").lower()
        host = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return any(
            host == pattern or (pattern.startswith("*.") and host.endswith(pattern[1:]))
            for pattern in self.trusted_hosts
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        supplied = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = supplied if _CLIENT_REQUEST_ID.match(supplied) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status_holder = [500]
        try:
            if not self._host_allowed(scope, headers):
                status_holder[0] = 400
                for message in _json_response(400, "invalid Host header", request_id):
                    await send(message)
                return
            if scope["method"] in _BODY_METHODS:
                try:
                    async with asyncio.timeout(BODY_TIMEOUT_S):
                        body = await self._read_body(headers, receive)
                except TimeoutError:
                    status_holder[0] = 408
                    for message in _json_response(
                        408,
                        f"the request body did not arrive within {BODY_TIMEOUT_S:g} s",
                        request_id,
                    ):
                        await send(message)
                    return
                if body is None:
                    status_holder[0] = 413
                    for message in _json_response(
                        413,
                        f"the request body is larger than the limit of {self.max_body_bytes} bytes",
                        request_id,
                    ):
                        await send(message)
                    return
                receive = _replay(body, receive)

            async def send_wrapper(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status_holder[0] = message["status"]
                    message["headers"] = [
                        *message.get("headers", []),
                        (b"x-request-id", request_id.encode()),
                        *SECURITY_HEADERS,
                    ]
                await send(message)

            await self.app(scope, receive, send_wrapper)
        finally:
            self._observe(scope, status_holder[0], time.perf_counter() - started)
            request_id_var.reset(token)

    async def _read_body(self, headers: dict[bytes, bytes], receive: Receive) -> bytes | None:
        """The whole body, or None when it exceeds the limit (declared or actual)."""
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                if int(declared) > self.max_body_bytes:
                    return None
            except ValueError:
                return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    def _observe(self, scope: Scope, status: int, elapsed: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        method = scope["method"]
        self.metrics.request_latency.labels(method=method, route=template, status=status).observe(
            elapsed
        )
        if status >= 400:
            self.metrics.errors.labels(status=status).inc()
        extra: dict[str, Any] = {
            "method": method,
            "path": scope["path"],
            "route": template,
            "status": status,
            "duration_ms": round(elapsed * 1000, 3),
            "client": client_address(scope, self.trusted_proxies),
        }
        admin_token_fp = scope.get("state", {}).get("admin_token_fp")
        if admin_token_fp is not None:  # set by the admin check: which token was used
            extra["admin_token_fp"] = admin_token_fp
        level = logging.WARNING if status >= 500 else logging.INFO
        logger.log(level, "%s %s %s", method, scope["path"], status, extra=extra)


def _replay(body: bytes, original: Receive) -> Receive:
    """Hand the buffered body to the app, then pass through (to hear the disconnect)."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await original()

    return receive

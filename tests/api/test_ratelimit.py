"""DIGITS_RATE_LIMIT: writes per minute per session, per address without a session."""

from __future__ import annotations

import ipaddress

from api_helpers import SESSION_HEADER, MakeClient, new_session, post_drawing

from digits.api.clients import client_address
from digits.api.ratelimit import RateLimiter


def test_writes_over_the_limit_are_429_per_session_and_per_address(
    make_client: MakeClient,
) -> None:
    with make_client(rate_limit=3, session=False) as client:
        mine, theirs = new_session(client), new_session(client)  # 2 of the address's 3
        client.headers[SESSION_HEADER] = mine
        answers = [post_drawing(client).status_code for _ in range(4)]
        assert answers == [201, 201, 201, 429]
        refused = post_drawing(client)
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        assert "DIGITS_RATE_LIMIT" in refused.json()["detail"]
        assert client.get("/api/predictions").status_code == 200  # reads are not limited
        client.headers[SESSION_HEADER] = theirs  # another session has its own count
        assert post_drawing(client).status_code == 201
        del client.headers[SESSION_HEADER]
        assert client.post("/api/sessions").status_code == 201  # the address's third
        assert client.post("/api/sessions").status_code == 429
        client.headers[SESSION_HEADER] = "forged.token"  # an invalid token counts as the address
        assert post_drawing(client).status_code == 429


def test_the_bucket_refills_with_time() -> None:
    now = [0.0]
    limiter = RateLimiter(60, clock=lambda: now[0])  # one a second
    assert all(limiter.acquire("k") == 0 for _ in range(60))
    assert limiter.acquire("k") == 1.0
    now[0] += 0.5
    assert limiter.acquire("k") == 0.5
    now[0] += 0.5
    assert limiter.acquire("k") == 0 and limiter.acquire("other") == 0


def test_the_client_address_comes_from_a_trusted_proxy_only() -> None:
    proxies = [ipaddress.ip_network("10.0.0.0/8")]

    def scope(peer: str, forwarded: str | None) -> dict:
        headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
        return {"client": (peer, 1234), "headers": headers}

    assert client_address(scope("198.51.100.7", "203.0.113.9"), proxies) == "198.51.100.7"
    assert client_address(scope("10.0.0.2", "203.0.113.9"), proxies) == "203.0.113.9"
    # The client may send its own X-Forwarded-For: only the hop the proxy appended counts.
    assert client_address(scope("10.0.0.2", "1.2.3.4, 203.0.113.9"), proxies) == "203.0.113.9"
    assert client_address(scope("10.0.0.2", "203.0.113.9, 10.0.0.3"), proxies) == "203.0.113.9"
    assert client_address(scope("10.0.0.2", None), proxies) == "10.0.0.2"
    assert client_address(scope("10.0.0.2", "203.0.113.9"), []) == "10.0.0.2"

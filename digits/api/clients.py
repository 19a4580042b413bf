"""The client's address: the socket's peer, or what a trusted reverse proxy says it is."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from starlette.types import Scope

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _trusted(address: str, proxies: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in proxies)


def client_address(scope: Scope, proxies: Sequence[Network]) -> str:
    """The socket's peer; when that peer is a trusted proxy, the nearest address in
    ``X-Forwarded-For`` that is not itself a trusted proxy (addresses further left were written
    by the client and could be anything)."""
    peer = scope.get("client")
    address = peer[0] if peer else "unknown"
    if not proxies or not _trusted(address, proxies):
        return address
    forwarded = [
        value.decode("latin-1") for name, value in scope["headers"] if name == b"x-forwarded-for"
    ]
    hops = [hop.strip() for value in forwarded for hop in value.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, proxies):
            return hop
    return hops[0] if hops else address

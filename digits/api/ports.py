"""A check that a TCP port is free, for `digits serve` and `digits up` (no server imports)."""

from __future__ import annotations

import socket


class PortTakenError(RuntimeError):
    """Something already listens on the address a server was asked to use."""


def ensure_port_free(host: str, port: int, what: str = "API") -> None:
    """Fail at once, with a clear message, when the port is taken. `digits serve`'s workers
    bind with SO_REUSEPORT; this bind without it also fails on a server that used that option."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise PortTakenError(
                f"port {port} on {host} for the {what} is taken ({exc.strerror}); "
                f"stop whatever uses it or choose another port"
            ) from exc

"""Test images and request helpers for the API suite."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from PIL import Image, ImageDraw
from sqlalchemy import delete

from digits.api.sessions import HEADER as SESSION_HEADER
from digits.db.models import NumberRow, PredictionRow, SessionRow
from digits.db.session import Database

MakeClient = Callable[..., AbstractContextManager[TestClient]]
__all__ = ["SESSION_HEADER"]


def png_bytes(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def drawing(size: int = 280, *, mode: str = "RGBA") -> bytes:
    """A canvas-like drawing: a dark stroke (a '7') on a transparent or white background."""
    background = (0, 0, 0, 0) if mode == "RGBA" else "white"
    image = Image.new(mode, (size, size), background)
    ink = (0, 0, 0, 255) if mode == "RGBA" else "black"
    s = size / 280
    pen = ImageDraw.Draw(image)
    pen.line([(70 * s, 60 * s), (210 * s, 60 * s), (120 * s, 230 * s)], fill=ink, width=int(18 * s))
    return png_bytes(image)


def bars(count: int, *, height: int = 280) -> bytes:
    """A canvas-like drawing of ``count`` short upright strokes, further apart than a digit is
    wide: each is one piece, so the reader finds ``count`` digits whatever it reads them as."""
    image = Image.new("RGBA", (80 + 120 * count, height), (0, 0, 0, 0))
    pen = ImageDraw.Draw(image)
    for k in range(count):
        x = 60 + 120 * k
        pen.line([(x, 120), (x + 2, 160)], fill=(0, 0, 0, 255), width=18)
    return png_bytes(image)


def post_number(client: TestClient, image: bytes | None = None, **form: str) -> Any:
    return client.post(
        "/api/numbers",
        files={"image": ("number.png", image or bars(3), "image/png")},
        data=form,
    )


def blank(size: int = 280) -> bytes:
    return png_bytes(Image.new("RGBA", (size, size), (0, 0, 0, 0)))


def post_drawing(client: TestClient, image: bytes | None = None, **form: str) -> Any:
    return client.post(
        "/api/predictions",
        files={"image": ("drawing.png", image or drawing(), "image/png")},
        data=form,
    )


def clear_database(url: str) -> None:
    database = Database(url)
    try:
        with database.write() as session:
            session.execute(delete(PredictionRow))
            session.execute(delete(NumberRow))
            session.execute(delete(SessionRow))
    finally:
        database.dispose()


def new_session(client: TestClient) -> str:
    """A new session's token (POST /api/sessions)."""
    response = client.post("/api/sessions")
    assert response.status_code == 201, response.text
    return str(response.json()["session_token"])


def session_of(client: TestClient, token: str | None = None) -> uuid.UUID:
    """The session id behind ``token`` (default: the client's own X-Session-Token)."""
    token = token or client.headers[SESSION_HEADER]
    verified = client.app.state.sessions.verify(token)  # type: ignore[attr-defined]
    assert verified is not None
    return verified[0]


def unreachable(backend: str, tmp_path: Path) -> Database:
    """A database that cannot be reached: an outage."""
    if backend == "sqlite":  # a file in a directory that does not exist cannot be opened
        return Database(f"sqlite:///{tmp_path / 'gone' / 'digits.sqlite3'}")
    return Database("postgresql://postgres@127.0.0.1:1/nowhere")  # nothing listens on port 1

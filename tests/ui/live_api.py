"""The real API app in this process for the page tests: a temporary SQLite database, the shipped
weights, and the UI's own `ApiClient` talking to it through Starlette's TestClient."""

from __future__ import annotations

import dataclasses
import io
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw
from sqlalchemy import select

from digits import checkpoint as ckpt
from digits.api.store import PredictionStore
from digits.db.models import PredictionRow, utcnow
from digits.db.session import Database
from digits.loop.registry import Registry
from digits.ui.client import ApiClient

# Canvas pixels (280x280) of a clear "7" and of the letter "H", as the canvas sends them.
SEVEN = [[(70, 60), (210, 60), (125, 235)]]
LETTER_H = [[(80, 50), (80, 230)], [(200, 50), (200, 230)], [(80, 140), (200, 140)]]


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def canvas_png(
    strokes: list[list[tuple[int, int]]],
    size: int | tuple[int, int] = 280,
    width: int = 20,
) -> bytes:
    """Black strokes on the canvas's white paper (RGBA, as streamlit-drawable-canvas sends it);
    ``size``: a side, or (width, height)."""
    image = Image.new("RGBA", size if isinstance(size, tuple) else (size, size), "white")
    pen = ImageDraw.Draw(image)
    for stroke in strokes:
        pen.line(stroke, fill=(0, 0, 0, 255), width=width, joint="curve")
    return png(image)


# "42" on the Number canvas (340x150), as one writes it: a 4 of two strokes, a 2 of one.
FORTY_TWO = [
    [(70, 20), (35, 95), (105, 95)],
    [(85, 40), (85, 135)],
    [(165, 45), (195, 20), (235, 30), (235, 65), (160, 135), (250, 135)],
]


class InProcess(httpx.BaseTransport):
    """Hands each request to the app behind ``app_client`` (a started TestClient)."""

    def __init__(self, app_client: TestClient) -> None:
        self.app_client = app_client
        self.sent: list[str] = []  # "METHOD /path" of every request, in order

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(f"{request.method} {request.url.path}")
        answer = self.app_client.send(request)
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)


@dataclass
class LiveApi:
    """The app, the UI client pointed at it, and direct access to what it stored."""

    app: FastAPI
    client: ApiClient
    transport: InProcess
    database: Database
    clock: datetime
    session_id: uuid.UUID | None = None  # the UI client's session, which add() stores under

    @property
    def store(self) -> PredictionStore:
        store: PredictionStore = self.app.state.store
        return store

    def add(
        self,
        digit: int,
        *,
        confidence: float = 0.9,
        status: str | None = None,
        true_label: int | None = None,
        not_a_digit: bool = False,
        model_version: str = "v1",
        minutes: float = 1.0,
    ) -> str:
        """A stored prediction, ``minutes`` after the one added before it: the rows a history
        of earlier drawings left, with digits and times no drawing has to produce."""
        self.clock += timedelta(minutes=minutes)
        rest = (1.0 - confidence) / 9
        row = PredictionRow(
            id=uuid.uuid4(),
            created_at=self.clock,
            digit=digit,
            confidence=confidence,
            probabilities=[confidence if d == digit else rest for d in range(10)],
            status=status or ("ok" if confidence >= 0.6 else "uncertain"),
            source="canvas",
            model_version=model_version,
            image_png=canvas_png(SEVEN),
            input_png=png(Image.new("L", (28, 28))),
            true_label=true_label,
            not_a_digit=not_a_digit,
            labelled_at=self.clock if true_label is not None or not_a_digit else None,
            latency_ms=1.0,
            session_id=self.session_id,
        )
        with self.database.write() as session:
            session.add(row)
        return str(row.id)

    @property
    def posts(self) -> int:
        """How many predictions the UI asked for."""
        return self.transport.sent.count("POST /api/predictions")

    def rows(self) -> list[PredictionRow]:
        """Every stored prediction, newest first."""
        with self.database.read() as session:
            query = select(PredictionRow).order_by(PredictionRow.created_at.desc())
            return list(session.scalars(query))

    def labels(self) -> list[tuple[str, int | None, bool]]:
        """(id, true_label, not_a_digit) of every labelled prediction, newest first."""
        return [
            (str(r.id), r.true_label, r.not_a_digit)
            for r in self.rows()
            if r.labelled_at is not None
        ]

    @contextmanager
    def storage_down(self, tmp_path: Path) -> Iterator[None]:
        """No database and no spool: every read and write answers 503."""
        healthy = self.store.database
        self.store.database = Database(f"sqlite:///{tmp_path / 'gone' / 'digits.sqlite3'}")
        self.store.spool.close()
        try:
            yield
        finally:
            self.store.database.dispose()
            self.store.database = healthy
            self.store.spool.open()


REPORT = "# Retraining report\n\nDecision: promoted.\n"


def promote_a_retraining(
    registry: Registry, shipped: ckpt.Checkpoint, tmp_path: Path, *, at: datetime | None = None
) -> str:
    """The shipped weights, then a retrained child of them (another temperature) promoted
    (``at`` that time, else now)."""
    registry.ensure()
    child = dataclasses.replace(
        shipped,
        temperature=shipped.temperature * 1.1,
        parent=shipped.version,
        data={"corrections_train": 240},
        metrics={
            "mnist_accuracy": 0.9943,
            "heldout_accuracy": 0.93,
            "heldout_sessions": 4,
            "heldout_samples": 40,
        },
    )
    path = tmp_path / "child.pt"
    ckpt.save(child, path)
    version, _ = registry.register(path, origin="retrain", report=REPORT)
    registry.record_activation(version, "promote", "better on held-out sessions", at=at)
    return version


MakeApi = Callable[..., AbstractContextManager[LiveApi]]


def start_clock() -> datetime:
    """Six hours ago, on the hour: rows added after it are in the past."""
    return (utcnow() - timedelta(hours=6)).replace(minute=0, second=0, microsecond=0)

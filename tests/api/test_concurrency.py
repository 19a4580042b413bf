"""Many clients at once: every acknowledged prediction is a row, no correction is lost."""

from __future__ import annotations

import asyncio
import uuid

import httpx
from api_helpers import SESSION_HEADER, clear_database, drawing
from sqlalchemy import event, func, select

from digits.api import create_app
from digits.config import Settings
from digits.db import crud
from digits.db.models import PredictionRow, utcnow
from digits.db.session import Database
from digits.predict import Predictor

N = 200


async def _run(app, body: bytes) -> tuple[list[dict], list[int], dict]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            session = (await client.post("/api/sessions")).json()
            client.headers[SESSION_HEADER] = session["session_token"]

            async def predict() -> httpx.Response:
                return await client.post(
                    "/api/predictions", files={"image": ("d.png", body, "image/png")}
                )

            created = await asyncio.gather(*(predict() for _ in range(N)))
            assert all(r.status_code == 201 for r in created), {r.status_code for r in created}
            made = [r.json() for r in created]

            async def label(i: int, item: dict) -> httpx.Response:
                return await client.patch(
                    f"/api/predictions/{item['id']}", json={"true_label": i % 10}
                )

            labelled = await asyncio.gather(*(label(i, m) for i, m in enumerate(made)))
            page = (await client.get("/api/predictions", params={"limit": 500})).json()
            return made, [r.status_code for r in labelled], page


def test_parallel_predictions_and_corrections(settings: Settings, predictor: Predictor) -> None:
    clear_database(settings.resolved_database_url)
    app = create_app(settings, predictor=predictor, run_maintenance=False)
    made, label_statuses, page = asyncio.run(_run(app, drawing()))
    assert set(label_statuses) == {200}
    assert len({m["id"] for m in made}) == N
    assert page["total"] == N
    by_id = {item["id"]: item for item in page["items"]}
    assert set(by_id) == {m["id"] for m in made}
    assert all(by_id[m["id"]]["true_label"] == i % 10 for i, m in enumerate(made))
    database = Database(settings.resolved_database_url)
    try:
        with database.read() as session:
            assert session.scalar(select(func.count()).select_from(PredictionRow)) == N
    finally:
        database.dispose()


async def _same_drawing(app, body: bytes, drawing_id: str) -> list[httpx.Response]:  # type: ignore[no-untyped-def]
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            session = (await client.post("/api/sessions")).json()
            client.headers[SESSION_HEADER] = session["session_token"]
            return await asyncio.gather(
                *(
                    client.post(
                        "/api/predictions",
                        files={"image": ("d.png", body, "image/png")},
                        data={"drawing_id": drawing_id, "source": "canvas"},
                    )
                    for _ in range(20)
                )
            )


def test_parallel_posts_of_one_drawing_keep_one_row(
    settings: Settings, predictor: Predictor
) -> None:
    clear_database(settings.resolved_database_url)
    app = create_app(settings, predictor=predictor, run_maintenance=False)
    responses = asyncio.run(_same_drawing(app, drawing(), "6f1c2a7e-0000-4000-8000-000000000001"))
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    database = Database(settings.resolved_database_url)
    try:
        with database.read() as session:
            assert session.scalar(select(func.count()).select_from(PredictionRow)) == 1
    finally:
        database.dispose()


def _open_row(drawing_id: uuid.UUID, session_id: uuid.UUID) -> PredictionRow:
    return PredictionRow(
        id=uuid.uuid4(), created_at=utcnow(), digit=1, confidence=0.5, probabilities=[0.1] * 10,
        status="ok", source="canvas", drawing_id=drawing_id, model_version="v", image_png=None,
        input_png=b"png", latency_ms=1.0, session_id=session_id, true_label=None,
        not_a_digit=False, labelled_at=None,
    )  # fmt: skip


def test_a_replacing_post_never_touches_a_labelled_row(settings: Settings) -> None:
    clear_database(settings.resolved_database_url)
    database = Database(settings.resolved_database_url)
    drawing_id, session_id = uuid.uuid4(), uuid.uuid4()
    try:
        with database.write() as session:
            first = crud.record_prediction(session, row=_open_row(drawing_id, session_id))
        labelled = False

        def label_between_select_and_update(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
            # A concurrent PATCH commits after the POST found the open row, before it replaces it.
            nonlocal labelled
            if statement.lstrip().upper().startswith("UPDATE PREDICTIONS") and not labelled:
                labelled = True
                with patcher.write() as other:
                    crud.set_label(other, prediction_id=first, true_label=4, labelled_at=utcnow())

        patcher = Database(settings.resolved_database_url)
        racing = not database.is_sqlite  # SQLite serialises writers: the window cannot open
        if racing:
            event.listen(database.engine, "before_cursor_execute", label_between_select_and_update)
        else:
            with patcher.write() as other:
                crud.set_label(other, prediction_id=first, true_label=4, labelled_at=utcnow())
        try:
            with database.write() as session:
                second = crud.record_prediction(session, row=_open_row(drawing_id, session_id))
        finally:
            if racing:
                event.remove(
                    database.engine, "before_cursor_execute", label_between_select_and_update
                )
            patcher.dispose()
        assert labelled or not racing
        assert second != first  # the labelled row kept; the new prediction has its own
        with database.read() as session:
            rows = {r.id: r for r in session.scalars(select(PredictionRow))}
        assert rows[first].true_label == 4 and rows[first].digit == 1
        assert rows[second].true_label is None
    finally:
        database.dispose()

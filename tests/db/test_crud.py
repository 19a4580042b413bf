"""The writes' promises that their callers build on."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import event

from digits.db import crud
from digits.db.migrate import upgrade_head
from digits.db.models import PredictionRow, utcnow
from digits.db.session import Database


def _row(drawing_id: uuid.UUID | None = None) -> PredictionRow:
    return PredictionRow(
        id=uuid.uuid4(), created_at=utcnow(), digit=4, confidence=0.9,
        probabilities=[0.1] * 10, status="ok", source="api", drawing_id=drawing_id,
        session_id=None, model_version="v", image_png=None, input_png=b"png", latency_ms=1.0,
    )  # fmt: skip


def test_a_prediction_without_a_drawing_is_one_statement(empty_database_url: str) -> None:
    """The store writes it with ``one_statement=True`` (PostgreSQL: autocommit), which is only
    as durable as a transaction if it really is one statement."""
    upgrade_head(empty_database_url)
    database = Database(empty_database_url)
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.startswith(("BEGIN", "SAVEPOINT")):
            statements.append(statement.split()[0])

    event.listen(database.engine, "before_cursor_execute", seen)
    try:
        with database.write(one_statement=True) as session:
            crud.record_prediction(session, row=_row())
        assert statements == ["INSERT"]
        statements.clear()
        with database.write() as session:  # with a drawing id it looks for an open one first
            crud.record_prediction(session, row=_row(uuid.uuid4()))
        assert statements[-1] == "INSERT" and len(statements) > 1
    finally:
        database.dispose()

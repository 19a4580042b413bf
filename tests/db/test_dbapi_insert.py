"""The hot insert path (crud.PredictionInsert on a DBAPI cursor) stores exactly what a Core
insert stores, on both databases, and its driver errors are SQLAlchemy's exceptions."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Connection, func, select, text
from sqlalchemy.exc import IntegrityError, OperationalError

from digits.db import crud
from digits.db.migrate import upgrade_head
from digits.db.models import PredictionRow
from digits.db.session import Database


def _new(**changes: Any) -> crud.NewPrediction:
    fields: dict[str, Any] = {
        "id": uuid.uuid4(),
        "created_at": datetime(2026, 3, 1, 12, 30, 5, tzinfo=UTC),  # no microseconds
        "digit": 7,
        "confidence": 0.875,
        "probabilities": [0.0125] * 8 + [0.025, 0.875],
        "status": "ok",
        "source": "canvas",
        "drawing_id": None,
        "model_version": "abc123",
        "image_png": b"\x89PNG\r\n\x1a\n\x00drawing",
        "input_png": b"\x89PNG\r\n\x1a\n\x00input",
        "latency_ms": 2.5,
    }
    return crud.NewPrediction(**{**fields, **changes})


@pytest.fixture
def database(empty_database_url: str) -> Iterator[Database]:
    upgrade_head(empty_database_url)
    database = Database(empty_database_url)
    yield database
    database.dispose()


def _dbapi(database: Database) -> AbstractContextManager[Any]:
    return database.dbapi_write() if database.is_sqlite else database.dbapi_autocommit()


def _stored(connection: Connection, prediction_id: uuid.UUID) -> dict[str, Any]:
    """The row as the database holds it: raw column values, as text where the type allows."""
    columns = [column.name for column in PredictionRow.__table__.columns if column.name != "id"]
    row = connection.execute(
        text(f"SELECT {', '.join(columns)} FROM predictions WHERE id = :id"),
        {"id": prediction_id.hex if connection.dialect.name == "sqlite" else prediction_id},
    ).one()
    return dict(zip(columns, row, strict=True))


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"created_at": datetime(2026, 3, 1, 23, 59, 59, 999999, tzinfo=UTC), "image_png": None},
        {"drawing_id": uuid.uuid4(), "status": "uncertain", "confidence": 0.3},
    ],
)
def test_dbapi_insert_stores_what_a_core_insert_stores(
    database: Database, changes: dict[str, Any]
) -> None:
    through_core = _new(**changes)
    through_dbapi = _new(**{**changes, "id": uuid.uuid4()})
    with database.write() as session:
        crud.record_prediction(session.connection(), new=through_core)
    with _dbapi(database) as cursor:
        crud.PredictionInsert(database.engine.dialect).execute(cursor, through_dbapi)

    with database.engine.connect() as connection:
        assert _stored(connection, through_dbapi.id) == _stored(connection, through_core.id)
    with database.read() as session:
        row = session.get(PredictionRow, through_dbapi.id)
        assert row is not None
        assert row.created_at == through_dbapi.created_at
        assert row.probabilities == through_dbapi.probabilities
        assert row.drawing_id == through_dbapi.drawing_id
        assert row.image_png == through_dbapi.image_png
        assert row.true_label is None and row.labelled_at is None


def test_dbapi_errors_are_sqlalchemy_errors_and_roll_back(database: Database) -> None:
    first = _new()
    insert = crud.PredictionInsert(database.engine.dialect)
    with _dbapi(database) as cursor:
        insert.execute(cursor, first)
    with pytest.raises(IntegrityError), _dbapi(database) as cursor:
        insert.execute(cursor, _new())  # committed on PostgreSQL (autocommit) ...
        insert.execute(cursor, first)  # ... but on SQLite rolled back with the duplicate
    with database.read() as session:
        count = session.scalar(select(func.count()).select_from(PredictionRow))
    assert count == (1 if database.is_sqlite else 2)
    # The connection went back to the pool in a usable state.
    with _dbapi(database) as cursor:
        insert.execute(cursor, _new())


def test_an_unreachable_database_is_an_operational_error(tmp_path: Any) -> None:
    database = Database(f"sqlite:///{tmp_path / 'missing' / 'digits.sqlite3'}")
    try:
        with pytest.raises(OperationalError), database.dbapi_write():
            pass
    finally:
        database.dispose()

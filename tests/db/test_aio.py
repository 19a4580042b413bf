"""The event loop's PostgreSQL writer: inserts when free, steps aside (sending nothing) when
busy or unreachable, and reports a connection lost mid-statement as a connection error."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from digits.db import aio, crud
from digits.db.migrate import upgrade_head
from digits.db.models import PredictionRow
from digits.db.session import Database, is_connection_error
from digits.db.testing import temporary_postgres_database

pytestmark = pytest.mark.postgres


def _new() -> crud.NewPrediction:
    return crud.NewPrediction(
        id=uuid.uuid4(), created_at=datetime.now(UTC), digit=3, confidence=0.9,
        probabilities=[0.01] * 9 + [0.91], status="ok", source="api", drawing_id=None,
        model_version="v", image_png=b"png", input_png=b"input", latency_ms=1.0,
    )  # fmt: skip


@pytest.fixture
def database(postgres_url: str) -> Iterator[Database]:
    with temporary_postgres_database(postgres_url) as url:
        upgrade_head(url)
        database = Database(url)
        yield database
        database.dispose()


def _count(database: Database) -> int:
    with database.read() as session:
        return session.scalar(select(func.count()).select_from(PredictionRow)) or 0


def test_inserts_and_steps_aside_while_busy(database: Database) -> None:
    insert = crud.PredictionInsert(database.engine.dialect)

    async def main() -> list[bool]:
        writer = aio.AsyncPostgresWriter(database.url)
        try:
            first = await writer.execute(insert.sql, insert.parameters(_new()))
            together = await asyncio.gather(
                *(writer.execute(insert.sql, insert.parameters(_new())) for _ in range(3))
            )
            duplicate = _new()
            await writer.execute(insert.sql, insert.parameters(duplicate))
            with pytest.raises(IntegrityError):  # a bug, not an outage: raised as such
                await writer.execute(insert.sql, insert.parameters(duplicate))
            return [first, *together]
        finally:
            await writer.aclose()

    first, *together = asyncio.run(main())
    assert first
    assert together.count(True) == 1  # one used the connection; the others sent nothing
    assert _count(database) == 3


def test_stores_what_a_core_insert_stores(database: Database) -> None:
    """Column by column, as the database holds it (JSON as its text): the writer's connection
    is not the engine's, yet it must serialise JSON as the engine does."""
    through_core = _new()
    through_writer = replace(through_core, id=uuid.uuid4())
    with database.write() as session:
        crud.record_prediction(session.connection(), new=through_core)
    insert = crud.PredictionInsert(database.engine.dialect)

    async def main() -> bool:
        writer = aio.AsyncPostgresWriter(database.url)
        try:
            return await writer.execute(insert.sql, insert.parameters(through_writer))
        finally:
            await writer.aclose()

    assert asyncio.run(main())
    columns = [column.name for column in PredictionRow.__table__.columns if column.name != "id"]
    query = text(f"SELECT {', '.join(f'CAST({c} AS TEXT)' for c in columns)} FROM predictions "
                 "WHERE id = :id")  # fmt: skip
    with database.engine.connect() as connection:
        core, written = (
            connection.execute(query, {"id": new.id}).one()
            for new in (through_core, through_writer)
        )
    assert dict(zip(columns, written, strict=True)) == dict(zip(columns, core, strict=True))


def test_a_lost_connection_is_a_connection_error_and_is_replaced(
    database: Database, postgres_url: str
) -> None:
    insert = crud.PredictionInsert(database.engine.dialect)

    async def main() -> None:
        writer = aio.AsyncPostgresWriter(database.url)
        try:
            assert await writer.execute(insert.sql, insert.parameters(_new()))
            assert writer._connection is not None
            pid = writer._connection.info.backend_pid
            admin = Database(postgres_url)
            with admin.engine.connect() as connection:
                connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            admin.dispose()
            with pytest.raises(DBAPIError) as lost:
                await writer.execute(insert.sql, insert.parameters(_new()))
            assert is_connection_error(lost.value)
            assert await writer.execute(insert.sql, insert.parameters(_new()))  # reconnected
        finally:
            await writer.aclose()

    asyncio.run(main())
    assert _count(database) == 2


def test_an_unreachable_server_sends_nothing_and_is_not_retried_at_once(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    unreachable = database.url.set(host="127.0.0.1", port=9)  # nothing listens on port 9
    insert = crud.PredictionInsert(database.engine.dialect)
    attempts = []
    connect = aio.psycopg.AsyncConnection.connect

    async def counted(*args: object, **kwargs: object) -> object:
        attempts.append(1)
        return await connect(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(aio.psycopg.AsyncConnection, "connect", counted)

    async def main() -> list[bool]:
        writer = aio.AsyncPostgresWriter(unreachable)
        return [await writer.execute(insert.sql, insert.parameters(_new())) for _ in range(3)]

    assert asyncio.run(main()) == [False, False, False]
    assert len(attempts) == 1  # then RETRY_AFTER_S of the thread path alone


def test_a_statement_interrupted_by_cancellation_leaves_a_usable_writer(
    database: Database,
) -> None:
    insert = crud.PredictionInsert(database.engine.dialect)

    async def main() -> bool:
        writer = aio.AsyncPostgresWriter(database.url)
        try:
            slow = asyncio.create_task(writer.execute("SELECT pg_sleep(2)", None))
            await asyncio.sleep(0.3)
            slow.cancel()  # as a server shutting down cancels its requests
            with pytest.raises(asyncio.CancelledError):
                await slow
            return await writer.execute(insert.sql, insert.parameters(_new()))
        finally:
            await writer.aclose()

    assert asyncio.run(main())
    assert _count(database) == 1

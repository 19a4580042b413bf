"""PostgreSQL's pool tests a connection that sat idle before handing it out, and replaces one
that died meanwhile (a server restart, an idle timeout), so the request does not fail."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from digits.db import session as db_session
from digits.db.session import Database
from digits.db.testing import temporary_postgres_database

pytestmark = pytest.mark.postgres


def _backend_pid(database: Database) -> int:
    with database.engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_a_connection_that_died_while_idle_is_replaced(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with temporary_postgres_database(postgres_url) as url:
        database, admin = Database(url), Database(postgres_url)
        try:
            first = _backend_pid(database)
            assert _backend_pid(database) == first  # one connection, reused
            with admin.engine.connect() as connection:
                connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
            monkeypatch.setattr(db_session, "PING_AFTER_IDLE_S", 0.0)  # it has been idle
            with database.write() as session:  # the write path: no error
                session.execute(text("SELECT 1"))
            assert _backend_pid(database) != first
        finally:
            database.dispose()
            admin.dispose()

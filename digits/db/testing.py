"""Throwaway databases for tests, benchmarks and the fault test (never used by the app)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text
from sqlalchemy.engine import URL

from digits.db.session import make_engine, normalize_url


@contextmanager
def temporary_postgres_database(
    admin_url: str | URL, *, prefix: str = "digits_test"
) -> Iterator[str]:
    """CREATE DATABASE <prefix>_<random> on the server ``admin_url`` names; drop it afterwards.

    Yields the new database's URL (psycopg 3 driver, password kept).
    """
    admin = normalize_url(admin_url)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    engine = make_engine(admin, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield admin.set(database=name).render_as_string(hide_password=False)
        finally:
            with engine.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()

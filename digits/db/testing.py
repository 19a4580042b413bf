"""Throwaway databases for tests, benchmarks and the fault test (never used by the app)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text
from sqlalchemy.engine import URL, make_url

from digits.db.session import make_engine, normalize_url


@contextmanager
def temporary_postgres_database(
    admin_url: str | URL, *, prefix: str = "digits_test"
) -> Iterator[str]:
    """CREATE DATABASE <prefix>_<random> on the server ``admin_url`` names; drop it afterwards.

    Yields the new database's URL (password kept).
    """
    as_given = make_url(admin_url) if isinstance(admin_url, str) else admin_url
    admin = normalize_url(admin_url)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    engine = make_engine(admin, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            # Same spelling as given (a plain postgresql:// stays plain), so callers exercise
            # the app's own driver selection.
            yield as_given.set(database=name).render_as_string(hide_password=False)
        finally:
            with engine.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()

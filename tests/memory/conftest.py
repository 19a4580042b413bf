"""A migrated database of each backend (SQLite always; PostgreSQL where one runs)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from digits.db.migrate import upgrade_head
from digits.db.session import Database
from digits.db.testing import temporary_postgres_database

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'digits.sqlite3'}"
        upgrade_head(url)
        db = Database(url)
        yield db
        db.dispose()
        return
    with temporary_postgres_database(request.getfixturevalue("postgres_url")) as url:
        upgrade_head(url)
        db = Database(url)
        yield db
        db.dispose()

"""A fresh database per backend: a temporary SQLite file, and a throwaway PostgreSQL database
(skipped locally, mandatory with CI=true, via the ``postgres_url`` fixture)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from digits.db.testing import temporary_postgres_database

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database (no tables) of each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'digits.sqlite3'}"
        return
    admin_url = request.getfixturevalue("postgres_url")
    with temporary_postgres_database(admin_url) as url:
        yield url

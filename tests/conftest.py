"""Shared fixtures: where MNIST lives, and the rule for tests that need outside services.

Locally a missing PostgreSQL or Chromium skips those tests with a visible reason; with CI=true
they are mandatory, so the same absence fails instead.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import CHROMIUM, POSTGRES_ADMIN_URL, SHARED_MNIST, postgres_reachable, require

from digits.db.session import Database
from digits.db.testing import migrated_database

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    path = Path(os.environ.get("DIGITS_MNIST_DIR", SHARED_MNIST))
    require((path / "t10k-images-idx3-ubyte.gz").exists(), f"no MNIST files in {path}")
    return path


@pytest.fixture(scope="session")
def postgres_url() -> str:
    require(postgres_reachable(), "PostgreSQL is not reachable at 127.0.0.1:5432")
    return POSTGRES_ADMIN_URL


@pytest.fixture(scope="session")
def chromium_path() -> str:
    require(shutil.which(CHROMIUM) is not None, f"Chromium is not installed at {CHROMIUM}")
    return CHROMIUM


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated database of each backend (SQLite always; PostgreSQL where one runs)."""
    server = None if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    with migrated_database(
        request.param, sqlite_file=tmp_path / "digits.sqlite3", postgres_admin_url=server
    ) as url:
        yield url


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database(database_url)
    yield db
    db.dispose()

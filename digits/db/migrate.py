"""Bring a database to the latest revision, safely when several processes start at once.

PostgreSQL: a session advisory lock around ``alembic upgrade head``, so concurrent replicas
queue and the later ones find nothing to do. SQLite: an exclusive file lock next to the file.
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.engine import URL

from digits.db.session import make_engine, normalize_url

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
# Any fixed 64-bit number; it only has to be the same for every process of this app.
ADVISORY_LOCK_KEY = 0x6469676974730001

logger = logging.getLogger(__name__)


def alembic_config() -> Config:
    """The package's Alembic configuration, built in code (no alembic.ini needed when installed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(url: str | URL) -> str | None:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _run(url: URL, action: str, revision: str) -> None:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                _run_with_advisory_lock(connection, action, revision)
            else:
                _run_alembic(connection, action, revision)
    finally:
        engine.dispose()


def _run_with_advisory_lock(connection: Connection, action: str, revision: str) -> None:
    connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
    connection.commit()
    try:
        _run_alembic(connection, action, revision)
    finally:
        connection.rollback()
        connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_LOCK_KEY})
        connection.commit()


def _run_alembic(connection: Connection, action: str, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    if action == "upgrade":
        command.upgrade(config, revision)
    else:
        command.downgrade(config, revision)
    connection.commit()


def _migrate(url: str | URL, action: str, revision: str) -> None:
    parsed = normalize_url(url)
    database = parsed.database
    if parsed.get_backend_name() == "sqlite" and database and database != ":memory:":
        db_path = Path(database)
        db_path.parent.mkdir(parents=True, exist_ok=True)
        with _file_lock(db_path.with_name(db_path.name + ".migrate.lock")):
            _run(parsed, action, revision)
    else:
        _run(parsed, action, revision)
    logger.info(
        "database migrated",
        extra={"action": action, "revision": revision, "url": parsed.render_as_string()},
    )


def upgrade_head(url: str | URL) -> None:
    """Create the database if it is a new SQLite file, and apply every pending revision."""
    _migrate(url, "upgrade", "head")


def downgrade_base(url: str | URL) -> None:
    """Undo every revision (tests and rollbacks; destroys the data)."""
    _migrate(url, "downgrade", "base")

"""Throwaway databases for tests, benchmarks and the fault test (never used by the app)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url

from digits import preprocess
from digits.db import crud
from digits.db.migrate import upgrade_head
from digits.db.models import PredictionRow, utcnow
from digits.db.session import Database, make_engine, normalize_url


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


@contextmanager
def migrated_database(
    backend: str, *, sqlite_file: Path, postgres_admin_url: str | None = None
) -> Iterator[str]:
    """The URL of a database at the migrations' head: the SQLite file ``sqlite_file``, or (with
    ``backend`` "postgres") a temporary database on the server ``postgres_admin_url`` names."""
    if backend == "sqlite":
        url = f"sqlite:///{sqlite_file}"
        upgrade_head(url)
        yield url
        return
    assert postgres_admin_url is not None, "a PostgreSQL database needs its server"
    with temporary_postgres_database(postgres_admin_url) as url:
        upgrade_head(url)
        yield url


def store_corrections(
    url: str,
    inputs: np.ndarray,
    labels: np.ndarray,
    sessions: Sequence[uuid.UUID | None],
    *,
    model_version: str = "test",
) -> None:
    """Labelled predictions of 28x28 ``inputs``, stored and labelled as the API stores them; a
    session of None is anonymous."""
    database = Database(url)
    try:
        with database.write() as session:
            for x, label, session_id in zip(inputs, labels, sessions, strict=True):
                row = PredictionRow(
                    id=uuid.uuid4(),
                    created_at=utcnow(),
                    digit=0,
                    confidence=1.0,
                    probabilities=[0.1] * 10,
                    status="ok",
                    source="canvas",
                    drawing_id=None,
                    model_version=model_version,
                    image_png=None,
                    input_png=preprocess.input_to_png(x),
                    latency_ms=1.0,
                    session_id=session_id,
                )
                crud.record_prediction(session, row=row)
                crud.set_label(
                    session, prediction_id=row.id, true_label=int(label), labelled_at=utcnow()
                )
    finally:
        database.dispose()

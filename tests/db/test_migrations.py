"""Alembic owns the schema: revisions go up from empty and back down, on both databases, match
the ORM models, and survive several processes migrating at once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from digits.db.migrate import (
    _migrate,
    current_revision,
    downgrade_base,
    head_revision,
    upgrade_head,
)
from digits.db.models import Base
from digits.db.session import make_engine, normalize_url


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_from_empty_then_downgrade_to_base(empty_database_url: str) -> None:
    assert current_revision(empty_database_url) is None
    upgrade_head(empty_database_url)
    assert current_revision(empty_database_url) == head_revision()
    assert "predictions" in _tables(empty_database_url)
    upgrade_head(empty_database_url)  # already at head: nothing to do, no error
    downgrade_base(empty_database_url)
    assert current_revision(empty_database_url) is None
    assert "predictions" not in _tables(empty_database_url)
    upgrade_head(empty_database_url)  # and up again: downgrade left nothing behind
    assert current_revision(empty_database_url) == head_revision()


def test_migrations_match_the_orm_models(empty_database_url: str) -> None:
    upgrade_head(empty_database_url)
    engine = make_engine(empty_database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            diff = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_indexes_serve_the_history_filters(empty_database_url: str) -> None:
    upgrade_head(empty_database_url)
    engine = make_engine(empty_database_url)
    try:
        indexed = {tuple(ix["column_names"]) for ix in inspect(engine).get_indexes("predictions")}
    finally:
        engine.dispose()
    assert {("created_at",), ("digit", "created_at"), ("true_label", "created_at")} <= indexed


def test_rows_stored_before_not_a_digit_existed_read_as_not_so_labelled(
    empty_database_url: str,
) -> None:
    _migrate(empty_database_url, "upgrade", "0002")
    engine = make_engine(empty_database_url)
    row = (
        "INSERT INTO predictions (id, created_at, digit, confidence, probabilities, status, "
        "source, model_version, input_png, true_label, latency_ms) VALUES ("
        "'00000000000000000000000000000001', '2026-01-01 00:00:00', 3, 0.9, '[]', 'ok', "
        "'api', 'v', :png, 3, 1.0)"
    )
    try:
        with engine.begin() as connection:
            connection.execute(text(row), {"png": b"png"})
        upgrade_head(empty_database_url)
        with engine.connect() as connection:
            stored = connection.execute(text("SELECT true_label, not_a_digit FROM predictions"))
            assert [tuple(r) for r in stored] == [(3, False)]
        _migrate(empty_database_url, "downgrade", "0002")
        assert "not_a_digit" not in {c["name"] for c in inspect(engine).get_columns("predictions")}
    finally:
        engine.dispose()


def test_concurrent_upgrades_are_serialised(empty_database_url: str) -> None:
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: upgrade_head(empty_database_url), range(4)))
    assert current_revision(empty_database_url) == head_revision()


def test_plain_postgresql_urls_use_psycopg3() -> None:
    assert normalize_url("postgresql://u@h:5432/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("sqlite:///x.db").drivername == "sqlite"

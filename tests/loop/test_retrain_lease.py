"""DIGITS_RETRAIN_AFTER's lease: one retraining at a time, whoever asks, on both databases."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from digits.db.migrate import upgrade_head
from digits.db.models import PredictionRow, RetrainLeaseRow, utcnow
from digits.db.session import Database
from digits.db.testing import temporary_postgres_database
from digits.loop import autoretrain


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
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


def add_corrections(database: Database, n: int) -> None:
    now = utcnow()
    with database.write() as session:
        for _ in range(n):
            session.add(
                PredictionRow(
                    id=uuid.uuid4(),
                    created_at=now,
                    digit=1,
                    confidence=0.9,
                    probabilities=[0.1] * 10,
                    status="ok",
                    source="canvas",
                    model_version="v",
                    input_png=b"",
                    true_label=1,
                    labelled_at=now,
                    latency_ms=1.0,
                )
            )


def test_the_lease_goes_to_one_holder_only_once_enough_corrections_arrived(
    database: Database,
) -> None:
    add_corrections(database, 4)
    with database.write() as session:
        assert not autoretrain.try_acquire(session, "a", after=5)  # 4 < 5
    add_corrections(database, 1)
    with database.write() as session:
        assert autoretrain.try_acquire(session, "a", after=5)
    with database.write() as session:
        assert not autoretrain.try_acquire(session, "b", after=5)  # held by a
    with database.write() as session:
        autoretrain.release(session, "a")
    with database.write() as session:
        # Free, but no new correction since a started: nothing is due.
        assert not autoretrain.try_acquire(session, "b", after=5)
    add_corrections(database, 5)
    with database.write() as session:
        assert autoretrain.try_acquire(session, "b", after=5)


def test_an_expired_lease_is_taken_over(database: Database) -> None:
    add_corrections(database, 3)
    with database.write() as session:
        assert autoretrain.try_acquire(session, "crashed", after=1)
    add_corrections(database, 3)
    with database.write() as session:
        session.execute(update(RetrainLeaseRow).values(expires_at=utcnow() - timedelta(seconds=1)))
    with database.write() as session:
        assert autoretrain.try_acquire(session, "next", after=1)
        assert session.get(RetrainLeaseRow, autoretrain.LEASE).holder == "next"  # type: ignore[union-attr]


def test_off_by_default(database: Database) -> None:
    add_corrections(database, 50)
    assert autoretrain.maybe_start(database, None) is None


def test_a_due_retraining_starts_one_niced_process(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[list[str]] = []
    monkeypatch.setattr(
        autoretrain.subprocess, "Popen", lambda command, **_: started.append(command)
    )
    add_corrections(database, 3)
    assert autoretrain.maybe_start(database, 5) is None
    add_corrections(database, 2)
    holder = autoretrain.maybe_start(database, 5)
    assert holder is not None
    assert autoretrain.maybe_start(database, 5) is None  # the first still holds the lease
    assert started == [[autoretrain.sys.executable, "-m", "digits.loop.autoretrain", holder]]

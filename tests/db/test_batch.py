"""Group commit: concurrent inserts share transactions, and one bad insert fails alone."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, event, func, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import IntegrityError

from digits.db import crud
from digits.db.batch import GroupCommitter
from digits.db.migrate import upgrade_head
from digits.db.models import PredictionRow, utcnow
from digits.db.session import Database


def _new(prediction_id: uuid.UUID | None = None) -> crud.NewPrediction:
    return crud.NewPrediction(
        id=prediction_id or uuid.uuid4(), created_at=utcnow(), digit=1, confidence=0.5,
        probabilities=[0.1] * 10, status="ok", source="api", drawing_id=None,
        model_version="v", image_png=b"img", input_png=b"in", latency_ms=1.0,
    )  # fmt: skip


def _count(database: Database) -> int:
    with database.read() as session:
        return session.scalar(select(func.count()).select_from(PredictionRow)) or 0


def test_concurrent_inserts_share_commits_and_bad_ones_fail_alone(empty_database_url: str) -> None:
    upgrade_head(empty_database_url)
    database = Database(empty_database_url)
    commits = []
    event.listen(database.engine, "commit", lambda conn: commits.append(1))
    gate = threading.Event()

    def write(session: Connection, new: crud.NewPrediction) -> uuid.UUID:
        gate.wait(5)  # hold the first leader so the others queue up behind it
        return crud.record_prediction(session, new=new)

    committer: GroupCommitter[crud.NewPrediction, uuid.UUID] = GroupCommitter(database, write)
    duplicate = uuid.uuid4()
    items = [_new() for _ in range(30)] + [_new(duplicate), _new(duplicate)]
    try:
        with ThreadPoolExecutor(16) as pool:
            futures = [pool.submit(committer.submit, item) for item in items]
            threading.Timer(0.3, gate.set).start()
            outcomes = []
            for future in futures:
                try:
                    outcomes.append(future.result(timeout=30))
                except IntegrityError:
                    outcomes.append(None)
        assert outcomes.count(None) == 1  # the second insert of the same id, and only it
        assert _count(database) == 31
        assert len(commits) < 31  # batched: fewer commits than rows
    finally:
        database.dispose()


def test_errors_reach_the_caller(empty_database_url: str) -> None:
    upgrade_head(empty_database_url)
    database = Database(empty_database_url)

    def boom(session: Connection, value: int) -> int:
        raise ValueError(value)

    try:
        with pytest.raises(ValueError):
            GroupCommitter(database, boom).submit(1)
    finally:
        database.dispose()


_SQLITE_INSERT = crud.PredictionInsert(sqlite.dialect())


def _insert(cursor: Any, new: crud.NewPrediction) -> uuid.UUID:
    _SQLITE_INSERT.execute(cursor, new)
    return new.id


def test_submit_now_writes_only_when_no_other_writer_holds_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'digits.sqlite3'}"
    upgrade_head(url)
    database, other_process = Database(url), Database(url)  # two lock files: as two workers
    committer: GroupCommitter[crud.NewPrediction, uuid.UUID] = GroupCommitter(
        database, _insert, transaction=Database.dbapi_write
    )
    try:
        first = _new()
        assert committer.submit_now(first) == (first.id,)

        with other_process.write():  # another worker's transaction holds the writer lock
            assert committer.submit_now(_new()) is None

        gate, entered = threading.Event(), threading.Event()

        def slow(cursor: Any, new: crud.NewPrediction) -> uuid.UUID:
            entered.set()
            gate.wait(5)
            return _insert(cursor, new)

        slow_committer: GroupCommitter[crud.NewPrediction, uuid.UUID] = GroupCommitter(
            database, slow, transaction=Database.dbapi_write
        )
        with ThreadPoolExecutor(1) as pool:
            leader = pool.submit(slow_committer.submit, _new())
            assert entered.wait(5)
            assert slow_committer.submit_now(_new()) is None  # a write of this process runs
            gate.set()
            leader.result(timeout=10)

        last = _new()
        assert committer.submit_now(last) == (last.id,)  # the locks were all given back
        assert _count(database) == 3
    finally:
        database.dispose()
        other_process.dispose()

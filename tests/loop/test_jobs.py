"""Retraining jobs: queued by labels (DIGITS_RETRAIN_AFTER) or an admin, one waiting at a time;
run by one trainer at a time under the lease, which a dead trainer loses; on both databases.
The trainer itself with a stand-in for the (slow, separately tested) retraining."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from digits.config import Settings
from digits.db import crud
from digits.db.models import PredictionRow, RetrainJobRow, RetrainLeaseRow, utcnow
from digits.db.session import Database
from digits.loop import jobs, trainer
from digits.loop import registry as registry_module


def add_corrections(database: Database, n: int) -> list[uuid.UUID]:
    """``n`` predictions, each then labelled as the API labels them; returns their ids."""
    ids = [uuid.uuid4() for _ in range(n)]
    with database.write() as session:
        for prediction_id in ids:
            session.add(
                PredictionRow(
                    id=prediction_id,
                    created_at=utcnow(),
                    digit=1,
                    confidence=0.9,
                    probabilities=[0.1] * 10,
                    status="ok",
                    source="canvas",
                    model_version="v",
                    input_png=b"",
                    latency_ms=1.0,
                )
            )
        session.flush()
        for prediction_id in ids:
            crud.set_label(session, prediction_id=prediction_id, true_label=1, labelled_at=utcnow())
    return ids


def relabel(database: Database, ids: list[uuid.UUID], label: int | None) -> None:
    with database.write() as session:
        for prediction_id in ids:
            crud.set_label(
                session, prediction_id=prediction_id, true_label=label, labelled_at=utcnow()
            )


def state(database: Database, job_id: uuid.UUID | None) -> tuple[str, float, str | None]:
    assert job_id is not None
    with database.read() as session:
        job = jobs.get(session, job_id)
        assert job is not None
        return job.state, job.progress, job.error


def test_labels_queue_one_job_at_a_time(database: Database) -> None:
    add_corrections(database, 50)
    assert jobs.enqueue_if_due(database, None) is None  # off by default
    first = jobs.enqueue_if_due(database, 5)
    assert first is not None and state(database, first) == ("queued", 0.0, None)
    add_corrections(database, 10)
    assert jobs.enqueue_if_due(database, 5) is None  # one is waiting: it will read these too
    with database.write() as session:
        assert jobs.enqueue(session, "admin") == first  # an admin gets the waiting one
    assert jobs.claim(database, "t") == first
    add_corrections(database, 4)
    assert jobs.enqueue_if_due(database, 5) is None  # 4 < 5 since it started
    add_corrections(database, 1)
    second = jobs.enqueue_if_due(database, 5)
    assert second not in (None, first)
    with database.read() as session:
        assert jobs.get(session, second).origin == "auto"  # type: ignore[union-attr]


def test_one_trainer_at_a_time_and_a_dead_one_loses_its_job(database: Database) -> None:
    with database.write() as session:
        first = jobs.enqueue(session, "admin")
    assert jobs.claim(database, "a") == first
    with database.write() as session:
        second = jobs.enqueue(session, "admin")
    assert jobs.claim(database, "b") is None  # a holds the lease
    jobs.report_progress(database, first, "a", 0.4)
    assert state(database, first) == ("running", 0.4, None)
    with database.write() as session:  # a died: its lease ran out
        session.execute(update(RetrainLeaseRow).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert jobs.claim(database, "b") == second
    assert state(database, first) == ("failed", 0.4, "its trainer stopped before the end")
    jobs.finish(database, second, "b", report={"decision": "skipped"})
    assert state(database, second) == ("done", 1.0, None)
    with database.read() as session:
        lease = session.get(RetrainLeaseRow, jobs.LEASE)
        assert lease is not None and lease.holder is None  # free for the next job


def test_progress_keeps_the_lease(database: Database) -> None:
    with database.write() as session:
        job = jobs.enqueue(session, "admin")
    assert jobs.claim(database, "a") == job
    with database.write() as session:
        session.execute(update(RetrainLeaseRow).values(expires_at=utcnow() + timedelta(seconds=1)))
    jobs.report_progress(database, job, "a", 0.5)
    with database.read() as session:
        lease = session.get(RetrainLeaseRow, jobs.LEASE)
        assert lease is not None and lease.expires_at is not None
        assert lease.expires_at > utcnow() + jobs.LEASE_TTL - timedelta(minutes=1)


def test_the_trainer_runs_queued_jobs_and_records_failures(
    database: Database,
    tmp_path: Path,
    make_checkpoint: Callable[[int], Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(registry_module, "SHIPPED_WEIGHTS", make_checkpoint(0))
    monkeypatch.setattr(trainer, "PROGRESS_EVERY_S", 0.0)
    url = database.url.render_as_string(hide_password=False)
    settings = Settings(data_dir=tmp_path / "data", database_url=url)
    seen: list[float] = []

    def retrain(_: Settings, __: Any, *, progress: Callable[[float], None]) -> dict[str, Any]:
        progress(0.5)
        seen.append(state(database, running)[1])
        if len(seen) == 2:
            raise RuntimeError("out of memory")
        return {"decision": "skipped", "promoted": False, "active": "v", "reasons": ["few"]}

    monkeypatch.setattr(trainer, "retrain", retrain)
    with database.write() as session:
        running = jobs.enqueue(session, "admin")
    assert trainer.serve_jobs(settings, once=True) == 0
    with database.read() as session:
        job = jobs.get(session, running)
        assert job is not None and (job.state, job.progress) == ("done", 1.0)
        assert job.report == {
            "decision": "skipped",
            "promoted": False,
            "active": "v",
            "reasons": ["few"],
        }
    with database.write() as session:
        running = jobs.enqueue(session, "auto")
    assert trainer.serve_jobs(settings, once=True) == 0
    assert state(database, running) == ("failed", 0.5, "RuntimeError: out of memory")
    assert seen == [0.5, 0.5]
    ready = tmp_path / "trainer.ready"
    ready.write_text("left by an earlier run")
    assert trainer.serve_jobs(settings, once=True, ready_file=ready) == 0  # nothing queued
    assert ready.exists() and ready.read_text() == "", "the ready file is made afresh"
    with database.read() as session:
        assert session.query(RetrainJobRow).count() == 2


def test_relabelling_the_same_rows_counts_each_row_once(database: Database) -> None:
    ids = add_corrections(database, 5)
    first = jobs.enqueue_if_due(database, 5)
    assert first is not None and jobs.claim(database, "t") == first
    jobs.finish(database, first, "t", report={})
    # Round after round of new labels on the same five rows: never a new retraining.
    for label in (2, 3, 4, None):
        relabel(database, ids, label)
        with database.read() as session:
            assert jobs.corrections_since(session, None) == 5
        assert jobs.enqueue_if_due(database, 5) is None
    add_corrections(database, 5)
    assert jobs.enqueue_if_due(database, 5) is not None

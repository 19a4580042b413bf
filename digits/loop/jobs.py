"""Retraining jobs in the database: the API queues them (an admin's request, or
``DIGITS_RETRAIN_AFTER=N`` new labels), `digits trainer` runs them, one at a time across every
replica and host. No torch here: the API imports this module.

The right to run is a lease row (``retrain_lease``) taken by a conditional UPDATE: it succeeds
for exactly one caller while the lease is free or expired, on SQLite and PostgreSQL alike, and
needs no lock held across the retraining. The trainer renews it as it reports progress; it
expires on its own if the trainer dies, and the job that trainer held is then marked failed.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from digits.db.models import PredictionRow, RetrainJobRow, RetrainLeaseRow, utcnow
from digits.db.session import Database
from digits.schemas import JobOrigin

log = logging.getLogger(__name__)

LEASE = "retrain"
LEASE_TTL = timedelta(minutes=30)  # renewed with every progress report


def corrections_since(session: Session, since: datetime | None) -> int:
    query = select(func.count()).select_from(PredictionRow)
    query = query.where(PredictionRow.first_labelled_at.is_not(None))
    if since is not None:
        query = query.where(PredictionRow.first_labelled_at > since)
    return int(session.scalar(query) or 0)


def _lease(session: Session) -> RetrainLeaseRow:
    """The lease row, locked until the transaction ends on PostgreSQL (SQLite's write
    transactions admit one writer already): whoever queues a job here is alone."""
    if session.get(RetrainLeaseRow, LEASE) is None:
        try:
            with session.begin_nested():
                session.execute(insert(RetrainLeaseRow).values(name=LEASE))
        except IntegrityError:
            pass  # another replica made it first
    lease = session.get(RetrainLeaseRow, LEASE, with_for_update=True, populate_existing=True)
    assert lease is not None
    return lease


def _queued(session: Session) -> RetrainJobRow | None:
    return session.scalars(
        select(RetrainJobRow)
        .where(RetrainJobRow.state == "queued")
        .order_by(RetrainJobRow.created_at)
        .limit(1)
    ).first()


def enqueue(session: Session, origin: JobOrigin) -> uuid.UUID:
    """Queue a retraining; the one already waiting, if any, instead of a second (it will read
    every correction there is when it starts)."""
    _lease(session)
    waiting = _queued(session)
    if waiting is not None:
        return waiting.id
    job = RetrainJobRow(
        id=uuid.uuid4(), origin=origin, state="queued", progress=0.0, created_at=utcnow()
    )
    session.add(job)
    session.flush()
    log.info("retraining queued", extra={"job_id": str(job.id), "origin": origin})
    return job.id


def enqueue_if_due(database: Database, after: int | None) -> uuid.UUID | None:
    """Called after a label is stored: queue a retraining once ``after`` labels arrived since
    the last one was queued or started. A database that is away only postpones the check to
    the next label."""
    if not after:
        return None
    try:
        with database.write() as session:
            lease = _lease(session)
            newest = session.scalar(select(func.max(RetrainJobRow.created_at)))
            since = max((t for t in (newest, lease.last_started_at) if t is not None), default=None)
            if _queued(session) is not None or corrections_since(session, since) < after:
                return None
            return enqueue(session, "auto")
    except OperationalError as exc:
        log.warning("retraining check skipped: the database is unreachable (%s)", exc)
        return None


def get(session: Session, job_id: uuid.UUID) -> RetrainJobRow | None:
    return session.get(RetrainJobRow, job_id)


def latest(session: Session, limit: int) -> list[RetrainJobRow]:
    """The most recent jobs, newest first."""
    newest = select(RetrainJobRow).order_by(RetrainJobRow.created_at.desc()).limit(limit)
    return list(session.scalars(newest))


def claim(database: Database, holder: str) -> uuid.UUID | None:
    """Take the lease and the oldest queued job, now running; None when nothing is queued or
    another trainer holds the lease. A job left running by a trainer whose lease expired is
    marked failed first."""
    now = utcnow()
    with database.write() as session:
        _lease(session)
        job = _queued(session)
        if job is None:
            return None
        taken = session.execute(
            update(RetrainLeaseRow)
            .where(RetrainLeaseRow.name == LEASE)
            .where(or_(RetrainLeaseRow.expires_at.is_(None), RetrainLeaseRow.expires_at < now))
            .values(holder=holder, expires_at=now + LEASE_TTL, last_started_at=now)
            .execution_options(synchronize_session=False)
        )
        if not taken.rowcount:  # type: ignore[attr-defined]
            return None
        session.execute(
            update(RetrainJobRow)
            .where(RetrainJobRow.state == "running")
            .values(state="failed", finished_at=now, error="its trainer stopped before the end")
            .execution_options(synchronize_session=False)
        )
        job.state, job.started_at = "running", now
        log.info("retraining started", extra={"job_id": str(job.id), "holder": holder})
        return job.id


def report_progress(database: Database, job_id: uuid.UUID, holder: str, progress: float) -> None:
    """Record ``progress`` (0-1) and keep the lease while the job runs."""
    with database.write() as session:
        session.execute(
            update(RetrainJobRow)
            .where(RetrainJobRow.id == job_id)
            .values(progress=min(max(progress, 0.0), 1.0))
            .execution_options(synchronize_session=False)
        )
        session.execute(
            update(RetrainLeaseRow)
            .where(RetrainLeaseRow.name == LEASE, RetrainLeaseRow.holder == holder)
            .values(expires_at=utcnow() + LEASE_TTL)
            .execution_options(synchronize_session=False)
        )


def finish(
    database: Database,
    job_id: uuid.UUID,
    holder: str,
    *,
    report: dict[str, object] | None = None,
    error: str | None = None,
) -> None:
    """The job is done (with its report) or failed (with its error); the lease is free again."""
    with database.write() as session:
        job = session.get(RetrainJobRow, job_id)
        assert job is not None
        job.state = "failed" if error is not None else "done"
        job.progress = job.progress if error is not None else 1.0
        job.finished_at, job.report, job.error = utcnow(), report, error
        session.execute(
            update(RetrainLeaseRow)
            .where(RetrainLeaseRow.name == LEASE, RetrainLeaseRow.holder == holder)
            .values(holder=None, expires_at=None)
            .execution_options(synchronize_session=False)
        )

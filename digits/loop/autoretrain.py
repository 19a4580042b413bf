"""``DIGITS_RETRAIN_AFTER=N``: after N new corrections since the last retraining, one retraining
runs, in a separate niced process, one at a time across every replica.

The right to run is a lease row (``retrain_lease``) taken by a conditional UPDATE: it succeeds
for exactly one caller while the lease is free or expired, on SQLite and PostgreSQL alike, and
needs no lock held across the retraining. The lease expires on its own if the retraining process
dies, so a crash never blocks the loop for good.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import uuid
from datetime import datetime, timedelta

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from digits.db.models import PredictionRow, RetrainLeaseRow, utcnow
from digits.db.session import Database

log = logging.getLogger(__name__)

LEASE = "retrain"
LEASE_TTL = timedelta(minutes=30)  # far longer than a retraining takes on two cores
NICE = 10


def corrections_since(session: Session, since: datetime | None) -> int:
    query = select(func.count()).select_from(PredictionRow)
    query = query.where(PredictionRow.labelled_at.is_not(None))
    if since is not None:
        query = query.where(PredictionRow.labelled_at > since)
    return int(session.scalar(query) or 0)


def _ensure_row(session: Session) -> None:
    if session.get(RetrainLeaseRow, LEASE) is None:
        try:
            with session.begin_nested():
                session.execute(insert(RetrainLeaseRow).values(name=LEASE))
        except IntegrityError:
            pass  # another replica made it first


def try_acquire(session: Session, holder: str, after: int) -> bool:
    """Take the lease if it is free and ``after`` corrections arrived since the last start."""
    _ensure_row(session)
    lease = session.get(RetrainLeaseRow, LEASE)
    assert lease is not None
    if corrections_since(session, lease.last_started_at) < after:
        return False
    now = utcnow()
    taken = session.execute(
        update(RetrainLeaseRow)
        .where(RetrainLeaseRow.name == LEASE)
        .where(or_(RetrainLeaseRow.expires_at.is_(None), RetrainLeaseRow.expires_at < now))
        .where(
            RetrainLeaseRow.last_started_at.is_(None)
            if lease.last_started_at is None
            else RetrainLeaseRow.last_started_at == lease.last_started_at
        )
        .values(holder=holder, expires_at=now + LEASE_TTL, last_started_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(taken.rowcount)  # type: ignore[attr-defined]


def release(session: Session, holder: str) -> None:
    session.execute(
        update(RetrainLeaseRow)
        .where(RetrainLeaseRow.name == LEASE, RetrainLeaseRow.holder == holder)
        .values(holder=None, expires_at=None)
        .execution_options(synchronize_session=False)
    )


def maybe_start(database: Database, after: int | None) -> str | None:
    """Called after a correction is stored: start a retraining if one is due (its own short
    transaction takes the lease); returns the lease holder id when one was started."""
    if not after:
        return None
    holder = uuid.uuid4().hex
    with database.write() as session:
        if not try_acquire(session, holder, after):
            return None
    subprocess.Popen(
        [sys.executable, "-m", "digits.loop.autoretrain", holder],
        preexec_fn=lambda: os.nice(NICE),
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    log.info("retraining started in the background (lease %s)", holder)
    return holder


def start_if_due(database: Database, after: int) -> None:
    """``maybe_start`` for the API's background task: a database that is away (the correction
    went to the spool) only postpones the check to the next correction."""
    try:
        maybe_start(database, after)
    except OperationalError as exc:
        log.warning("retraining check skipped: the database is unreachable (%s)", exc)


def _run(holder: str) -> int:
    """The background process: `digits retrain`, then give the lease back."""
    from digits.config import get_settings
    from digits.loop.retrain import Options, retrain

    settings = get_settings()
    try:
        retrain(settings, Options(mnist_dir=settings.mnist_dir))
    finally:
        database = Database(settings.resolved_database_url)
        try:
            with database.write() as session:
                release(session, holder)
        finally:
            database.dispose()
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    sys.exit(_run(sys.argv[1]) if len(sys.argv) > 1 else 2)

"""Writes and reads on server-issued sessions. Session first, everything else keyword-only.

Callers own the transaction (``Database.write()`` / ``Database.read()``); nothing here commits.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, bindparam, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from digits.db.models import NumberRow, PredictionRow, SessionRow

# last_seen_at is written at most this often per session: expiry is counted in days, and a
# write on every request would double the hot path's statements.
TOUCH_INTERVAL = timedelta(hours=1)
# Every request with a token reads this: built once, so SQLAlchemy reuses its compiled form.
_STANDING = select(
    SessionRow.last_seen_at, SessionRow.deleted_at, SessionRow.memory_generation
).where(SessionRow.id == bindparam("session_id"))


class Standing(enum.Enum):
    VALID = "valid"
    EXPIRED = "expired"
    DELETED = "deleted"


@dataclass(frozen=True)
class Checked:
    standing: Standing
    record_use: bool  # whether the use should be recorded (``use``)
    memory_generation: int  # SessionRow.memory_generation: 0 for a session never used


def standing(
    connection: Connection | Session,
    *,
    session_id: uuid.UUID,
    issued_at: datetime,
    now: datetime,
    ttl: timedelta,
) -> Checked:
    """Whether the session may act, whether its use should be recorded, and its memory's
    generation."""
    found = connection.execute(_STANDING, {"session_id": session_id}).first()
    if found is None:  # never used since it was issued (maybe while the database was down)
        if issued_at + ttl < now:
            return Checked(Standing.EXPIRED, False, 0)
        return Checked(Standing.VALID, True, 0)
    last_seen_at, deleted_at, generation = found
    if deleted_at is not None:
        return Checked(Standing.DELETED, False, generation)
    if last_seen_at + ttl < now:
        return Checked(Standing.EXPIRED, False, generation)
    return Checked(Standing.VALID, now - last_seen_at >= TOUCH_INTERVAL, generation)


def memory_changed(session: Session, *, session_id: uuid.UUID) -> None:
    """The session's memory changed: its generation grows (nothing for a session without a row,
    which no token can act as)."""
    session.execute(
        update(SessionRow)
        .where(SessionRow.id == session_id)
        .values(memory_generation=SessionRow.memory_generation + 1)
    )


def deleted_among(
    connection: Connection | Session, session_ids: Iterable[uuid.UUID]
) -> set[uuid.UUID]:
    """Which of ``session_ids`` were deleted (their rows, and any that arrive later, are not
    kept)."""
    wanted = set(session_ids)
    if not wanted:
        return set()
    found = connection.execute(
        select(SessionRow.id).where(SessionRow.id.in_(wanted), SessionRow.deleted_at.is_not(None))
    )
    return set(found.scalars())


def use(session: Session, *, session_id: uuid.UUID, issued_at: datetime, now: datetime) -> None:
    """Record that the session was used now (its first use creates its row)."""
    touched = session.execute(
        update(SessionRow)
        .where(SessionRow.id == session_id, SessionRow.deleted_at.is_(None))
        .values(last_seen_at=now)
    )
    if touched.rowcount:  # type: ignore[attr-defined]
        return
    try:
        with session.begin_nested():
            session.add(SessionRow(id=session_id, created_at=issued_at, last_seen_at=now))
    except IntegrityError:
        pass  # a concurrent first use (or a deletion) made the row


def delete_session(session: Session, *, session_id: uuid.UUID, now: datetime) -> bool:
    """Delete the session's predictions and numbers (with their digits) and refuse its token
    from now on. False when nothing is known of it: no live session and no rows."""
    deleted = 0
    for model in (PredictionRow, NumberRow):
        result = session.execute(delete(model).where(model.session_id == session_id))
        deleted += int(result.rowcount or 0)  # type: ignore[attr-defined]
    row = session.get(SessionRow, session_id)
    live = row is not None and row.deleted_at is None
    if row is None and deleted:
        session.add(SessionRow(id=session_id, created_at=now, last_seen_at=now, deleted_at=now))
    elif row is not None and live:
        row.deleted_at = now
    session.flush()
    return live or deleted > 0


def activity(session: Session, *, session_id: uuid.UUID) -> tuple[int, int]:
    """How many predictions the session made, and how many of them are labelled."""
    labelled = or_(PredictionRow.true_label.is_not(None), PredictionRow.not_a_digit.is_(True))
    drawings, labelled_count = session.execute(
        select(func.count(), func.count().filter(labelled)).where(
            PredictionRow.session_id == session_id
        )
    ).one()
    return int(drawings), int(labelled_count)

"""Writes and reads on written numbers, each with its digits as prediction rows (``number_id``,
``position``, ``box``). Session first, everything else keyword-only; callers own the
transaction."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, and_, delete, exists, func, insert, select, update
from sqlalchemy.orm import Session, defer

from digits.db.crud import UNLABELLED, label_row, lock_drawing
from digits.db.models import NumberRow, PredictionRow
from digits.schemas import NumberFilter

_INSERT_NUMBER = insert(cast(Table, NumberRow.__table__))
_INSERT_DIGIT = insert(cast(Table, PredictionRow.__table__))
_LABELLED_DIGIT = exists().where(PredictionRow.number_id == NumberRow.id, ~UNLABELLED)
# Neither the number nor any of its digits is labelled: what a later reading may replace.
OPEN = and_(NumberRow.true_number.is_(None), NumberRow.not_a_number.is_(False), ~_LABELLED_DIGIT)
_LABELLED = NumberRow.true_number.is_not(None) | NumberRow.not_a_number.is_(True)


def owned_by(owner: uuid.UUID | None) -> list[ColumnElement[bool]]:
    """The numbers a caller may see and change: a session's own, or all (``None``: the admin)."""
    return [] if owner is None else [NumberRow.session_id == owner]


def _columns(row: Any, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    return {c.key: getattr(row, c.key) for c in row.__table__.columns if c.key not in skip}


def _content(row: NumberRow) -> dict[str, Any]:
    return _columns(row, NumberRow.IDENTITY | NumberRow.LABEL)


def _insert_digits(session: Session, row: NumberRow) -> None:
    for digit in row.digits:
        digit.number_id = row.id
    if row.digits:
        session.execute(_INSERT_DIGIT, [_columns(digit) for digit in row.digits])


def record_number(session: Session, *, row: NumberRow) -> uuid.UUID:
    """Insert ``row`` and its digits, or replace the open number of the same drawing of the
    same session (keeping its id, the digits new). Returns the id it is stored under."""
    if row.drawing_id is not None:
        lock_drawing(session, row.drawing_id)
        existing = session.scalar(
            select(NumberRow.id)
            .where(
                NumberRow.drawing_id == row.drawing_id,
                NumberRow.session_id == row.session_id,
                OPEN,
            )
            .order_by(NumberRow.created_at.desc())
            .limit(1)
        )
        if existing is not None:
            # OPEN again in the UPDATE: a correction committed since the SELECT keeps its row.
            replaced = session.execute(
                update(NumberRow).where(NumberRow.id == existing, OPEN).values(**_content(row))
            )
            if replaced.rowcount:  # type: ignore[attr-defined]
                session.execute(delete(PredictionRow).where(PredictionRow.number_id == existing))
                row.id = existing
                _insert_digits(session, row)
                return existing
    session.execute(_INSERT_NUMBER, _columns(row))
    _insert_digits(session, row)
    return row.id


def upsert_number(session: Session, *, row: NumberRow) -> None:
    """Replay of a spooled number: insert by id if absent, else replace it while open.
    Idempotent, as the spool's replay must be."""
    found = session.scalar(select(OPEN).select_from(NumberRow).where(NumberRow.id == row.id))
    if found is None:
        session.execute(_INSERT_NUMBER, _columns(row))
    elif found:
        session.execute(update(NumberRow).where(NumberRow.id == row.id).values(**_content(row)))
        session.execute(delete(PredictionRow).where(PredictionRow.number_id == row.id))
    else:
        return
    _insert_digits(session, row)


def get_number(
    session: Session, *, number_id: uuid.UUID, owner: uuid.UUID | None = None
) -> NumberRow | None:
    return session.scalars(
        select(NumberRow)
        .options(defer(NumberRow.image_png), defer(NumberRow.strokes))
        .where(NumberRow.id == number_id, *owned_by(owner))
    ).first()


def label_number(row: NumberRow, true_number: str | None, labelled_at: datetime) -> None:
    """The number written (None: no number at all). One of the read number's length labels
    each digit too; any other answer is the number's alone, and withdraws earlier digit
    labels, which it contradicts."""
    row.true_number = true_number
    row.not_a_number = true_number is None
    row.labelled_at = labelled_at
    fits = true_number is not None and len(true_number) == len(row.digits)
    for index, digit in enumerate(row.digits):
        if fits:
            assert true_number is not None  # narrowed by fits
            label_row(digit, int(true_number[index]), labelled_at)
        elif digit.labelled_at is not None:
            digit.true_label, digit.not_a_digit, digit.labelled_at = None, False, None


def set_number_label(
    session: Session,
    *,
    number_id: uuid.UUID,
    true_number: str | None,
    labelled_at: datetime,
    owner: uuid.UUID | None = None,
) -> NumberRow | None:
    """Record or change the correction; None when the number does not exist (or is not
    ``owner``'s)."""
    row = get_number(session, number_id=number_id, owner=owner)
    if row is None:
        return None
    label_number(row, true_number, labelled_at)
    session.flush()
    return row


def apply_spooled_label(
    session: Session, *, number_id: uuid.UUID, true_number: str | None, labelled_at: datetime
) -> bool | None:
    """Replay of a spooled correction; a newer one already stored wins. None when the number
    is not (yet) in the database, else whether it changed."""
    row = get_number(session, number_id=number_id)
    if row is None:
        return None
    if row.labelled_at is not None and row.labelled_at > labelled_at:
        return False
    label_number(row, true_number, labelled_at)
    session.flush()
    return True


def get_png(
    session: Session, *, number_id: uuid.UUID, owner: uuid.UUID | None = None
) -> bytes | None:
    """The stored drawing (None once retention dropped it); LookupError for an unknown number
    (or one that is not ``owner``'s)."""
    found = session.execute(
        select(NumberRow.image_png).where(NumberRow.id == number_id, *owned_by(owner))
    ).first()
    if found is None:
        raise LookupError(number_id)
    return found[0]


def _filters(query: NumberFilter) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = []
    if query.status is not None:
        clauses.append(NumberRow.status == query.status)
    if query.outcome == "correct":
        clauses.append(NumberRow.true_number == NumberRow.number)
    elif query.outcome == "wrong":
        clauses.append(
            and_(NumberRow.true_number.is_not(None), NumberRow.true_number != NumberRow.number)
        )
    elif query.outcome == "unlabelled":
        clauses.append(~_LABELLED)
    elif query.outcome == "labelled":
        clauses.append(_LABELLED)
    if query.since is not None:
        clauses.append(NumberRow.created_at >= query.since)
    if query.until is not None:
        clauses.append(NumberRow.created_at < query.until)
    return clauses


def list_numbers(
    session: Session, *, query: NumberFilter, owner: uuid.UUID | None = None
) -> tuple[list[NumberRow], int]:
    """A page of ``owner``'s numbers (None: everyone's), newest first, and how many match."""
    clauses = owned_by(owner) + _filters(query)
    total = session.scalar(select(func.count()).select_from(NumberRow).where(*clauses)) or 0
    rows = session.scalars(
        select(NumberRow)
        .options(defer(NumberRow.image_png), defer(NumberRow.strokes))
        .where(*clauses)
        .order_by(NumberRow.created_at.desc(), NumberRow.id.desc())
        .limit(query.limit)
        .offset(query.offset)
    ).all()
    return list(rows), total


def stats(session: Session) -> dict[str, Any]:
    """Whole-number accuracy: of the numbers given their true number, how many were read
    right whole."""
    total, labelled, correct = session.execute(
        select(
            func.count(),
            func.count().filter(NumberRow.true_number.is_not(None)),
            func.count().filter(NumberRow.true_number == NumberRow.number),
        ).select_from(NumberRow)
    ).one()
    return {
        "numbers": total,
        "numbers_labelled": labelled,
        "numbers_correct": correct,
        "number_accuracy": correct / labelled if labelled else None,
    }

"""Writes on predictions, and reading one back. Session first, everything else keyword-only.
Browsing and statistics are in ``digits.db.queries``.

Callers own the transaction (``Database.write()`` / ``Database.read()``); nothing here commits.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    Table,
    and_,
    delete,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session, defer

from digits.db.models import NumberRow, PredictionRow

# Built once, parameters passed beside it: SQLAlchemy then reuses both its cache key and its
# compiled form. On the table rather than the mapped class: a plain Core insert, without the
# ORM's unit of work, which costs 0.1-0.4 ms more CPU per prediction (trick_bench.py).
_INSERT_PREDICTION = insert(cast(Table, PredictionRow.__table__))
# Neither a digit label nor "not a digit": what a later prediction of the drawing may replace.
UNLABELLED = and_(PredictionRow.true_label.is_(None), PredictionRow.not_a_digit.is_(False))


def owned_by(owner: uuid.UUID | None) -> list[ColumnElement[bool]]:
    """The rows a caller may see and change: a session's own, or every row (``None``: the
    admin). Every query on a caller's behalf is scoped by it."""
    return [] if owner is None else [PredictionRow.session_id == owner]


def lock_drawing(session: Session | Connection, drawing_id: uuid.UUID) -> None:
    # Two POSTs of the same drawing must not both insert. SQLite writers are already serialised
    # (BEGIN IMMEDIATE); PostgreSQL gets a transaction-scoped advisory lock on the drawing.
    bind = session.get_bind() if isinstance(session, Session) else session
    if bind.dialect.name == "postgresql":
        key = int.from_bytes(drawing_id.bytes[:8], "big", signed=True)
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def record_prediction(session: Session | Connection, *, row: PredictionRow) -> uuid.UUID:
    """Insert ``row``, or replace the open prediction of the same drawing (keeping its id).

    Returns the id the prediction is stored under. A Core INSERT in the session: this is the
    hot path, and the ORM's unit of work would cost more than the statement itself.
    """
    if row.drawing_id is not None:
        lock_drawing(session, row.drawing_id)
        mine = PredictionRow.session_id == row.session_id  # another session's row is not ours
        existing = session.scalar(
            select(PredictionRow.id)
            .where(PredictionRow.drawing_id == row.drawing_id, mine, UNLABELLED)
            .order_by(PredictionRow.created_at.desc())
            .limit(1)
        )
        if existing is not None:
            # UNLABELLED again in the UPDATE itself: a correction committed since the SELECT
            # (a concurrent PATCH) keeps its row, and this prediction gets a row of its own.
            replaced = session.execute(
                update(PredictionRow)
                .where(PredictionRow.id == existing, UNLABELLED)
                .values(**row.content())
            )
            if replaced.rowcount:  # type: ignore[attr-defined]
                return existing
    session.execute(
        _INSERT_PREDICTION, {"id": row.id, "drawing_id": row.drawing_id, **row.content()}
    )
    return row.id


def upsert_prediction(session: Session, *, row: PredictionRow) -> bool:
    """Replay of a spooled prediction: insert by id if absent, else refresh an unlabelled row.

    Idempotent, so a spool replayed twice (a crash between commit and truncation) changes nothing.
    Returns True when a row was inserted.
    """
    existing = session.get(PredictionRow, row.id)
    if existing is None:
        session.add(row)
        session.flush()
        return True
    if existing.true_label is None and not existing.not_a_digit:
        for key, value in row.content().items():
            setattr(existing, key, value)
        session.flush()
    return False


def get_prediction(
    session: Session, *, prediction_id: uuid.UUID, owner: uuid.UUID | None = None
) -> PredictionRow | None:
    return session.scalars(
        select(PredictionRow)
        .options(defer(PredictionRow.image_png), defer(PredictionRow.input_png))
        .where(PredictionRow.id == prediction_id, *owned_by(owner))
    ).first()


def label_row(row: PredictionRow, true_label: int | None, labelled_at: datetime) -> None:
    row.true_label = true_label
    row.not_a_digit = true_label is None
    row.labelled_at = labelled_at
    if row.first_labelled_at is None:
        row.first_labelled_at = labelled_at


def set_label(
    session: Session,
    *,
    prediction_id: uuid.UUID,
    true_label: int | None,
    labelled_at: datetime,
    owner: uuid.UUID | None = None,
) -> PredictionRow | None:
    """Record or change the correction: a digit, or None for "not a digit". None when the
    prediction does not exist (or is not ``owner``'s)."""
    row = get_prediction(session, prediction_id=prediction_id, owner=owner)
    if row is None:
        return None
    label_row(row, true_label, labelled_at)
    session.flush()
    return row


def apply_spooled_label(
    session: Session, *, prediction_id: uuid.UUID, true_label: int | None, labelled_at: datetime
) -> bool | None:
    """Replay of a spooled correction; a newer correction already stored wins.

    Returns None when the prediction is not (yet) in the database, else whether it changed.
    """
    row = get_prediction(session, prediction_id=prediction_id)
    if row is None:
        return None
    if row.labelled_at is not None and row.labelled_at > labelled_at:
        return False
    label_row(row, true_label, labelled_at)
    session.flush()
    return True


def delete_all(session: Session) -> int:
    """Delete every prediction and every number; how many rows of both went."""
    deleted = 0
    for model in (PredictionRow, NumberRow):
        result = session.execute(delete(model))
        deleted += int(result.rowcount or 0)  # type: ignore[attr-defined]
    return deleted


def purge_images(session: Session, *, older_than: datetime | None = None) -> int:
    """Drop stored drawings of predictions and numbers (all, or those created before
    ``older_than``); keep inputs and labels. How many drawings went."""
    purged = 0
    for model in (PredictionRow, NumberRow):
        statement = update(model).where(model.image_png.is_not(None))
        if older_than is not None:
            statement = statement.where(model.created_at < older_than)
        result = session.execute(statement.values(image_png=None))
        purged += int(result.rowcount or 0)  # type: ignore[attr-defined]
    return purged

"""Queries and writes on predictions. Session first, everything else keyword-only.

Callers own the transaction (``Database.write()`` / ``Database.read()``); nothing here commits.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    delete,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session, defer

from digits.db.models import PredictionRow
from digits.schemas import Outcome, Status

ImageKind = Literal["image", "input"]
RELIABILITY_BINS = 10
# Built once, parameters passed beside it: SQLAlchemy then reuses both its cache key and its
# compiled form. On the table rather than the mapped class: a plain Core insert, without the
# ORM's bulk-insert bookkeeping that this one-row hot path does not need.
_INSERT_PREDICTION = insert(PredictionRow.__table__)
# Neither a digit label nor "not a digit": what a later prediction of the drawing may replace.
_UNLABELLED = and_(PredictionRow.true_label.is_(None), PredictionRow.not_a_digit.is_(False))


@dataclass(frozen=True)
class NewPrediction:
    """Everything a prediction row holds before any correction."""

    id: uuid.UUID
    created_at: datetime
    digit: int
    confidence: float
    probabilities: list[float]
    status: str
    source: str
    drawing_id: uuid.UUID | None
    model_version: str
    image_png: bytes | None
    input_png: bytes
    latency_ms: float
    session_id: uuid.UUID | None = None

    def content(self) -> dict[str, Any]:
        """The columns a later prediction of the same drawing replaces (all but id/drawing)."""
        return {
            "created_at": self.created_at,
            "digit": self.digit,
            "confidence": self.confidence,
            "probabilities": self.probabilities,
            "status": self.status,
            "source": self.source,
            "model_version": self.model_version,
            "image_png": self.image_png,
            "input_png": self.input_png,
            "latency_ms": self.latency_ms,
            "session_id": self.session_id,
        }


def _lock_drawing(session: Session | Connection, drawing_id: uuid.UUID) -> None:
    # Two POSTs of the same drawing must not both insert. SQLite writers are already serialised
    # (BEGIN IMMEDIATE); PostgreSQL gets a transaction-scoped advisory lock on the drawing.
    bind = session.get_bind() if isinstance(session, Session) else session
    if bind.dialect.name == "postgresql":
        key = int.from_bytes(drawing_id.bytes[:8], "big", signed=True)
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def record_prediction(session: Session | Connection, *, new: NewPrediction) -> uuid.UUID:
    """Insert ``new``, or replace the open prediction of the same drawing (keeping its id).

    Returns the id the prediction is stored under. A Core INSERT in the session: this is the
    hot path, and the ORM's unit of work would cost more than the statement itself.
    """
    if new.drawing_id is not None:
        _lock_drawing(session, new.drawing_id)
        existing = session.scalar(
            select(PredictionRow.id)
            .where(PredictionRow.drawing_id == new.drawing_id, _UNLABELLED)
            .order_by(PredictionRow.created_at.desc())
            .limit(1)
        )
        if existing is not None:
            session.execute(
                update(PredictionRow).where(PredictionRow.id == existing).values(**new.content())
            )
            return existing
    session.execute(
        _INSERT_PREDICTION, {"id": new.id, "drawing_id": new.drawing_id, **new.content()}
    )
    return new.id


def upsert_prediction(session: Session, *, new: NewPrediction) -> bool:
    """Replay of a spooled prediction: insert by id if absent, else refresh an unlabelled row.

    Idempotent, so a spool replayed twice (a crash between commit and truncation) changes nothing.
    Returns True when a row was inserted.
    """
    existing = session.get(PredictionRow, new.id)
    if existing is None:
        session.add(PredictionRow(id=new.id, drawing_id=new.drawing_id, **new.content()))
        session.flush()
        return True
    if existing.true_label is None and not existing.not_a_digit:
        for key, value in new.content().items():
            setattr(existing, key, value)
        session.flush()
    return False


def get_prediction(session: Session, *, prediction_id: uuid.UUID) -> PredictionRow | None:
    return session.scalars(
        select(PredictionRow)
        .options(defer(PredictionRow.image_png), defer(PredictionRow.input_png))
        .where(PredictionRow.id == prediction_id)
    ).first()


def _label(row: PredictionRow, true_label: int | None, labelled_at: datetime) -> None:
    row.true_label = true_label
    row.not_a_digit = true_label is None
    row.labelled_at = labelled_at


def set_label(
    session: Session, *, prediction_id: uuid.UUID, true_label: int | None, labelled_at: datetime
) -> PredictionRow | None:
    """Record or change the correction: a digit, or None for "not a digit". None when the
    prediction does not exist."""
    row = get_prediction(session, prediction_id=prediction_id)
    if row is None:
        return None
    _label(row, true_label, labelled_at)
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
    _label(row, true_label, labelled_at)
    session.flush()
    return True


def get_png(session: Session, *, prediction_id: uuid.UUID, kind: ImageKind) -> bytes | None:
    """The stored drawing or 28x28 input; raises LookupError for an unknown prediction."""
    column = PredictionRow.image_png if kind == "image" else PredictionRow.input_png
    found = session.execute(select(column).where(PredictionRow.id == prediction_id)).first()
    if found is None:
        raise LookupError(prediction_id)
    return found[0]


def _filters(
    *,
    digit: int | None,
    true_label: int | None,
    outcome: Outcome | None,
    status: Status | None,
    not_a_digit: bool | None,
    since: datetime | None,
    until: datetime | None,
    session_id: uuid.UUID | None = None,
) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = []
    if session_id is not None:
        clauses.append(PredictionRow.session_id == session_id)
    if digit is not None:
        clauses.append(PredictionRow.digit == digit)
    if true_label is not None:
        clauses.append(PredictionRow.true_label == true_label)
    if status is not None:
        clauses.append(PredictionRow.status == status)
    if not_a_digit is not None:
        clauses.append(PredictionRow.not_a_digit.is_(not_a_digit))
    if outcome == "correct":
        clauses.append(PredictionRow.true_label == PredictionRow.digit)
    elif outcome == "wrong":
        clauses.append(
            and_(
                PredictionRow.true_label.is_not(None),
                PredictionRow.true_label != PredictionRow.digit,
            )
        )
    elif outcome == "unlabelled":
        clauses.append(_UNLABELLED)
    elif outcome == "labelled":
        clauses.append(~_UNLABELLED)
    if since is not None:
        clauses.append(PredictionRow.created_at >= since)
    if until is not None:
        clauses.append(PredictionRow.created_at < until)
    return clauses


def list_predictions(
    session: Session,
    *,
    limit: int,
    offset: int,
    digit: int | None = None,
    true_label: int | None = None,
    outcome: Outcome | None = None,
    status: Status | None = None,
    not_a_digit: bool | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    session_id: uuid.UUID | None = None,
) -> tuple[list[PredictionRow], int]:
    """A page of predictions, newest first, and how many match in all. ``not_a_digit``: the
    user's "not a digit" label (True) or its absence (False)."""
    clauses = _filters(
        digit=digit,
        true_label=true_label,
        outcome=outcome,
        status=status,
        not_a_digit=not_a_digit,
        since=since,
        until=until,
        session_id=session_id,
    )
    total = session.scalar(select(func.count()).select_from(PredictionRow).where(*clauses)) or 0
    rows = session.scalars(
        select(PredictionRow)
        .options(defer(PredictionRow.image_png), defer(PredictionRow.input_png))
        .where(*clauses)
        .order_by(PredictionRow.created_at.desc(), PredictionRow.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return list(rows), total


def stats(session: Session) -> dict[str, Any]:
    """Totals, accuracy from corrections, confusion matrix and reliability bins."""
    total, mean_confidence, uncertain, not_a_digit, not_a_digit_labels = session.execute(
        select(
            func.count(),
            func.avg(PredictionRow.confidence),
            func.count().filter(PredictionRow.status == "uncertain"),
            func.count().filter(PredictionRow.status == "not_a_digit"),
            func.count().filter(PredictionRow.not_a_digit.is_(True)),
        ).select_from(PredictionRow)
    ).one()
    labelled_rows = session.execute(
        select(
            PredictionRow.digit,
            PredictionRow.true_label,
            PredictionRow.confidence,
            PredictionRow.model_version,
        ).where(PredictionRow.true_label.is_not(None))
    ).all()

    confusion = [[0] * 10 for _ in range(10)]
    per_version: dict[str, list[int]] = {}
    bins = [[0, 0.0, 0] for _ in range(RELIABILITY_BINS)]  # count, sum confidence, correct
    for digit, label, confidence, version in labelled_rows:
        assert label is not None  # filtered in the query
        confusion[label][digit] += 1
        hit = int(digit == label)
        seen = per_version.setdefault(version, [0, 0])
        seen[0] += 1
        seen[1] += hit
        index = min(int(confidence * RELIABILITY_BINS), RELIABILITY_BINS - 1)
        bins[index][0] += 1
        bins[index][1] += confidence
        bins[index][2] += hit

    labelled = len(labelled_rows)
    correct = sum(confusion[d][d] for d in range(10))
    return {
        "total": total,
        "labelled": labelled,
        "correct": correct,
        "accuracy": correct / labelled if labelled else None,
        "mean_confidence": float(mean_confidence) if mean_confidence is not None else None,
        "uncertain": uncertain,
        "not_a_digit": not_a_digit,
        "not_a_digit_labels": not_a_digit_labels,
        "per_digit_accuracy": {
            str(d): (confusion[d][d] / sum(confusion[d]) if sum(confusion[d]) else None)
            for d in range(10)
        },
        "per_model_version": [
            {"model_version": v, "labelled": n, "accuracy": hits / n}
            for v, (n, hits) in sorted(per_version.items())
        ],
        "confusion_matrix": confusion,
        "reliability": [
            {
                "lower": i / RELIABILITY_BINS,
                "upper": (i + 1) / RELIABILITY_BINS,
                "count": count,
                "mean_confidence": conf_sum / count if count else None,
                "accuracy": hits / count if count else None,
            }
            for i, (count, conf_sum, hits) in enumerate(bins)
        ],
    }


def labelled_outcomes(session: Session) -> list[tuple[datetime, str, int, int]]:
    """(created_at, model_version, digit, true_label) of every labelled prediction, oldest
    first: the accuracy of each model version over the time it served."""
    rows = session.execute(
        select(
            PredictionRow.created_at,
            PredictionRow.model_version,
            PredictionRow.digit,
            PredictionRow.true_label,
        )
        .where(PredictionRow.true_label.is_not(None))
        .order_by(PredictionRow.created_at)
    ).all()
    return [
        (at, version, digit, label)
        for at, version, digit, label in rows
        if label is not None  # filtered in the query; narrows the type
    ]


def corrections(session: Session) -> list[Any]:
    """Every labelled prediction (a digit label or "not a digit"): retraining data, as rows of
    (id, input_png, true_label, not_a_digit, session_id)."""
    labelled = PredictionRow.true_label.is_not(None) | PredictionRow.not_a_digit.is_(True)
    rows = session.execute(
        select(
            PredictionRow.id,
            PredictionRow.input_png,
            PredictionRow.true_label,
            PredictionRow.not_a_digit,
            PredictionRow.session_id,
        )
        .where(labelled)
        .order_by(PredictionRow.created_at, PredictionRow.id)
    ).all()
    return list(rows)


def delete_all(session: Session) -> int:
    result = session.execute(delete(PredictionRow))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def purge_images(session: Session, *, older_than: datetime | None = None) -> int:
    """Drop stored drawings (all, or those created before ``older_than``); keep inputs/labels."""
    statement = update(PredictionRow).where(PredictionRow.image_png.is_not(None))
    if older_than is not None:
        statement = statement.where(PredictionRow.created_at < older_than)
    result = session.execute(statement.values(image_png=None))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]

"""Reads over many predictions: the history page, statistics, the outcomes behind the model
pages and the corrections retraining learns from. Session first, everything else keyword-only."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session, defer

from digits.db.crud import UNLABELLED, owned_by
from digits.db.models import PredictionRow
from digits.schemas import NUM_DIGITS, HistoryFilter

ImageKind = Literal["image", "input"]
RELIABILITY_BINS = 10


def get_png(
    session: Session,
    *,
    prediction_id: uuid.UUID,
    kind: ImageKind,
    owner: uuid.UUID | None = None,
) -> bytes | None:
    """The stored drawing or 28x28 input; raises LookupError for an unknown prediction (or
    one that is not ``owner``'s)."""
    column = PredictionRow.image_png if kind == "image" else PredictionRow.input_png
    found = session.execute(
        select(column).where(PredictionRow.id == prediction_id, *owned_by(owner))
    ).first()
    if found is None:
        raise LookupError(prediction_id)
    return found[0]


def _filters(query: HistoryFilter) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = []
    if query.session_id is not None:
        clauses.append(PredictionRow.session_id == query.session_id)
    if query.digit is not None:
        clauses.append(PredictionRow.digit == query.digit)
    if query.true_label is not None:
        clauses.append(PredictionRow.true_label == query.true_label)
    if query.status is not None:
        clauses.append(PredictionRow.status == query.status)
    if query.not_a_digit is not None:
        clauses.append(PredictionRow.not_a_digit.is_(query.not_a_digit))
    if query.outcome == "correct":
        clauses.append(PredictionRow.true_label == PredictionRow.digit)
    elif query.outcome == "wrong":
        clauses.append(
            and_(
                PredictionRow.true_label.is_not(None),
                PredictionRow.true_label != PredictionRow.digit,
            )
        )
    elif query.outcome == "unlabelled":
        clauses.append(UNLABELLED)
    elif query.outcome == "labelled":
        clauses.append(~UNLABELLED)
    if query.since is not None:
        clauses.append(PredictionRow.created_at >= query.since)
    if query.until is not None:
        clauses.append(PredictionRow.created_at < query.until)
    return clauses


def list_predictions(
    session: Session, *, query: HistoryFilter, owner: uuid.UUID | None = None
) -> tuple[list[PredictionRow], int]:
    """A page of ``owner``'s predictions (None: everyone's), newest first, and how many match
    in all. The digits of numbers are listed with their number (digits.db.numbers), not here."""
    clauses = [*owned_by(owner), PredictionRow.number_id.is_(None), *_filters(query)]
    total = session.scalar(select(func.count()).select_from(PredictionRow).where(*clauses)) or 0
    rows = session.scalars(
        select(PredictionRow)
        .options(defer(PredictionRow.image_png), defer(PredictionRow.input_png))
        .where(*clauses)
        .order_by(PredictionRow.created_at.desc(), PredictionRow.id.desc())
        .limit(query.limit)
        .offset(query.offset)
    ).all()
    return list(rows), total


def stats(session: Session) -> dict[str, Any]:
    """Totals, accuracy from corrections, confusion matrix and reliability bins."""
    answered_a_digit = PredictionRow.status != "not_a_digit"
    confirmed = or_(
        and_(answered_a_digit, PredictionRow.true_label == PredictionRow.digit),
        and_(~answered_a_digit, PredictionRow.not_a_digit.is_(True)),
    )
    adapted = PredictionRow.adapted.is_(True)
    (
        total,
        mean_confidence,
        uncertain,
        answered_not_a_digit,
        labelled_not_a_digit,
        adapted_count,
        adapted_confirmed,
    ) = session.execute(
        select(
            func.count(),
            func.avg(PredictionRow.confidence),
            func.count().filter(PredictionRow.status == "uncertain"),
            func.count().filter(PredictionRow.status == "not_a_digit"),
            func.count().filter(PredictionRow.not_a_digit.is_(True)),
            func.count().filter(adapted),
            func.count().filter(adapted, confirmed),
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

    confusion = [[0] * NUM_DIGITS for _ in range(NUM_DIGITS)]
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
    correct = sum(confusion[d][d] for d in range(NUM_DIGITS))
    return {
        "total": total,
        "labelled": labelled,
        "correct": correct,
        "accuracy": correct / labelled if labelled else None,
        "mean_confidence": float(mean_confidence) if mean_confidence is not None else None,
        "uncertain": uncertain,
        "adapted": adapted_count,
        "adapted_confirmed": adapted_confirmed,
        "not_a_digit": answered_not_a_digit,
        "not_a_digit_labels": labelled_not_a_digit,
        "per_digit_accuracy": {
            str(d): (confusion[d][d] / sum(confusion[d]) if sum(confusion[d]) else None)
            for d in range(NUM_DIGITS)
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

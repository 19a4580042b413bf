"""How a prediction travels as a record (the API's shape) and as a spool entry (JSON lines):
the conversions between rows, new predictions, records and entries."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime

from digits.db import crud
from digits.db.models import PredictionRow
from digits.db.spool import Entry
from digits.schemas import PredictionRecord


def record_from_row(row: PredictionRow) -> PredictionRecord:
    return PredictionRecord(
        id=row.id,
        digit=row.digit,
        confidence=row.confidence,
        probabilities=row.probabilities,
        status=row.status,
        model_version=row.model_version,
        created_at=row.created_at,
        source=row.source,
        drawing_id=row.drawing_id,
        session_id=row.session_id,
        true_label=row.true_label,
        not_a_digit=row.not_a_digit,
        labelled_at=row.labelled_at,
    )


def record_from_new(new: crud.NewPrediction) -> PredictionRecord:
    return PredictionRecord(
        id=new.id,
        digit=new.digit,
        confidence=new.confidence,
        probabilities=new.probabilities,
        status=new.status,
        model_version=new.model_version,
        created_at=new.created_at,
        source=new.source,
        drawing_id=new.drawing_id,
        session_id=new.session_id,
    )


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def prediction_entry(new: crud.NewPrediction) -> Entry:
    return {
        "op": "prediction",
        "id": str(new.id),
        "created_at": new.created_at.isoformat(),
        "digit": new.digit,
        "confidence": new.confidence,
        "probabilities": new.probabilities,
        "status": new.status,
        "source": new.source,
        "drawing_id": str(new.drawing_id) if new.drawing_id else None,
        "model_version": new.model_version,
        "image_png": _b64(new.image_png),
        "input_png": _b64(new.input_png),
        "latency_ms": new.latency_ms,
        "session_id": str(new.session_id) if new.session_id else None,
    }


def prediction_from_entry(entry: Entry) -> crud.NewPrediction:
    return crud.NewPrediction(
        id=uuid.UUID(entry["id"]),
        created_at=datetime.fromisoformat(entry["created_at"]),
        digit=int(entry["digit"]),
        confidence=float(entry["confidence"]),
        probabilities=[float(p) for p in entry["probabilities"]],
        status=entry["status"],
        source=entry["source"],
        drawing_id=uuid.UUID(entry["drawing_id"]) if entry.get("drawing_id") else None,
        model_version=entry["model_version"],
        image_png=base64.b64decode(entry["image_png"]) if entry.get("image_png") else None,
        input_png=base64.b64decode(entry["input_png"]),
        latency_ms=float(entry["latency_ms"]),
        session_id=uuid.UUID(entry["session_id"]) if entry.get("session_id") else None,
    )


def label_entry(prediction_id: uuid.UUID, true_label: int | None, labelled_at: datetime) -> Entry:
    return {
        "op": "label",
        "id": str(prediction_id),
        "true_label": true_label,
        "labelled_at": labelled_at.isoformat(),
    }


def spooled_label(entry: Entry) -> int | None:
    # None: the user said "not a digit".
    return None if entry["true_label"] is None else int(entry["true_label"])

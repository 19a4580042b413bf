"""Numbers into words: confidence, percentages, articles, CSV."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime

import pytest

from digits.schemas import PredictionOut, PredictionRecord
from digits.ui import present


@pytest.mark.parametrize(
    ("confidence", "words"),
    [
        (0.999, "very sure"),
        (0.95, "very sure"),
        (0.9, "fairly sure"),
        (0.65, "somewhat sure"),
        (0.59, "unsure"),
        (0.0, "unsure"),
    ],
)
def test_confidence_words(confidence: float, words: str) -> None:
    assert present.confidence_words(confidence) == words


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.934, "93%"),
        (0.9994, "99.9%"),
        (0.99997, "99.9%"),
        (1.0, "100%"),
        (0.004, "0.4%"),
        (0.00001, "0.1%"),
        (0.0, "0%"),
    ],
)
def test_percent_never_rounds_to_certainty(value: float, text: str) -> None:
    assert present.percent(value) == text


def test_articles_and_uncertain_explanation() -> None:
    assert present.a_digit(8) == "an 8"
    assert present.a_digit(7) == "a 7"
    probs = [0.0] * 10
    probs[3], probs[5] = 0.45, 0.35
    prediction = PredictionOut(
        id=uuid.uuid4(),
        digit=3,
        confidence=0.45,
        probabilities=probs,
        status="uncertain",
        model_version="v",
        created_at=datetime.now(UTC),
    )
    assert present.runner_up(prediction) == (5, 0.35)
    text = present.uncertain_explanation(prediction)
    assert "best guess is 3 (45%), then 5 (35%)" in text


def test_records_csv_round_trips() -> None:
    record = PredictionRecord(
        id=uuid.uuid4(),
        digit=2,
        confidence=0.5,
        probabilities=[0.1] * 10,
        status="uncertain",
        model_version="abc",
        created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        source="upload",
        drawing_id=None,
        true_label=7,
        labelled_at=None,
    )
    rows = list(csv.DictReader(io.StringIO(present.records_csv([record]))))
    assert rows[0]["digit"] == "2"
    assert rows[0]["true_label"] == "7"
    assert rows[0]["created_at"] == "2026-01-02T03:04:05.000000+00:00"  # as on the wire
    assert set(rows[0]) == {*PredictionRecord.model_fields} - {"probabilities"} | {
        f"p{d}" for d in range(10)
    }
    assert rows[0]["p9"] == "0.100000"
    assert rows[0]["drawing_id"] == ""
    assert rows[0]["not_a_digit"] == "false"
    said = record.model_copy(update={"true_label": None, "not_a_digit": True})
    row = next(csv.DictReader(io.StringIO(present.records_csv([said]))))
    assert (row["true_label"], row["not_a_digit"]) == ("", "true")
    assert present.label_words(said) == "not a digit"

"""Numbers into words: confidence, percentages, articles, CSV."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime

import pytest
from PIL import Image

from digits.schemas import NumberDigitOut, NumberRecord, PredictionOut, PredictionRecord
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
    } | set(present.NUMBER_CSV_COLUMNS)
    assert all(rows[0][column] == "" for column in present.NUMBER_CSV_COLUMNS)
    assert rows[0]["p9"] == "0.100000"
    assert rows[0]["drawing_id"] == ""
    assert rows[0]["not_a_digit"] == "false"
    said = record.model_copy(update={"true_label": None, "not_a_digit": True})
    row = next(csv.DictReader(io.StringIO(present.records_csv([said]))))
    assert (row["true_label"], row["not_a_digit"]) == ("", "true")
    assert present.label_words(said) == "not a digit"


def test_a_numbers_digits_are_exported_as_rows_labelled_by_a_true_number_of_their_count() -> None:
    digits = [
        NumberDigitOut(
            id=uuid.uuid4(), digit=d, confidence=0.9, probabilities=[0.1] * 10, status="ok",
            box=[10 * k, 0, 10 * k + 8, 20],
        )
        for k, d in enumerate((4, 2))
    ]  # fmt: skip
    number = NumberRecord(
        id=uuid.uuid4(), number="42", confidence=0.8, status="ok", digits=digits,
        model_version="abc", created_at=datetime(2026, 1, 2, tzinfo=UTC), source="canvas",
        true_number="47",
    )  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(present.records_csv([], [number]))))
    assert [(r["id"], r["digit"], r["true_label"]) for r in rows] == [
        (str(digits[0].id), "4", "4"),
        (str(digits[1].id), "2", "7"),
    ]
    assert [(r["number_id"], r["position"], r["box"]) for r in rows] == [
        (str(number.id), "0", "0 0 8 20"),
        (str(number.id), "1", "10 0 18 20"),
    ]
    assert {(r["number"], r["true_number"], r["source"]) for r in rows} == {("42", "47", "canvas")}
    other_length = number.model_copy(update={"true_number": "421"})
    rows = list(csv.DictReader(io.StringIO(present.records_csv([], [other_length]))))
    assert [r["true_label"] for r in rows] == ["", ""]


def test_boxes_are_drawn_over_the_drawing() -> None:
    white = io.BytesIO()
    Image.new("RGB", (100, 40), "white").save(white, format="PNG")
    boxed = Image.open(io.BytesIO(present.boxed(white.getvalue(), [(10, 5, 30, 35)])))
    assert boxed.size == (100, 40)
    assert boxed.getpixel((10, 20)) != (255, 255, 255)  # the frame's left edge
    assert boxed.getpixel((20, 30)) == (255, 255, 255)  # inside it, the drawing as it was


def test_a_numbers_adapted_digits_say_what_they_learned_from() -> None:
    earlier = uuid.uuid4()

    def digit(d: int, *, adapted: bool = False, status: str = "ok") -> NumberDigitOut:
        return NumberDigitOut(
            id=uuid.uuid4(), digit=d, confidence=0.9, probabilities=[0.1] * 10, status=status,
            box=[0, 0, 8, 20], adapted=adapted, like=[earlier] if adapted else [],
        )  # fmt: skip

    assert present.learned_digits_words([digit(4), digit(7)]) == ""
    assert present.learned_digits_words([digit(4), digit(1, adapted=True)]) == (
        "Digit 2: read as 1, like your earlier drawing"
    )
    rejected = digit(3, adapted=True, status="not_a_digit")
    assert present.learned_digits_words([rejected, digit(2)]) == (
        "Digit 1: read as not a digit, like your earlier drawing"
    )

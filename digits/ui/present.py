"""Numbers into words a person reads at a glance: confidence, answers, labels, times."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from digits.schemas import NUM_DIGITS, PredictionOut, PredictionRecord, Status

# Calibrated confidence -> words. The model's probabilities are temperature-scaled, so "0.9"
# means right about nine times in ten; the words keep that promise roughly.
CONFIDENCE_WORDS: tuple[tuple[float, str], ...] = (
    (0.95, "very sure"),
    (0.8, "fairly sure"),
    (0.6, "somewhat sure"),
    (0.0, "unsure"),
)

# The record's fields in its order, the ten probabilities as p0..p9.
CSV_COLUMNS = tuple(
    column
    for name in PredictionRecord.model_fields
    for column in (
        [f"p{digit}" for digit in range(NUM_DIGITS)] if name == "probabilities" else [name]
    )
)


def confidence_words(confidence: float) -> str:
    for floor, words in CONFIDENCE_WORDS:
        if confidence >= floor:
            return words
    return CONFIDENCE_WORDS[-1][1]


def a_digit(digit: int) -> str:
    """ "a 7", "an 8": the article the digit's spoken name takes."""
    return f"an {digit}" if digit == 8 else f"a {digit}"


def percent(value: float) -> str:
    """0.934 -> "93%"; 0.99997 -> "99.9%" and 0.0004 -> "0.1%": never rounded to certainty
    or to nothing, which the model never is."""
    share = value * 100
    if 99 < share < 100:
        return f"{math.floor(share * 10) / 10:.1f}%"
    if 0 < share < 1:
        return f"{max(math.ceil(share * 10) / 10, 0.1):.1f}%"
    return f"{share:.0f}%"


def runner_up(prediction: PredictionOut) -> tuple[int, float]:
    """The second most likely digit and its probability."""
    ranked = sorted(range(NUM_DIGITS), key=lambda d: prediction.probabilities[d], reverse=True)
    second = next(d for d in ranked if d != prediction.digit)
    return second, prediction.probabilities[second]


def headline(prediction: PredictionOut) -> str:
    """One sentence: what the model read and how sure it is."""
    words = confidence_words(prediction.confidence)
    return f"The model is {words} it is {a_digit(prediction.digit)} ({percent(prediction.confidence)})."


def learned_words(prediction: PredictionOut) -> str:
    """What an adapted answer learned from: "Read as 7, like your earlier drawing"."""
    read = "not a digit" if prediction.status == "not_a_digit" else str(prediction.digit)
    drawings = "drawings" if len(prediction.like) > 1 else "drawing"
    return f"Read as {read}, like your earlier {drawings}"


def learned_from_words(record: PredictionOut) -> str:
    """History's cell for an adapted answer: the ids it learned from, shortened; else ""."""
    return ", ".join(str(each)[:8] for each in record.like) if record.adapted else ""


def session_words(drawings: int, learned_from: int) -> str:
    drawn = f"{drawings} drawing{'' if drawings == 1 else 's'}"
    return f"This session: {drawn}; it learns from {learned_from} of your labels."


def uncertain_explanation(prediction: PredictionOut) -> str:
    second, p_second = runner_up(prediction)
    return (
        "The model cannot tell which digit this is, so it gives no answer. "
        f"Its best guess is {prediction.digit} ({percent(prediction.confidence)}), "
        f"then {second} ({percent(p_second)}). Try drawing it larger, in the middle, "
        "with the usual shape, or tell it below which digit you meant."
    )


def not_a_digit_explanation(prediction: PredictionOut) -> str:
    return (
        "This does not look like a digit. "
        f"If it is one, the best guess is {prediction.digit} ({percent(prediction.confidence)}). "
        "Tell it below which digit you meant, or that it is not a digit."
    )


def status_words(status: Status) -> str:
    return "not a digit" if status == "not_a_digit" else status


def label_words(record: PredictionRecord) -> str:
    """The user's label: a digit, "not a digit", or "" for none."""
    if record.not_a_digit:
        return "not a digit"
    return "" if record.true_label is None else str(record.true_label)


def outcome_words(record: PredictionRecord) -> str:
    if record.not_a_digit:
        # The model was right to refuse, or wrong to read a digit.
        return "correct" if record.status == "not_a_digit" else "wrong"
    if record.true_label is None:
        return "not labelled"
    return "correct" if record.true_label == record.digit else "wrong"


def saved_message(predicted: int, true_label: int | None) -> str:
    if true_label is None:
        return f"Saved: not a digit (the model read {predicted}). Draw the next one."
    if predicted == true_label:
        return f"Saved: {a_digit(true_label)}, as the model read it. Draw the next digit."
    return f"Saved: {a_digit(true_label)} (the model read {predicted}). Draw the next digit."


def local_zone(name: str | None) -> ZoneInfo:
    """The browser's time zone when Streamlit knows it, else UTC."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local_time(value: datetime, zone: ZoneInfo) -> str:
    return value.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6f}"
    if isinstance(value, list):
        return " ".join(str(each) for each in value)
    return str(value)


def records_csv(records: Iterable[PredictionRecord]) -> str:
    """History rows as CSV: the wire record's fields (UTC ISO times), one column per class
    probability."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for record in records:
        fields = record.model_dump(mode="json")
        probabilities = fields.pop("probabilities")
        fields.update({f"p{digit}": p for digit, p in enumerate(probabilities)})
        writer.writerow([_cell(fields[column]) for column in CSV_COLUMNS])
    return out.getvalue()

"""Numbers into words a person reads at a glance: confidence, answers, labels, times."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from PIL import Image, ImageDraw

from digits.schemas import (
    NUM_DIGITS,
    AdaptedAnswer,
    NumberRecord,
    PredictionOut,
    PredictionRecord,
    Status,
)

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

# A single digit's row leaves these empty; a number's digit names its number.
NUMBER_CSV_COLUMNS = ("number_id", "position", "box", "number", "true_number", "not_a_number")
BOX_COLOUR = "#E4572E"


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


def learned_words(prediction: AdaptedAnswer) -> str:
    """What an adapted answer learned from: "Read as 7, like your earlier drawing"."""
    read = "not a digit" if prediction.status == "not_a_digit" else str(prediction.digit)
    drawings = "drawings" if len(prediction.like) > 1 else "drawing"
    return f"Read as {read}, like your earlier {drawings}"


def learned_digits_words(digits: Sequence[AdaptedAnswer]) -> str:
    """A number's adapted digits: "Digit 2: read as 1, like your earlier drawing"; else ""."""
    return "; ".join(
        f"Digit {k}: {learned_words(digit)[0].lower()}{learned_words(digit)[1:]}"
        for k, digit in enumerate(digits, start=1)
        if digit.adapted
    )


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


def number_status_words(status: str) -> str:
    return {
        "ok": "sure",
        "uncertain": "not sure",
        "not_a_number": "something is not a digit",
    }.get(status, status)


def digit_records(number: NumberRecord) -> list[tuple[PredictionRecord, int]]:
    """A number's digits as the prediction records they are stored as, with their places. A
    true number of their count gives each its label."""
    fits = number.true_number is not None and len(number.true_number) == len(number.digits)
    return [
        (
            PredictionRecord(
                **digit.model_dump(exclude={"box"}),
                model_version=number.model_version,
                created_at=number.created_at,
                source=number.source,
                session_id=number.session_id,
                true_label=int(number.true_number[k]) if fits and number.true_number else None,
                labelled_at=number.labelled_at if fits else None,
            ),
            k,
        )
        for k, digit in enumerate(number.digits)
    ]


def records_csv(records: Iterable[PredictionRecord], numbers: Iterable[NumberRecord] = ()) -> str:
    """History rows as CSV: the wire record's fields (UTC ISO times), one column per class
    probability; then each number's digits, one row each, with their number in the last
    columns (empty for a single digit)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS + NUMBER_CSV_COLUMNS)
    rows: list[tuple[PredictionRecord, dict[str, Any]]] = [(record, {}) for record in records] + [
        (digit, {"number_id": n.id, "position": k, "box": " ".join(map(str, n.digits[k].box)),
                 "number": n.number, "true_number": n.true_number,
                 "not_a_number": n.not_a_number})
        for n in numbers
        for digit, k in digit_records(n)
    ]  # fmt: skip
    for record, number in rows:
        fields = record.model_dump(mode="json")
        probabilities = fields.pop("probabilities")
        fields.update({f"p{digit}": p for digit, p in enumerate(probabilities)})
        fields.update(number)
        writer.writerow([_cell(fields.get(column)) for column in CSV_COLUMNS + NUMBER_CSV_COLUMNS])
    return out.getvalue()


def boxed(png: bytes, boxes: Iterable[Sequence[int]]) -> bytes:
    """The drawing with a numbered frame over each digit (boxes in its pixels)."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    pen = ImageDraw.Draw(image)
    width = max(2, round(max(image.size) / 200))
    for k, (x0, y0, x1, y1) in enumerate(boxes):
        pen.rectangle((x0, y0, x1 - 1, y1 - 1), outline=BOX_COLOUR, width=width)
        pen.text((x0 + width + 1, y0 + width), str(k + 1), fill=BOX_COLOUR)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()

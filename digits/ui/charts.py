"""Altair charts for the pages: built from API answers, no model or database in sight."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import altair as alt
import pandas as pd

from digits.schemas import ReliabilityBin

# Dark blue on white and a mid grey: both clear WCAG AA contrast for large marks.
ACCENT = "#1d4ed8"
MUTED = "#6b7280"
MIN_PERIODS = {"h": 12, "D": 7}


def probabilities(probs: Sequence[float], chosen: int) -> alt.Chart:
    """Ten bars, the answer highlighted; the axis stays 0-100 % so heights compare."""
    frame = pd.DataFrame(
        {
            "digit": [str(d) for d in range(10)],
            "probability": list(probs),
            "answer": ["answer" if d == chosen else "other" for d in range(10)],
        }
    )
    return (
        alt.Chart(frame, height=180, title="Probability of each digit")
        .mark_bar()
        .encode(
            x=alt.X("digit:N", title="Digit", sort=None, axis=alt.Axis(labelAngle=0)),
            y=alt.Y(
                "probability:Q",
                title="Probability",
                scale=alt.Scale(domain=[0, 1]),
                axis=alt.Axis(format="%"),
            ),
            color=alt.Color(
                "answer:N",
                scale=alt.Scale(domain=["answer", "other"], range=[ACCENT, MUTED]),
                legend=None,
            ),
            tooltip=["digit:N", alt.Tooltip("probability:Q", format=".1%")],
        )
    )


def per_digit_accuracy(
    per_digit: dict[str, float | None], labelled: Sequence[int]
) -> alt.LayerChart:
    """Accuracy per true digit, each bar labelled with its accuracy and how many labels."""
    rows = [
        {
            "digit": str(d),
            "accuracy": per_digit.get(str(d)),
            # Two short lines: on one line the labels of neighbouring bars ran into each other.
            "text": f"{per_digit[str(d)]:.0%}\nof {labelled[d]}",
        }
        for d in range(10)
        if per_digit.get(str(d)) is not None
    ]
    frame = pd.DataFrame(rows, columns=["digit", "accuracy", "text"])
    base = alt.Chart(frame, height=240).encode(
        x=alt.X(
            "digit:N",
            title="True digit",
            sort=None,
            scale=alt.Scale(domain=[str(d) for d in range(10)]),
            axis=alt.Axis(labelAngle=0),
        ),
        y=alt.Y(
            "accuracy:Q",
            title="Accuracy",
            scale=alt.Scale(domain=[0, 1]),
            axis=alt.Axis(format="%"),
        ),
        tooltip=["digit:N", alt.Tooltip("accuracy:Q", format=".1%"), "text:N"],
    )
    bars = base.mark_bar(color=ACCENT)
    labels = base.mark_text(
        baseline="bottom", dy=-15, lineBreak="\n", fontSize=10, color="#111827"
    ).encode(text="text:N")
    # Room above the bars for their two-line labels.
    return (bars + labels).properties(padding={"top": 28})


def confusion(matrix: Sequence[Sequence[int]]) -> alt.LayerChart:
    """Heatmap, rows the true label and columns the model's answer, counts written in."""
    rows = [
        {"true": str(t), "predicted": str(p), "count": int(matrix[t][p])}
        for t in range(len(matrix))
        for p in range(len(matrix[t]))
    ]
    frame = pd.DataFrame(rows, columns=["true", "predicted", "count"])
    peak = max(1, int(frame["count"].max()) if not frame.empty else 1)
    base = alt.Chart(frame, height=320).encode(
        x=alt.X("predicted:N", title="Model's answer", sort=None, axis=alt.Axis(labelAngle=0)),
        y=alt.Y("true:N", title="True digit", sort=None),
    )
    cells = base.mark_rect().encode(
        color=alt.Color(
            "count:Q",
            title="Count",
            scale=alt.Scale(scheme="blues", domain=[0, peak]),
            legend=alt.Legend(format="d", tickMinStep=1),
        ),
        tooltip=["true:N", "predicted:N", "count:Q"],
    )
    # Dark text on pale cells, white on dark ones.
    labels = base.mark_text(fontSize=11).encode(
        text=alt.condition(alt.datum.count > 0, "count:Q", alt.value("")),
        color=alt.condition(alt.datum.count > peak / 2, alt.value("white"), alt.value("#111827")),
    )
    return cells + labels


def confidence_histogram(confidences: Sequence[float]) -> alt.Chart:
    frame = pd.DataFrame({"confidence": list(confidences)}, columns=["confidence"])
    return (
        alt.Chart(frame, height=220)
        .mark_bar(color=ACCENT)
        .encode(
            x=alt.X(
                "confidence:Q",
                bin=alt.Bin(extent=[0, 1], step=0.05),
                title="Confidence",
                axis=alt.Axis(format="%"),
            ),
            y=alt.Y("count():Q", title="Predictions", axis=alt.Axis(format="d", tickMinStep=1)),
        )
    )


def reliability(bins: Sequence[ReliabilityBin]) -> alt.LayerChart:
    """Accuracy against stated confidence per bin; a calibrated model sits on the diagonal."""
    rows = [
        {
            "confidence": b.mean_confidence,
            "accuracy": b.accuracy,
            "count": b.count,
            "range": f"{b.lower:.0%}-{b.upper:.0%}",
        }
        for b in bins
        if b.count > 0 and b.mean_confidence is not None and b.accuracy is not None
    ]
    frame = pd.DataFrame(rows, columns=["confidence", "accuracy", "count", "range"])
    diagonal = (
        alt.Chart(pd.DataFrame({"x": [0.0, 1.0], "y": [0.0, 1.0]}))
        .mark_line(color=MUTED, strokeDash=[4, 4])
        .encode(x="x:Q", y="y:Q")
    )
    axis = alt.Axis(format="%")
    points = (
        alt.Chart(frame, height=260)
        .mark_line(point=alt.OverlayMarkDef(size=70, filled=True, color=ACCENT), color=ACCENT)
        .encode(
            x=alt.X(
                "confidence:Q", title="Stated confidence", scale=alt.Scale(domain=[0, 1]), axis=axis
            ),
            y=alt.Y(
                "accuracy:Q", title="Actual accuracy", scale=alt.Scale(domain=[0, 1]), axis=axis
            ),
            tooltip=[
                "range:N",
                "count:Q",
                alt.Tooltip("confidence:Q", format=".1%"),
                alt.Tooltip("accuracy:Q", format=".1%"),
            ],
        )
    )
    return diagonal + points


def over_time(times: Sequence[datetime], *, unit: str = "hours") -> alt.Chart:
    """Predictions per hour (or per day), quiet periods included as empty bars."""
    stamps = pd.to_datetime(pd.Series(list(times), dtype="object"), utc=True)
    freq, label = ("h", "%b %d %H:00") if unit == "hours" else ("D", "%b %d")
    counts = stamps.dt.floor(freq).value_counts()
    if counts.empty:
        frame = pd.DataFrame(columns=["period", "predictions"])
    else:
        # At least a half-day (or a week) of periods, so one busy hour is one bar among others.
        last = counts.index.max()
        first = min(counts.index.min(), last - pd.Timedelta(1, freq) * (MIN_PERIODS[freq] - 1))
        periods = pd.date_range(first, last, freq=freq)
        counts = counts.reindex(periods, fill_value=0)
        frame = pd.DataFrame({"period": periods.strftime(label), "predictions": counts.to_numpy()})
    return (
        alt.Chart(frame, height=220)
        .mark_bar(color=ACCENT)
        .encode(
            x=alt.X("period:O", title="Time (UTC)", sort=None, axis=alt.Axis(labelAngle=-30)),
            y=alt.Y("predictions:Q", title="Predictions", axis=alt.Axis(format="d", tickMinStep=1)),
            tooltip=["period:O", "predictions:Q"],
        )
    )

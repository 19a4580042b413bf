"""Chart builders: the data each chart plots, checked without rendering."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from digits.schemas import ReliabilityBin
from digits.ui import charts


def test_probabilities_highlight_only_the_answer() -> None:
    chart = charts.probabilities([0.05] * 7 + [0.55] + [0.05] * 2, chosen=7)
    assert list(chart.data["answer"]) == ["other"] * 7 + ["answer"] + ["other"] * 2
    assert chart.to_dict()["encoding"]["y"]["scale"]["domain"] == [0, 1]


def test_over_time_counts_per_hour_with_quiet_hours_as_zero() -> None:
    start = datetime(2026, 11, 28, 1, 5, tzinfo=UTC)
    times = [start, start + timedelta(minutes=10), start + timedelta(hours=3)]
    data = charts.over_time(times).data
    assert list(data["predictions"]) == [0] * 8 + [2, 0, 0, 1]  # 12 hours at least
    assert list(data["period"])[-4:] == [
        "Nov 28 01:00",
        "Nov 28 02:00",
        "Nov 28 03:00",
        "Nov 28 04:00",
    ]
    days = charts.over_time([start - timedelta(days=20), start], unit="days").data
    assert len(days) == 21
    assert days["predictions"].sum() == 2
    assert charts.over_time([]).data.empty


def test_confusion_cells_and_per_digit_labels() -> None:
    matrix = [[0] * 10 for _ in range(10)]
    matrix[1][7], matrix[1][1] = 1, 3
    cells = charts.confusion(matrix).data
    assert len(cells) == 100
    assert int(cells.query("true == '1' and predicted == '7'")["count"].iloc[0]) == 1
    per_digit = charts.per_digit_accuracy({"1": 0.75}, [sum(r) for r in matrix])
    assert list(per_digit.data["text"]) == ["75%\nof 4"]


def test_reliability_skips_empty_bins() -> None:
    bins = [
        ReliabilityBin(lower=0.8, upper=0.9, count=4, mean_confidence=0.85, accuracy=0.75),
        ReliabilityBin(lower=0.9, upper=1.0, count=0, mean_confidence=None, accuracy=None),
    ]
    points = charts.reliability(bins).layer[1].data
    assert list(points["confidence"]) == [0.85]

"""Accuracy, confusion and calibration (ECE, reliability bins) of probabilities against labels."""

from __future__ import annotations

from typing import Any

import numpy as np

ECE_BINS = 15
CONFIDENT = 0.9  # a wrong answer above this confidence is a confident mistake


def expected_calibration_error(
    confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS
) -> float:
    """ECE over equal-width bins of the top-label confidence."""
    return float(
        sum(
            b["count"] * abs(b["accuracy"] - b["mean_confidence"])
            for b in reliability(confidence, correct, bins)
        )
        / max(len(confidence), 1)
    )


def reliability(
    confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS
) -> list[dict[str, float]]:
    """Confidence in ``bins`` equal bins [lower, upper): the keys of the API's ReliabilityBin."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    out = []
    for b in range(bins):
        mask = which == b
        count = int(mask.sum())
        out.append(
            {
                "lower": float(edges[b]),
                "upper": float(edges[b + 1]),
                "count": count,
                "mean_confidence": float(confidence[mask].mean()) if count else 0.0,
                "accuracy": float(correct[mask].mean()) if count else 0.0,
            }
        )
    return out


def summarise(probs: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Metrics of (N, 10) probabilities against labels; a row of NaN counts as an abstention."""
    answered = ~np.isnan(probs).any(axis=1)
    predicted = np.where(answered, np.nan_to_num(probs).argmax(axis=1), -1)
    confidence = np.where(answered, np.nan_to_num(probs).max(axis=1), 0.0)
    correct = predicted == labels
    confusion = np.zeros((10, 10), dtype=int)
    np.add.at(confusion, (labels[answered], predicted[answered]), 1)
    per_digit = {
        str(d): float(correct[labels == d].mean()) if (labels == d).any() else None
        for d in range(10)
    }
    return {
        "n": len(labels),
        "accuracy": float(correct.mean()),
        "ece": expected_calibration_error(confidence, correct),
        "confident_wrong": float(((confidence > CONFIDENT) & ~correct).mean()),
        "empty": int((~answered).sum()),
        "per_digit": per_digit,
        "confusion": confusion.tolist(),
        "reliability": reliability(confidence, correct),
        "mean_confidence": float(confidence.mean()),
    }

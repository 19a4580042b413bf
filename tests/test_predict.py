"""Behaviour of the shipped weights (digits/weights/model.pt), not of a stand-in."""

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from digits import decode, preprocess
from digits.config import SHIPPED_WEIGHTS
from digits.data.mnist import load_mnist
from digits.predict import Predictor
from digits.synth import drawings, glyphs
from digits.training.metrics import summarise


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor.from_checkpoint(SHIPPED_WEIGHTS)


def test_shipped_weights_are_small_and_self_describing(predictor: Predictor) -> None:
    assert SHIPPED_WEIGHTS.stat().st_size < 3 * 1024 * 1024
    assert predictor.checkpoint.preprocessing["version"] == preprocess.PREPROCESS_VERSION
    assert 0.3 < predictor.temperature < 5
    assert predictor.metrics["val_accuracy"] > 0.99


def test_mnist_test_accuracy(predictor: Predictor, mnist_dir: Path) -> None:
    test = load_mnist("test", mnist_dir)
    inputs = np.stack([preprocess.to_model_input(image) for image in test.images])
    predicted = predictor.probabilities(inputs).argmax(axis=1)
    assert (predicted == test.labels).mean() >= 0.995


@pytest.fixture(scope="module")
def strokes() -> list[tuple[list[np.ndarray], int]]:
    """Every glyph style of every digit, one writer's hand each."""
    rng = np.random.default_rng(3)
    return [
        (glyphs.glyph_strokes(digit, style, rng), digit)
        for digit, styles in glyphs.STYLES.items()
        for style in styles
    ]


def _read(predictor: Predictor, strokes: list[np.ndarray], **look: Any) -> int:
    return predictor.predict(drawings.draw(strokes, drawings.Look(**look))).digit


def test_stable_under_small_shifts_and_stroke_width(predictor: Predictor, strokes: list) -> None:
    """The same drawing moved around, resized and drawn with other brushes reads the same."""
    changed = total = 0
    for glyph, _ in strokes:
        reference = _read(predictor, glyph)
        for look in (
            {"centre": (0.35, 0.6)},
            {"centre": (0.62, 0.4)},
            {"height": 0.35, "centre": (0.3, 0.3)},
            {"brush": 8.0},
            {"brush": 30.0},
            {"encoding": "RGBA"},
        ):
            changed += _read(predictor, glyph, **look) != reference
            total += 1
    assert changed / total <= 0.03, f"{changed} of {total} readings changed"


def test_minimum_accuracy_per_digit_on_canvas_drawings(
    predictor: Predictor, mnist_dir: Path
) -> None:
    test = load_mnist("test", mnist_dir)
    drawn = drawings.benchmark_set(test.images, test.labels, mode="normal", n=600, seed=99)
    labels = np.array([label for _, label in drawn])
    inputs = np.stack([preprocess.to_model_input(image) for image, _ in drawn])
    report = summarise(predictor.probabilities(inputs), labels)
    assert report["accuracy"] >= 0.97
    worst = min(report["per_digit"].values())
    assert worst >= 0.9, report["per_digit"]


def test_blank_canvas_is_not_a_digit(predictor: Predictor) -> None:
    with pytest.raises(decode.EmptyImageError):
        predictor.predict(np.zeros((280, 280, 4), np.uint8))


def test_low_confidence_is_uncertain_with_best_guess(predictor: Predictor) -> None:
    strict = Predictor(predictor.checkpoint, uncertain_threshold=1.01)
    rng = np.random.default_rng(0)
    result = strict.predict(
        drawings.draw(glyphs.glyph_strokes(3, glyphs.STYLES[3][0], rng), drawings.Look())
    )
    assert result.status == "uncertain"
    assert 0 <= result.digit <= 9 and result.confidence == max(result.probabilities)
    assert sum(result.probabilities) == pytest.approx(1.0, abs=1e-5)

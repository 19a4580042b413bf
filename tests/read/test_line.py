"""The line model (digits.read.line): its input, its CTC arithmetic, and the shipped model on
`validation` writers' numbers."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from digits import preprocess
from digits.read import line, numbers
from digits.synth import pen_numbers


def _brute_force(log_probs: np.ndarray, string: list[int]) -> float:
    """The log of the summed probability of every path through the columns that collapses to
    ``string``: CTC's definition, path by path."""
    total = 0.0
    for path in itertools.product(range(line.CLASSES), repeat=len(log_probs)):
        merged = [c for k, c in enumerate(path) if k == 0 or c != path[k - 1]]
        if [c - 1 for c in merged if c != line.BLANK] == string:
            total += float(np.exp(sum(log_probs[t, c] for t, c in enumerate(path))))
    return float(np.log(total))


def test_log_likelihoods_sum_every_path_of_each_string() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, line.CLASSES)) * 2
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    strings = [[3], [1, 1], [2, 7], [5, 10, 5], [], [4, 4, 4, 4]]
    found = line.log_likelihoods(log_probs, strings)
    expected = [_brute_force(log_probs, s) if len(s) < 4 else -np.inf for s in strings]
    # four columns cannot hold "4444": it needs a blank between each repeat
    np.testing.assert_allclose(found, expected, rtol=1e-9)


def test_log_likelihoods_of_several_models_are_each_models_own() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(3, 9, line.CLASSES)) * 2
    log_probs = logits - np.log(np.exp(logits).sum(axis=2, keepdims=True))
    strings = [[3], [1, 1], [2, 7, 10], []]
    together = line.log_likelihoods(log_probs, strings)
    assert together.shape == (3, len(strings))
    for model, found in zip(log_probs, together, strict=True):
        np.testing.assert_allclose(found, line.log_likelihoods(model, strings), rtol=1e-12)


def test_greedy_merges_repeats_and_drops_blanks() -> None:
    path = [0, 3, 3, 0, 3, 8, 8, 11, 0, 0, 1]
    log_probs = np.log(np.eye(line.CLASSES)[path] * 0.9 + 0.1 / line.CLASSES)
    assert line.greedy(log_probs) == [2, 2, 7, 10, 0]


def test_line_input_keeps_the_ink_box_in_proportion_and_maps_columns_back() -> None:
    ink = np.zeros((100, 400), np.float32)
    ink[20:80, 50:110] = 1.0  # 60 high, 60 wide
    ink[20:80, 300:330] = 1.0  # 30 wide, 190 pixels further right
    seen = line.line_input(ink)
    assert seen.image.shape[0] == line.HEIGHT
    assert seen.image.shape[1] % line.STRIDE == 0
    scale = line.INK_HEIGHT / 60
    assert seen.scale == pytest.approx(scale, rel=0.01)
    inked = np.flatnonzero(seen.image.max(axis=0) > 0.5)
    assert inked[0] == line.PAD and inked[-1] == pytest.approx(line.PAD + 280 * scale, abs=1.5)
    # an output column over the second block maps back inside it
    column = int((line.PAD + 265 * scale) // line.STRIDE)
    assert 300 <= seen.line_x(column + 0.5) < 330
    with pytest.raises(ValueError):
        line.line_input(np.zeros((10, 10), np.float32))


@pytest.fixture(scope="module")
def validation_numbers() -> list[pen_numbers.NumberDrawing]:
    return pen_numbers.number_set("validation", 120, 11) + pen_numbers.number_set(
        "validation", 30, 11, with_letter=True
    )


@pytest.mark.parametrize("path", [line.LINE_FILE, line.SECOND_LINE_FILE], ids=["first", "second"])
def test_the_shipped_line_models_read_validation_numbers(
    path: Path, validation_numbers: list[pen_numbers.NumberDrawing]
) -> None:
    model = line.shipped(path)
    right = counted = 0
    for item in validation_numbers:
        ink, _ = numbers.working_ink(preprocess.ink_map(item.image))
        said = line.greedy(model.log_probs(line.line_input(ink).image))
        truth = [s.digit if s.digit is not None else line.LETTER - 1 for s in item.samples]
        right += said == truth
        counted += len(said) == len(truth)
    # measured: 0.89 and 0.96 for the first, 0.89 and 0.96 for the second (python -m
    # digits.training.line prints about the same on 1,000)
    assert right / len(validation_numbers) >= 0.85
    assert counted / len(validation_numbers) >= 0.93

"""The algorithm on hand-made features: when the memory speaks, what it changes, and the
answer's contract (ten probabilities summing to 1, the confidence of the digit, a status)."""

from __future__ import annotations

import uuid

import numpy as np

from digits.memory import Entry, adapt
from digits.memory.adapt import similarities
from digits.schemas import Status

DIM = 8


def rule(probabilities: np.ndarray, reject: float) -> Status:
    if reject >= 0.5:
        return "not_a_digit"
    return "uncertain" if probabilities.max() < 0.6 else "ok"


def unit(*weights: float) -> np.ndarray:
    v = np.zeros(DIM, np.float32)
    v[: len(weights)] = weights
    return v / np.linalg.norm(v)


def at(similarity: float) -> np.ndarray:
    """A vector at this cosine similarity to unit(1)."""
    return unit(similarity, float(np.sqrt(1 - similarity**2)))


def entry(features: np.ndarray, label: int | None) -> Entry:
    return Entry(uuid.uuid4(), features, label)


def reads_two() -> np.ndarray:
    p = np.full(10, 0.01)
    p[2] = 0.91
    return p


def test_no_or_far_memory_leaves_the_answer_alone() -> None:
    for entries in ([], [entry(at(0.5), 7)], [entry(at(0.55), 7)] * 3):
        answer = adapt(reads_two(), 0.01, unit(1), entries, status=rule)
        assert (answer.digit, answer.status, answer.adapted, answer.like) == (2, "ok", False, [])
        assert np.isclose(answer.confidence, 0.91)


def test_a_close_correction_changes_the_digit_and_names_it() -> None:
    earlier = entry(at(0.85), 7)
    answer = adapt(reads_two(), 0.01, unit(1), [entry(at(0.3), 2), earlier], status=rule)
    assert (answer.digit, answer.status, answer.adapted, answer.like) == (
        7,
        "ok",
        True,
        [earlier.prediction_id],
    )
    assert np.isclose(sum(answer.probabilities), 1.0)
    assert answer.confidence == answer.probabilities[7] > 0.99


def test_three_agreeing_neighbours_decide_where_one_alone_is_not_close_enough() -> None:
    three = [entry(at(s), 7) for s in (0.7, 0.68, 0.65)]
    assert adapt(reads_two(), 0.01, unit(1), three[:1], status=rule).adapted is False
    answer = adapt(reads_two(), 0.01, unit(1), three, status=rule)
    assert answer.digit == 7 and answer.like == [e.prediction_id for e in three]
    split = [*three[:2], entry(at(0.66), 1)]
    assert adapt(reads_two(), 0.01, unit(1), split, status=rule).adapted is False


def test_not_a_digit_both_ways() -> None:
    letter = entry(at(0.9), None)
    answer = adapt(reads_two(), 0.01, unit(1), [letter], status=rule)
    assert (answer.status, answer.digit, answer.like) == ("not_a_digit", 2, [letter.prediction_id])
    assert np.isclose(sum(answer.probabilities), 1.0)

    odd_four = entry(at(0.9), 4)
    p = np.full(10, 0.02)
    p[4] = 0.82
    turned_down = adapt(p, 0.97, unit(1), [], status=rule)
    assert turned_down.status == "not_a_digit"
    answer = adapt(p, 0.97, unit(1), [odd_four], status=rule)
    assert (answer.digit, answer.status, answer.adapted) == (4, "ok", True)


def test_agreeing_memory_returns_the_plain_answer_unchanged() -> None:
    plain = adapt(reads_two(), 0.01, unit(1), [], status=rule)
    assert adapt(reads_two(), 0.01, unit(1), [entry(at(0.95), 2)], status=rule) == plain


def test_similarities_are_cosines_whatever_the_scale() -> None:
    entries = [entry(3.0 * at(0.85), 7), entry(at(0.3), 2), entry(0.5 * unit(1), 4)]
    assert np.allclose(similarities(10.0 * unit(1), entries), [0.85, 0.3, 1.0], atol=1e-6)
    assert similarities(unit(1), []).shape == (0,)

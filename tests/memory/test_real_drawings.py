"""The memory with the shipped weights on real pen drawings of `train` writers, drawn onto the
canvas as the real-pen benchmark draws them: conventions the shipped model misreads every
time, read right once the person corrected one."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from digits import memory, preprocess
from digits.config import SHIPPED_WEIGHTS
from digits.data import pen
from digits.memory import Entry
from digits.predict import Predictor
from digits.training.pen_benchmark import drawings

FLAGGED_ONES = (2437, 2445)  # train writer ibm/ee3619c94d: a 1 with a long flag, read as 7
OPEN_FOURS = (2381, 2387)  # train writer ibm/bf5d83858a: a 4 read as 1


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor.from_checkpoint(SHIPPED_WEIGHTS)


@pytest.fixture(scope="module")
def train_digits() -> list[pen.PenSample]:
    return pen.load("digits", "train")


class Drawn:
    """Drawings as the served model reads them: scores and penultimate features."""

    def __init__(self, predictor: Predictor, samples: list[pen.PenSample], seed: int) -> None:
        inputs = np.stack([preprocess.to_model_input(d) for d in drawings(samples, seed)])
        self.probabilities, self.rejects, self.features = predictor.scores_and_features(inputs)
        self.predictor = predictor
        self.ids = [uuid.uuid4() for _ in samples]

    def answer(self, i: int, entries: list[Entry]) -> memory.Adapted:
        return memory.adapt(
            self.probabilities[i],
            float(self.rejects[i]),
            self.features[i],
            entries,
            status=self.predictor.status,
        )

    def entry(self, i: int, label: int | None) -> Entry:
        return Entry(self.ids[i], self.features[i], label)


@pytest.mark.parametrize(("pair", "truth", "misread"), [(FLAGGED_ONES, 1, 7), (OPEN_FOURS, 4, 1)])
def test_a_corrected_convention_is_read_right_the_next_time(
    predictor: Predictor,
    train_digits: list[pen.PenSample],
    pair: tuple[int, int],
    truth: int,
    misread: int,
) -> None:
    first, second = (train_digits[i] for i in pair)
    assert first.writer == second.writer and first.digit == second.digit == truth
    drawn = Drawn(predictor, [first, second], seed=7)
    assert [drawn.answer(i, []).digit for i in (0, 1)] == [misread, misread]
    answer = drawn.answer(1, [drawn.entry(0, truth)])
    assert (answer.digit, answer.status, answer.adapted) == (truth, "ok", True)
    assert answer.like == [drawn.ids[0]]
    assert sum(answer.probabilities) == pytest.approx(1.0)
    assert answer.confidence == max(answer.probabilities)


def test_a_session_that_confirms_its_answers_is_not_made_worse(
    predictor: Predictor, train_digits: list[pen.PenSample]
) -> None:
    writer = train_digits[FLAGGED_ONES[0]].writer
    samples = [s for s in train_digits if s.writer == writer]
    drawn = Drawn(predictor, samples, seed=5)
    entries: list[Entry] = []
    for i, sample in enumerate(samples):
        plain, remembered = drawn.answer(i, []), drawn.answer(i, entries)
        if plain.digit == sample.digit and plain.status != "not_a_digit":
            assert remembered == plain, f"drawing {i} of {writer} made worse"
        entries.append(drawn.entry(i, sample.digit))
    assert len(entries) > 30


def test_not_a_digit_both_ways(predictor: Predictor, train_digits: list[pen.PenSample]) -> None:
    letters = pen.rejectable_letters(pen.load("letters", "train"))
    p = next(s for s in letters if s.writer == "aga/e281239fe1" and s.label == "P")
    twice = Drawn(predictor, [p, p], seed=11)  # the same letter drawn again, another look
    assert twice.answer(1, []).status != "not_a_digit"
    labelled = twice.answer(1, [twice.entry(0, None)])
    assert (labelled.status, labelled.adapted, labelled.like) == (
        "not_a_digit",
        True,
        [twice.ids[0]],
    )

    six = train_digits[45]
    assert (six.writer, six.digit) == ("aga/8c3bc043ea", 6)
    again = Drawn(predictor, [six, six], seed=13)
    assert again.answer(1, []).status == "not_a_digit"
    read = again.answer(1, [again.entry(0, 6)])
    assert (read.digit, read.status, read.adapted) == (6, "ok", True)

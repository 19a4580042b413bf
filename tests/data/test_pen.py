"""Real pen data (digits/datasets/pen) and how the shipped weights read it: `test` writers only,
whom no model of ours trained or tuned on."""

from typing import Any

import numpy as np
import pytest

from digits import preprocess
from digits.config import SHIPPED_WEIGHTS
from digits.data import pen
from digits.predict import Predictor
from digits.training.pen_benchmark import pen_benchmark


def test_every_writer_has_one_role_and_the_roles_split_by_writer() -> None:
    roles = pen.roles()
    assert set(roles.values()) == {"train", "validation", "test", "loop"}
    by_role = {role: {s.writer for s in pen.load("digits", role)} for role in set(roles.values())}
    for a in by_role:
        for b in by_role:
            if a != b:
                assert not by_role[a] & by_role[b], (a, b)
    assert len(pen.load("digits", "test")) == 1684
    assert len(pen.load("digits", ["train", "validation", "test", "loop"])) == 6860


def test_strokes_are_normalised_to_the_unit_box() -> None:
    for sample in pen.load("letters", "test")[:200]:
        points = np.vstack(sample.strokes)
        assert points.min() == pytest.approx(0.0, abs=1e-9)
        assert points.max() == pytest.approx(1.0, abs=1e-9)


def test_a_drawn_pen_digit_is_a_canvas_the_preprocessing_reads() -> None:
    sample = pen.load("digits", "test")[0]
    rng = np.random.default_rng(0)
    for mode in ("normal", "careless"):
        image = pen.draw(sample.strokes, rng, mode)
        assert image.shape[:2] == (280, 280) and image.dtype == np.uint8
        assert preprocess.to_model_input(image).max() == pytest.approx(1.0)


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor.from_checkpoint(SHIPPED_WEIGHTS)


@pytest.fixture(scope="module")
def report(predictor: Predictor) -> dict[str, Any]:
    return pen_benchmark(predictor)


def test_shipped_model_has_a_fitted_not_a_digit_class(predictor: Predictor) -> None:
    assert predictor.rejects
    assert 0.3 <= predictor.not_a_digit_threshold <= 0.95
    assert predictor.info()["not_a_digit_threshold"] == predictor.not_a_digit_threshold


def test_minimum_accuracy_per_digit_on_test_writers(report: dict[str, Any]) -> None:
    digits = report["digits"]
    assert digits["accuracy"] >= 0.975
    assert min(digits["per_digit"].values()) >= 0.93, digits["per_digit"]
    assert digits["status"]["not_a_digit"] <= 0.03


@pytest.mark.parametrize(("kind", "least"), [("letters", 0.75), ("scribbles", 0.8), ("pairs", 0.6)])
def test_drawings_that_are_not_one_digit_get_not_a_digit(
    report: dict[str, Any], kind: str, least: float
) -> None:
    assert report[kind]["not_a_digit"] >= least, report[kind]
    assert report[kind]["ok"] <= 0.2, report[kind]


def test_not_a_digit_still_carries_the_best_guess(predictor: Predictor) -> None:
    letter = next(s for s in pen.load("letters", "test") if s.label == "H")
    rng = np.random.default_rng(1)
    results = [predictor.predict(pen.draw(letter.strokes, rng)) for _ in range(5)]
    rejected = [r for r in results if r.status == "not_a_digit"]
    assert rejected, [r.status for r in results]
    for r in rejected:
        assert len(r.probabilities) == 10
        assert sum(r.probabilities) == pytest.approx(1.0, abs=1e-5)
        assert r.digit == int(np.argmax(r.probabilities))
        assert r.confidence == max(r.probabilities)


def test_not_a_digit_wins_over_uncertain(predictor: Predictor) -> None:
    strict = Predictor(predictor.checkpoint, uncertain_threshold=1.01, not_a_digit_threshold=0.0)
    result = strict.predict(
        pen.draw(pen.scribble(np.random.default_rng(2)), np.random.default_rng(2))
    )
    assert result.status == "not_a_digit"
    lenient = Predictor(predictor.checkpoint, uncertain_threshold=1.01, not_a_digit_threshold=1.01)
    assert (
        lenient.predict(
            pen.draw(pen.scribble(np.random.default_rng(2)), np.random.default_rng(2))
        ).status
        == "uncertain"
    )

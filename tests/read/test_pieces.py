"""The probe that tells the number reader one character from parts of two (digits.read.probe,
fitted by digits.read.pieces), with the shipped weights and real pen digits of `validation`
writers."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from digits.config import SHIPPED_WEIGHTS
from digits.predict import Predictor
from digits.read import numbers, pieces, probe
from digits.synth import pen_numbers


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor.from_checkpoint(SHIPPED_WEIGHTS)


def test_the_shipped_probe_belongs_to_the_shipped_model(predictor: Predictor) -> None:
    assert probe.for_checkpoint(predictor.checkpoint) is not None
    other = dataclasses.replace(predictor.checkpoint, version="another-version")
    assert probe.for_checkpoint(other) is None


def test_a_checkpoint_carries_its_own_probe(predictor: Predictor) -> None:
    fitted = pieces.fit_for(predictor, 30)
    other = dataclasses.replace(fitted, model_version="retrained")
    retrained = dataclasses.replace(
        predictor.checkpoint, version="retrained", data={probe.DATA_KEY: other.as_data()}
    )
    carried = probe.for_checkpoint(retrained)
    assert carried is not None and carried.model_version == "retrained"
    np.testing.assert_allclose(carried.weights, fitted.weights, rtol=1e-6)
    stale = dataclasses.replace(retrained, version="promoted-later")
    assert probe.for_checkpoint(stale) is None  # a probe read other features: never used


def test_touching_digits_are_cut_apart_more_often_with_the_probe(predictor: Predictor) -> None:
    touching = [
        item
        for item in pen_numbers.number_set("validation", 160, 11)
        if item.gap_style == "touching"
    ]
    with_probe = numbers.NumberReader(predictor)
    without = numbers.NumberReader(predictor)
    without.probe = None  # as for a model the probe was not fitted on

    def counted(reader: numbers.NumberReader) -> int:
        return sum(len(reader.read(i.image).number) == len(i.label) for i in touching)

    assert len(touching) >= 30
    assert counted(with_probe) >= counted(without) + 3


def test_the_probe_keeps_letters_whole(predictor: Predictor) -> None:
    found = pieces.pieces(predictor, "validation", 40, 3)
    shipped = probe.for_checkpoint(predictor.checkpoint)
    assert shipped is not None
    said = shipped.single_share(found.features) > 0.5
    kinds = np.array(found.kinds)
    assert said[kinds == "multi"].mean() < 0.1
    assert said[kinds == "letter-whole"].mean() > 0.5


def test_logistic_regression_finds_a_rule() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 3)) * [1.0, 50.0, 0.01] + [0.0, 100.0, 0.0]
    y = x[:, 0] - 0.02 * (x[:, 1] - 100.0) > 0.3
    weights, bias = pieces.logistic_regression(x, y, steps=800)
    assert np.mean((x @ weights + bias > 0) == y) > 0.97

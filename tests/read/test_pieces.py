"""The probe that tells the number reader one character from parts of two (digits.read.probe,
fitted by digits.read.pieces), with the shipped weights and real pen digits of `validation`
writers."""

from __future__ import annotations

import dataclasses
from pathlib import Path

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
    with_probe.line = without.line = None  # the splits alone (the line model counts too)

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


def test_softmax_regression_finds_a_rule() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3000, 3)) * [1.0, 50.0, 0.01] + [0.0, 100.0, 0.0]
    scores = np.stack([x[:, 0], (x[:, 1] - 100.0) / 50.0, np.full(len(x), 0.5)], axis=1)
    y = scores.argmax(axis=1)  # three classes, split by lines
    weights, bias = pieces.softmax_regression(x, y, 3, steps=800)
    assert np.mean((x @ weights + bias).argmax(axis=1) == y) > 0.95


def test_the_pair_heads_tell_and_read_two_touching_digits(predictor: Predictor) -> None:
    found = pieces.pieces(predictor, "validation", 60, 3)
    shipped = probe.for_checkpoint(predictor.checkpoint)
    assert shipped is not None
    read = shipped.pairs(found.pair_features)
    assert read is not None
    pair = found.pair_sides[:, 0] >= 0
    assert pair.sum() >= 30 and (~pair).sum() >= 30
    assert np.mean((read.pair > 0.5) == pair) > 0.8
    sides = np.stack([read.left.argmax(axis=1), read.right.argmax(axis=1)], axis=1)
    assert np.mean((sides[pair] == found.pair_sides[pair]).all(axis=1)) > 0.7


def test_the_pair_heads_travel_with_the_probe(predictor: Predictor, tmp_path: Path) -> None:
    shipped = probe.for_checkpoint(predictor.checkpoint)
    assert shipped is not None and shipped.pair_weights is not None
    features = np.random.default_rng(0).normal(size=(4, len(shipped.weights))).astype(np.float32)
    shipped.save(tmp_path / "probe.npz")
    for copy in (
        probe.Probe.load(tmp_path / "probe.npz"),
        probe.Probe.from_data(shipped.as_data()),
    ):
        read, original = copy.pairs(features), shipped.pairs(features)
        assert read is not None and original is not None
        np.testing.assert_allclose(read.left, original.left, rtol=1e-5)
    older = dataclasses.replace(shipped, pair_weights=None, pair_bias=None)
    assert older.pairs(features) is None
    older.save(tmp_path / "older.npz")
    assert probe.Probe.load(tmp_path / "older.npz").pairs(features) is None
    assert probe.Probe.from_data(older.as_data()).pairs(features) is None

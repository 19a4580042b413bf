"""`digits retrain` pieces: sessions held out whole, the poisoning screen, the session cap, the
promotion rule, and the no-data path."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest

from digits.config import Settings
from digits.loop import gate, retrain
from digits.loop import registry as registry_module


def test_whole_sessions_are_held_out_stably_and_about_a_quarter() -> None:
    keys = [gate.session_key(uuid.UUID(int=i * 7_919_993), None) for i in range(4000)]
    first = [gate.is_heldout(k) for k in keys]
    assert first == [gate.is_heldout(k) for k in keys]
    assert 0.22 < sum(first) / len(keys) < 0.28
    sessions = np.array([keys[i // 20] for i in range(2000)])  # 100 sessions of 20
    labels = np.zeros(2000, dtype=np.int64)
    split = gate.split(sessions, labels, labels)
    for key in set(sessions):
        rows = sessions == key
        assert split.heldout[rows].all() or not split.heldout[rows].any()
        assert split.heldout[rows].any() != split.train[rows].any()


def test_a_row_without_a_session_is_a_session_of_its_own() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    assert gate.session_key(None, a) != gate.session_key(None, b)
    session = uuid.uuid4()
    assert gate.session_key(session, a) == gate.session_key(session, b)


def poisoned(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """2,000 normal corrections from 40 sessions, whose labels disagree with the model's answer
    at 1-10 % like real users, and one session labelling 400 drawings of 3 as 8."""
    rng = np.random.default_rng(seed)
    sessions, labels, answers = [], [], []
    for s in range(40):
        rate = rng.uniform(0.01, 0.10)
        truth = rng.integers(10, size=50)
        answer = np.where(rng.random(50) < rate, (truth + 1) % 10, truth)
        sessions += [f"session:{s}"] * 50
        labels += list(truth)
        answers += list(answer)
    poisoner = "session:poisoner"
    sessions += [poisoner] * 400
    labels += [8] * 400
    answers += [3] * 400
    return np.array(sessions), np.array(labels), np.array(answers), poisoner


def test_a_session_labelling_every_3_as_8_is_left_out_of_training_and_held_out() -> None:
    sessions, labels, answers, poisoner = poisoned()
    split = gate.split(sessions, labels, answers)
    assert set(split.excluded) == {poisoner}
    assert split.excluded_corrections == 400
    rows = sessions == poisoner
    assert not split.train[rows].any() and not split.heldout[rows].any()
    assert split.weights[rows].sum() == 0
    # Every normal correction is kept, on one side or the other.
    assert (split.train | split.heldout)[~rows].all()
    assert 0.01 < split.typical_rate < 0.10


def test_an_ordinary_session_that_disagrees_more_than_most_is_kept() -> None:
    sessions, labels, answers, _ = poisoned()
    # A writer with unusual handwriting: a fifth of their 50 drawings read wrongly.
    odd = sessions == "session:0"
    answers = answers.copy()
    answers[np.flatnonzero(odd)[:10]] = (labels[np.flatnonzero(odd)[:10]] + 1) % 10
    split = gate.split(sessions, labels, answers)
    assert "session:0" not in split.excluded


def test_no_session_weighs_more_than_its_cap() -> None:
    sessions = np.array(["big"] * 1000 + [f"s{i}" for i in range(1000)])
    labels = np.zeros(2000, dtype=np.int64)
    train = np.ones(2000, dtype=bool)
    weights = gate.capped_weights(sessions, labels, train)
    assert weights.sum() == pytest.approx(1.0)
    big = weights[sessions == "big"].sum()
    assert big <= gate.SESSION_CAP / (gate.SESSION_CAP + 0.5) + 1e-9  # 100 of 1,100 weight units


def test_labels_are_balanced_in_the_weights() -> None:
    sessions = np.array([f"s{i}" for i in range(1000)])
    labels = np.array([3] * 900 + [7] * 100)
    weights = gate.capped_weights(sessions, labels, np.ones(1000, dtype=bool))
    assert weights[labels == 3].sum() == pytest.approx(weights[labels == 7].sum())


def outcome(fixes: int, breaks: int, sessions: int = 40, per: int = 25) -> gate.Interval:
    """Held-out samples where the active model is right except on the first ``fixes + 5``,
    the candidate fixes ``fixes`` of those and breaks ``breaks`` others, spread over sessions."""
    n = sessions * per
    active = np.ones(n, dtype=bool)
    candidate = np.ones(n, dtype=bool)
    spread = np.random.default_rng(1).permutation(n)
    active[spread[: fixes + 5]] = False
    candidate[spread[fixes : fixes + 5]] = False
    candidate[spread[fixes + 5 : fixes + 5 + breaks]] = False
    keys = np.array([f"s{i // per}" for i in range(n)])
    return gate.paired_interval(active, candidate, keys)


@pytest.mark.parametrize(
    ("fixes", "breaks", "mnist", "accepted"),
    [
        (30, 2, (0.9940, 0.9940), True),
        (30, 2, (0.9940, 0.9931), True),  # 0.09 pp lower: within tolerance
        (30, 2, (0.9940, 0.9925), False),  # 0.15 pp lower
        (5, 4, (0.9940, 0.9960), False),  # one sample better: noise
        (0, 0, (0.9940, 0.9960), False),  # not better where users corrected it
        (2, 10, (0.9940, 0.9960), False),
    ],
)
def test_promotion_needs_held_out_sessions_better_beyond_noise_and_no_worse_mnist(
    fixes: int, breaks: int, mnist: tuple[float, float], accepted: bool
) -> None:
    interval = outcome(fixes, breaks)
    assert interval.sessions == 40 and interval.samples == 1000
    assert interval.difference == pytest.approx((fixes - breaks) / 1000)
    decision = gate.decide(interval, *mnist)
    assert decision.accept is accepted
    assert len(decision.reasons) == 2
    assert "held-out sessions" in decision.reasons[0] and "MNIST" in decision.reasons[1]


def test_without_enough_corrections_nothing_is_trained(
    tmp_path: Path, database_url: str, shipped: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry_module, "SHIPPED_WEIGHTS", shipped)
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url)
    report = retrain.retrain(settings, retrain.Options())
    assert report["decision"] == "skipped" and report["promoted"] is False
    assert report["corrections_train"] == report["corrections_heldout"] == 0
    assert report["heldout_sessions"] == report["heldout_samples"] == 0
    line = report.summary_line(report)
    assert line["heldout_sessions"] == 0 and line["heldout_samples"] == 0
    index = registry_module.Registry.from_settings(settings).read()
    assert list(index.models) == [index.active]  # the shipped weights only

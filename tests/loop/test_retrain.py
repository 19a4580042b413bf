"""`digits retrain` pieces: sessions dealt whole into folds, the pool, the poisoning screen, the
session cap, the promotion rule, the no-data path, and a whole cross-validated retraining."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest

from digits.config import Settings
from digits.data import mnist
from digits.db.migrate import upgrade_head
from digits.db.testing import store_corrections
from digits.loop import gate, retrain
from digits.loop import registry as registry_module
from digits.loop.report import summary_line


def test_sessions_are_dealt_whole_into_balanced_folds_whatever_the_row_order() -> None:
    keys = [gate.session_key(uuid.UUID(int=i * 7_919_993)) for i in range(100)]
    sessions = np.array([keys[i // 20] for i in range(2000)])  # 100 sessions of 20
    labels = np.zeros(2000, dtype=np.int64)
    split = gate.split(sessions, labels, labels, folds=5, min_session=10)
    assert split.folds == 5 and split.evidence.all() and split.kept.all()
    fold_of = {}
    for key in keys:
        rows = sessions == key
        assert len(set(split.fold[rows])) == 1  # a session is never split
        fold_of[key] = int(split.fold[rows][0])
        # Fold k's candidate never trains on fold k.
        assert not split.train(fold_of[key])[rows].any() and split.train()[rows].all()
    assert sorted(np.bincount(list(fold_of.values()))) == [20] * 5
    shuffled = np.random.default_rng(0).permutation(2000)
    again = gate.split(sessions[shuffled], labels, labels, folds=5, min_session=10)
    assert all(fold_of[k] == f for k, f in zip(sessions[shuffled], again.fold, strict=True))


def test_anonymous_rows_and_small_sessions_share_one_capped_pool_that_is_never_evidence() -> None:
    assert gate.session_key(None) == gate.POOL
    session = uuid.uuid4()
    assert gate.session_key(session) == f"session:{session}"
    # 20 sessions of 50, 100 anonymous rows, 300 sessions of 3 rows each (under the minimum).
    sessions = np.array(
        [f"session:{i // 50}" for i in range(1000)]
        + [gate.POOL] * 100
        + [f"session:small{i // 3}" for i in range(900)]
    )
    labels = np.arange(2000) % 10
    split = gate.split(sessions, labels, labels, folds=5, min_session=10)
    pool = np.arange(2000) >= 1000
    assert (split.sessions[pool] == gate.POOL).all() and (split.sessions[~pool] != gate.POOL).all()
    assert split.kept.all() and split.train()[pool].all()
    assert not split.evidence[pool].any() and split.evidence[~pool].all()
    assert len(np.unique(split.sessions[split.evidence])) == 20
    # A thousand rows in the pool weigh no more than one session may.
    weights = gate.capped_weights(split.sessions, labels, split.train())
    assert weights[pool].sum() <= gate.SESSION_CAP / (gate.SESSION_CAP + 1000 / 2000) + 1e-9


def test_too_few_sessions_to_judge_by_make_no_folds() -> None:
    sessions = np.array(["session:a"] * 30 + [gate.POOL] * 30)
    labels = np.zeros(60, dtype=np.int64)
    split = gate.split(sessions, labels, labels, folds=5, min_session=10)
    assert split.folds == 0 and not split.evidence.any()


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


def test_a_session_labelling_every_3_as_8_is_left_out_of_training_and_evidence() -> None:
    sessions, labels, answers, poisoner = poisoned()
    split = gate.split(sessions, labels, answers, folds=5, min_session=10)
    assert set(split.excluded) == {poisoner}
    assert split.excluded_corrections == 400
    rows = sessions == poisoner
    assert not split.kept[rows].any() and not split.evidence[rows].any()
    assert gate.capped_weights(split.sessions, labels, split.train())[rows].sum() == 0
    # Every normal correction is kept, and judged on once.
    assert (split.kept & split.evidence)[~rows].all()
    assert 0.01 < split.typical_rate < 0.10


def test_300_anonymous_threes_labelled_8_are_screened_or_capped_and_never_evidence() -> None:
    sessions, labels, answers, poisoner = poisoned()
    honest = sessions != poisoner
    sessions, labels, answers = sessions[honest], labels[honest], answers[honest]
    anonymous = np.array([gate.POOL] * 300)
    eights, threes = np.full(300, 8), np.full(300, 3)
    alone = gate.split(
        np.concatenate([sessions, anonymous]),
        np.concatenate([labels, eights]),
        np.concatenate([answers, threes]),
        folds=5,
        min_session=10,
    )
    assert set(alone.excluded) == {gate.POOL}
    # Hidden among 1,000 honest anonymous rows the pool disagrees too little to be screened:
    # it is then one capped session, and still never evidence.
    rng = np.random.default_rng(1)
    truth = rng.integers(10, size=1000)
    diluted = gate.split(
        np.concatenate([sessions, anonymous, np.array([gate.POOL] * 1000)]),
        np.concatenate([labels, eights, truth]),
        np.concatenate([answers, threes, truth]),
        folds=5,
        min_session=10,
    )
    assert not diluted.excluded
    pool = diluted.sessions == gate.POOL
    assert pool.sum() == 1300 and not diluted.evidence[pool].any()
    all_labels = np.concatenate([labels, eights, truth])
    weights = gate.capped_weights(diluted.sessions, all_labels, diluted.train())
    # Among the 8s, the pool weighs what a session holding SESSION_CAP of them would.
    eight = all_labels == 8
    cap = gate.SESSION_CAP * eight.sum()
    honest_eights = (eight & ~pool).sum()
    assert weights[eight & pool].sum() / weights[eight].sum() <= cap / (cap + honest_eights) + 1e-9


def test_an_ordinary_session_that_disagrees_more_than_most_is_kept() -> None:
    sessions, labels, answers, _ = poisoned()
    # A writer with unusual handwriting: a fifth of their 50 drawings read wrongly.
    odd = sessions == "session:0"
    answers = answers.copy()
    answers[np.flatnonzero(odd)[:10]] = (labels[np.flatnonzero(odd)[:10]] + 1) % 10
    split = gate.split(sessions, labels, answers, folds=5, min_session=10)
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
def test_promotion_needs_sessions_better_beyond_noise_and_no_worse_mnist(
    fixes: int, breaks: int, mnist: tuple[float, float], accepted: bool
) -> None:
    interval = outcome(fixes, breaks)
    assert interval.sessions == 40 and interval.samples == 1000
    assert interval.difference == pytest.approx((fixes - breaks) / 1000)
    decision = gate.decide(interval, *mnist)
    assert decision.accept is accepted
    assert len(decision.reasons) == 2
    assert "out-of-fold sessions" in decision.reasons[0] and "MNIST" in decision.reasons[1]


def test_without_enough_corrections_nothing_is_trained(
    tmp_path: Path, database_url: str, shipped: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry_module, "SHIPPED_WEIGHTS", shipped)
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url)
    report = retrain.retrain(settings, retrain.Options())
    assert report["decision"] == "skipped" and report["promoted"] is False
    assert report["corrections_train"] == report["corrections_heldout"] == 0
    assert report["heldout_sessions"] == report["heldout_samples"] == 0
    line = summary_line(report)
    assert line["heldout_sessions"] == 0 and line["heldout_samples"] == 0
    assert line["evidence_sessions"] == 0 and line["folds"] == []
    index = registry_module.Registry.from_settings(settings).read()
    assert list(index.models) == [index.active]  # the shipped weights only


@pytest.mark.slow  # six fine-tunes and MNIST test framed: a minute or two on two cores
def test_a_retraining_judges_every_session_out_of_fold_and_learns_from_all(
    tmp_path: Path, mnist_dir: Path, shipped: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry_module, "SHIPPED_WEIGHTS", shipped)
    url = f"sqlite:///{tmp_path / 'digits.sqlite3'}"
    upgrade_head(url)
    test_set = mnist.load_mnist("test", mnist_dir, tmp_path / "cache")
    # 12 people of 20 corrections, 30 anonymous ones, and 5 sessions too small to judge by.
    people = [uuid.uuid4() for _ in range(12)]
    small = [uuid.uuid4() for _ in range(5)]
    sessions = (
        [people[i // 20] for i in range(240)] + [None] * 30 + [small[i // 2] for i in range(10)]
    )
    store_corrections(url, test_set.images[:280] / 255.0, test_set.labels[:280], sessions)
    settings = Settings(
        data_dir=tmp_path / "data", database_url=url, cache_dir=tmp_path / "cache", retrain_folds=3
    )

    report = retrain.retrain(settings, retrain.Options(mnist_dir=mnist_dir, canvas_n=0))

    folds = report["folds"]
    assert [f["fold"] for f in folds] == [0, 1, 2]
    assert sorted(f["sessions"] for f in folds) == [4, 4, 4]
    # Every person counts once as evidence; the pool (anonymous and small sessions) never does.
    assert sum(f["samples"] for f in folds) == report["heldout_samples"] == 240
    assert report["evidence_sessions"] == 12
    assert report["results"]["candidate"]["heldout"]["n"] == 240
    # The candidate learns from everyone who was not screened out, the pool included.
    assert report["data"]["corrections_train"] == 280 and report["data"]["pool"] == 40
    line = summary_line(report)
    assert line["folds"] == folds and line["evidence_sessions"] == 12
    registered = registry_module.Registry.from_settings(settings).read().models[line["candidate"]]
    assert registered.data["folds"] == folds
    assert "## Folds" in (Path(report["report"]) / "retrain.md").read_text()

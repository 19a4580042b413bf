"""`digits retrain` pieces: the held-out split, the promotion rule, the no-data path."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from digits import registry as registry_module
from digits import retrain
from digits.config import Settings


def test_heldout_split_is_stable_and_about_a_quarter() -> None:
    ids = [uuid.UUID(int=i * 7_919_993) for i in range(4000)]
    first = [retrain.is_heldout(i) for i in ids]
    assert first == [retrain.is_heldout(i) for i in ids]
    assert 0.22 < sum(first) / len(ids) < 0.28


def results(held: tuple[float, float], mnist: tuple[float, float]) -> dict[str, Any]:
    return {
        name: {"heldout": {"accuracy": h, "n": 60}, "mnist": {"accuracy": m, "n": 10_000}}
        for name, h, m in (("active", held[0], mnist[0]), ("candidate", held[1], mnist[1]))
    }


@pytest.mark.parametrize(
    ("held", "mnist", "accepted"),
    [
        ((0.40, 0.90), (0.9940, 0.9940), True),
        ((0.40, 0.90), (0.9940, 0.9931), True),  # 0.09 pp lower: within tolerance
        ((0.40, 0.90), (0.9940, 0.9925), False),  # 0.15 pp lower
        ((0.90, 0.90), (0.9940, 0.9960), False),  # not better where users corrected it
        ((0.90, 0.85), (0.9940, 0.9960), False),
    ],
)
def test_promotion_needs_better_corrections_and_no_worse_mnist(
    held: tuple[float, float], mnist: tuple[float, float], accepted: bool
) -> None:
    accept, reasons = retrain.decide(results(held, mnist))
    assert accept is accepted
    assert len(reasons) == 2 and "held-out" in reasons[0] and "MNIST" in reasons[1]


def test_without_enough_corrections_nothing_is_trained(
    tmp_path: Path, database_url: str, shipped: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry_module, "SHIPPED_WEIGHTS", shipped)
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url)
    report = retrain.retrain(settings, retrain.Options())
    assert report["decision"] == "skipped" and report["promoted"] is False
    assert report["corrections_train"] == report["corrections_heldout"] == 0
    index = registry_module.Registry.from_settings(settings).read()
    assert list(index.models) == [index.active]  # the shipped weights only

"""Fits side by side (digits.loop.crossfit.fit_all): each fit's progress, and a worker that
dies fails the whole fit instead of leaving it waiting."""

from __future__ import annotations

import dataclasses
import os
import signal
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np
import pytest
from torch import nn

from digits import checkpoint as ckpt
from digits.config import SHIPPED_WEIGHTS
from digits.data import mnist
from digits.loop import crossfit


def _recipe(steps: int) -> crossfit.Recipe:
    rng = np.random.default_rng(0)
    images = rng.random((64, 28, 28), dtype=np.float32)  # framed, as served
    labels = rng.integers(0, 10, size=64).astype(np.int64)
    return crossfit.Recipe(
        ckpt.load(SHIPPED_WEIGHTS),
        mnist.Dataset(images, labels),
        mnist.Dataset(images, labels),
        steps=steps,
        seed=0,
    )


@dataclasses.dataclass(frozen=True)
class DyingRecipe(crossfit.Recipe):
    """Its second fit's worker is killed, as the kernel's OOM killer would."""

    def fit(self, weights: np.ndarray, progress: Any = None) -> nn.Module:
        if weights[0] == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().fit(weights, progress)


def test_every_fit_reports_its_steps() -> None:
    heard: list[float] = []
    weights = [np.ones(64), np.ones(64) * 3]
    models = crossfit.fit_all(_recipe(steps=4), weights, on_step=heard.append)
    assert len(models) == 2
    assert heard[-1] == 1.0  # 8 steps of 8, from two fits in two processes


def test_a_killed_worker_fails_the_fit_instead_of_hanging() -> None:
    recipe = DyingRecipe(
        **{f.name: getattr(_recipe(4), f.name) for f in dataclasses.fields(crossfit.Recipe)}
    )
    with pytest.raises(BrokenProcessPool):
        crossfit.fit_all(recipe, [np.ones(64), np.ones(64) * 2])

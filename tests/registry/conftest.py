"""Small untrained checkpoints and a registry whose "shipped weights" are one of them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from digits import checkpoint as ckpt
from digits.model import DigitNet
from digits.registry import Registry

MakeCheckpoint = Callable[[int], Path]


@pytest.fixture
def make_checkpoint(tmp_path: Path) -> MakeCheckpoint:
    """``make_checkpoint(seed)`` -> a narrow network's checkpoint file; one version per seed."""

    def make(seed: int) -> Path:
        torch.manual_seed(seed)
        path = tmp_path / "checkpoints-in" / f"seed{seed}.pt"
        ckpt.save(ckpt.from_model(DigitNet(width=4), {"width": 4}), path)
        return path

    return make


@pytest.fixture
def shipped(make_checkpoint: MakeCheckpoint) -> Path:
    return make_checkpoint(0)


@pytest.fixture
def registry(tmp_path: Path, shipped: Path) -> Registry:
    return Registry(tmp_path / "data" / "models", shipped=shipped)

"""Small untrained checkpoints, a migrated database of each backend (SQLite always; PostgreSQL
where it runs, and always with CI=true), and a registry whose "shipped weights" are one of them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from digits import checkpoint as ckpt
from digits.db.session import Database
from digits.loop.registry import Registry
from digits.model import DigitNet

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
def registry(database_url: str, shipped: Path) -> Iterator[Registry]:
    registry = Registry(Database(database_url), shipped=shipped)
    yield registry
    registry.database.dispose()

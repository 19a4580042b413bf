"""The probe the number reader asks whether a piece is one character or parts of two (fitted by
digits.read.pieces, which says why): the one a retrained checkpoint carries in its ``data``, or
the shipped one, each for the model version it was fitted on.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from digits.checkpoint import ServingCheckpoint
from digits.config import PACKAGE_DIR

PROBE_FILE = PACKAGE_DIR / "weights" / "pieces.npz"
DATA_KEY = "piece_probe"  # where a checkpoint's ``data`` carries its probe


@dataclass(frozen=True)
class Probe:
    model_version: str  # the model whose penultimate features it reads
    weights: np.ndarray  # (D,) float32, applied to the raw features
    bias: float

    def single_share(self, features: np.ndarray) -> np.ndarray:
        """(N, D) penultimate features -> (N,) the probability that each piece is one whole
        character (or part of a letter), not parts of several."""
        logit = features.astype(np.float32) @ self.weights + self.bias
        result: np.ndarray = 1.0 / (1.0 + np.exp(-logit))
        return result

    def save(self, path: Path) -> None:
        np.savez(path, model_version=self.model_version, weights=self.weights, bias=self.bias)

    def as_data(self) -> dict[str, Any]:
        """What a checkpoint's ``data`` carries: plain numbers, as its unpickler admits."""
        return {
            "model_version": self.model_version,
            "weights": [float(w) for w in self.weights],
            "bias": self.bias,
        }

    @classmethod
    def load(cls, path: Path) -> Probe:
        with np.load(path) as saved:
            return cls(str(saved["model_version"]), saved["weights"], float(saved["bias"]))


@lru_cache(maxsize=1)
def _shipped() -> Probe | None:
    return Probe.load(PROBE_FILE) if PROBE_FILE.exists() else None


_carried: dict[str, Probe] = {}  # by model version: a reader is made for every request


def for_checkpoint(checkpoint: ServingCheckpoint) -> Probe | None:
    """The probe fitted for this model: the one its checkpoint carries (a retrained model's),
    else the shipped one when it was fitted for this version, else None."""
    data = checkpoint.data.get(DATA_KEY)
    if isinstance(data, dict) and data.get("model_version") == checkpoint.version:
        if checkpoint.version not in _carried:
            weights = np.asarray(data["weights"], np.float32)
            _carried[checkpoint.version] = Probe(checkpoint.version, weights, float(data["bias"]))
        return _carried[checkpoint.version]
    probe = _shipped()
    return probe if probe is not None and probe.model_version == checkpoint.version else None

"""The probe the number reader asks whether a piece is one character or parts of two (fitted by
digits.read.pieces, which says why), and the shipped one, for the model version it was fitted
on.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from digits.config import PACKAGE_DIR

PROBE_FILE = PACKAGE_DIR / "weights" / "pieces.npz"


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

    @classmethod
    def load(cls, path: Path) -> Probe:
        with np.load(path) as saved:
            return cls(str(saved["model_version"]), saved["weights"], float(saved["bias"]))


@lru_cache(maxsize=1)
def _shipped() -> Probe | None:
    return Probe.load(PROBE_FILE) if PROBE_FILE.exists() else None


def for_model(version: str) -> Probe | None:
    """The shipped probe when it was fitted for this model version, else None."""
    probe = _shipped()
    return probe if probe is not None and probe.model_version == version else None

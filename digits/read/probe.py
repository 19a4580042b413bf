"""The probe the number reader asks whether a piece is one character or parts of two, and what
two touching characters read as (fitted by digits.read.pieces, which says why): the one a
retrained checkpoint carries in its ``data``, or the shipped one, each for the model version it
was fitted on.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from digits.checkpoint import ServingCheckpoint
from digits.config import PACKAGE_DIR
from digits.predict import softmax

PROBE_FILE = PACKAGE_DIR / "weights" / "pieces.npz"
DATA_KEY = "piece_probe"  # where a checkpoint's ``data`` carries its probe
# The pair heads' outputs, in order: is the piece exactly two characters (not a pair, a pair),
# then its left and its right character (ten digits, then "a letter").
PAIR_KIND, PAIR_SIDE = 2, 11
PAIR_OUTPUTS = PAIR_KIND + 2 * PAIR_SIDE


@dataclass(frozen=True)
class PairReading:
    """What the pair heads read in each of N pieces."""

    pair: np.ndarray  # (N,) the probability that the piece is exactly two characters
    left: np.ndarray  # (N, PAIR_SIDE) its left character: ten digits, then a letter
    right: np.ndarray  # (N, PAIR_SIDE) its right character


@dataclass(frozen=True)
class Probe:
    model_version: str  # the model whose penultimate features it reads
    weights: np.ndarray  # (D,) float32, applied to the raw features
    bias: float
    # (D, PAIR_OUTPUTS) float32 and (PAIR_OUTPUTS,): the pair heads, linear on the same
    # features; None in a probe fitted before they were (the reader then reads no pairs).
    pair_weights: np.ndarray | None = None
    pair_bias: np.ndarray | None = None

    def single_share(self, features: np.ndarray) -> np.ndarray:
        """(N, D) penultimate features -> (N,) the probability that each piece is one whole
        character (or part of a letter), not parts of several."""
        logit = features.astype(np.float32) @ self.weights + self.bias
        result: np.ndarray = 1.0 / (1.0 + np.exp(-logit))
        return result

    def pairs(self, features: np.ndarray) -> PairReading | None:
        """(N, D) penultimate features -> what the pair heads read; None without them."""
        if self.pair_weights is None or self.pair_bias is None:
            return None
        # One matrix-vector product per output, not one matrix product: OpenBLAS runs a matrix
        # product this size on all its threads, and their start-up and spinning made reading a
        # number take a third longer (digits read, POST /api/numbers).
        rows = features.astype(np.float32)
        logits = np.stack([rows @ column for column in self.pair_weights.T], axis=1)
        logits += self.pair_bias
        kind = softmax(logits[:, :PAIR_KIND])
        left = softmax(logits[:, PAIR_KIND : PAIR_KIND + PAIR_SIDE])
        right = softmax(logits[:, PAIR_KIND + PAIR_SIDE :])
        return PairReading(kind[:, 1], left, right)

    def save(self, path: Path) -> None:
        arrays: dict[str, Any] = {
            "model_version": self.model_version,
            "weights": self.weights,
            "bias": self.bias,
        }
        if self.pair_weights is not None and self.pair_bias is not None:
            arrays |= {"pair_weights": self.pair_weights, "pair_bias": self.pair_bias}
        np.savez(path, **arrays)

    def as_data(self) -> dict[str, Any]:
        """What a checkpoint's ``data`` carries: plain numbers, as its unpickler admits."""
        data: dict[str, Any] = {
            "model_version": self.model_version,
            "weights": [float(w) for w in self.weights],
            "bias": self.bias,
        }
        if self.pair_weights is not None and self.pair_bias is not None:
            data["pair_weights"] = [[float(w) for w in row] for row in self.pair_weights]
            data["pair_bias"] = [float(b) for b in self.pair_bias]
        return data

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Probe:
        """The inverse of ``as_data``."""
        pair = data.get("pair_weights"), data.get("pair_bias")
        return cls(
            str(data["model_version"]),
            np.asarray(data["weights"], np.float32),
            float(data["bias"]),
            *(None if p is None else np.asarray(p, np.float32) for p in pair),
        )

    @classmethod
    def load(cls, path: Path) -> Probe:
        with np.load(path) as saved:
            pair = (saved.get(k) for k in ("pair_weights", "pair_bias"))
            return cls(str(saved["model_version"]), saved["weights"], float(saved["bias"]), *pair)


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
            _carried[checkpoint.version] = Probe.from_data(data)
        return _carried[checkpoint.version]
    probe = _shipped()
    return probe if probe is not None and probe.model_version == checkpoint.version else None

"""Judging models as the API would answer: the best guess, not_a_digit by the fitted threshold,
figures on MNIST test, on users' sessions and on the canvas benchmark's drawings."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from digits import checkpoint as ckpt
from digits.data import mnist
from digits.model import NOT_A_DIGIT, NUM_DIGITS
from digits.predict import Predictor
from digits.training.evaluate import CANVAS_MODES, CANVAS_SEED
from digits.training.metrics import CONFIDENT, expected_calibration_error

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Answers:
    """What the API would answer for each input (digits.predict.Predictor itself)."""

    probs: np.ndarray  # (N, 10) calibrated digit probabilities: the best guess and its confidence
    rejected: np.ndarray  # (N,) bool: answered not_a_digit

    def subset(self, rows: np.ndarray) -> Answers:
        return Answers(self.probs[rows], self.rejected[rows])

    def labels(self) -> np.ndarray:
        """The answer as a label: NOT_A_DIGIT when rejected, else the best-guess digit."""
        return np.where(self.rejected, NOT_A_DIGIT, self.probs.argmax(axis=1))

    def correct(self, labels: np.ndarray) -> np.ndarray:
        """A digit is read right when the best guess is that digit (the figure the real-pen
        benchmark and the model card report); a "not a digit" correction when it is rejected."""
        return np.where(labels < NUM_DIGITS, self.probs.argmax(axis=1) == labels, self.rejected)


def answers(predictor: Predictor, images: np.ndarray) -> Answers:
    """``predictor`` is built once per model by the caller: building one exports it to ONNX."""
    if len(images) == 0:
        return Answers(np.zeros((0, NUM_DIGITS), np.float32), np.zeros(0, bool))
    probs, scores = predictor.scores(images)
    return Answers(probs, predictor.rejects & (scores >= predictor.not_a_digit_threshold))


def summary(read: Answers, labels: np.ndarray) -> dict[str, Any]:
    """Accuracy over every label; calibration figures over the digits (what the confidence is
    about)."""
    correct = read.correct(labels)
    digits = labels < NUM_DIGITS
    confidence = read.probs.max(axis=1)[digits]
    right = correct[digits]
    return {
        "n": len(labels),
        "accuracy": float(correct.mean()) if len(labels) else float("nan"),
        "ece": expected_calibration_error(confidence, right),
        "confident_wrong": float(((confidence > CONFIDENT) & ~right).mean())
        if digits.any()
        else 0.0,
    }


def canvas_inputs(
    mnist_dir: Path | None, cache_dir: Path, n: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The canvas benchmark's synthetic drawings, framed (a drawing framed as empty is left out:
    both models would abstain alike)."""
    from digits import decode, preprocess
    from digits.synth import drawings

    if n <= 0:
        return {}
    raw_test = mnist.load_mnist("test", mnist_dir, cache_dir)
    sets: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for mode in CANVAS_MODES:
        inputs, labels = [], []
        for image, label in drawings.benchmark_set(
            raw_test.images, raw_test.labels, mode=mode, n=n, seed=CANVAS_SEED
        ):
            try:
                inputs.append(preprocess.to_model_input(image))
            except decode.PreprocessError:
                continue
            labels.append(label)
        sets[mode] = (np.stack(inputs), np.array(labels, dtype=np.int64))
    return sets


def compare(
    models: dict[str, ckpt.Checkpoint],
    *,
    mnist_test: mnist.Dataset,
    canvas: dict[str, tuple[np.ndarray, np.ndarray]],
) -> dict[str, dict[str, Any]]:
    """Each model's figures on MNIST test and the canvas sets."""
    results: dict[str, dict[str, Any]] = {}
    for name, checkpoint in models.items():
        log.info("evaluating the %s model (%s)", name, checkpoint.version)
        row: dict[str, Any] = {"version": checkpoint.version}
        predictor = Predictor(checkpoint.for_serving())
        row["mnist"] = summary(answers(predictor, mnist_test.images), mnist_test.labels)
        for mode, (inputs, labels) in canvas.items():
            row[f"canvas_{mode}"] = summary(answers(predictor, inputs), labels)
        results[name] = row
    return results

"""One Predictor for the CLI, the API and the tests: checkpoint -> calibrated probabilities."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from digits import checkpoint as ckpt
from digits import decode, preprocess
from digits.checkpoint import ServingCheckpoint
from digits.config import DEFAULT_UNCERTAIN_THRESHOLD
from digits.schemas import NOT_A_DIGIT, NUM_DIGITS, Status

# Used when a checkpoint with a not-a-digit class carries no fitted threshold of its own.
DEFAULT_NOT_A_DIGIT_THRESHOLD = 0.5


@dataclass(frozen=True)
class Prediction:
    """The model's answer for one image. A drawing predicted by ``Predictor.predict_drawing``
    also carries what the API stores with it: the drawing (``image_png``), the 28x28 the
    network read (``input_png``) and how long all that took."""

    digit: int
    confidence: float
    probabilities: list[float]
    status: Status
    model_input: np.ndarray  # (28, 28) float32, what the network saw
    model_version: str
    image_png: bytes | None = None
    input_png: bytes | None = None
    latency_ms: float | None = None
    reject: float = 0.0  # the not-a-digit score, before its threshold (0: no such class)
    # (D,) penultimate features, what a session's memory compares (digits.memory)
    features: np.ndarray | None = field(default=None, compare=False, repr=False)
    adapted: bool = False  # a session's memory changed the digit or the status
    like: tuple[uuid.UUID, ...] = ()  # the session's earlier predictions that decided

    def as_dict(self) -> dict[str, Any]:
        return {
            "digit": self.digit,
            "confidence": self.confidence,
            "probabilities": self.probabilities,
            "status": self.status,
        }


def inference_session(graph: bytes) -> ort.InferenceSession:
    """An exported graph (a checkpoint's, or the number reader's line model) as an ONNX
    Runtime session on one CPU thread."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only
    return ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])


class Predictor:
    def __init__(
        self,
        checkpoint: ServingCheckpoint,
        *,
        uncertain_threshold: float = DEFAULT_UNCERTAIN_THRESHOLD,
        not_a_digit_threshold: float | None = None,
        source: Path | None = None,
    ) -> None:
        """Raises checkpoint.MissingGraphError for a checkpoint without its graph."""
        self.checkpoint = checkpoint
        self._session = inference_session(checkpoint.require_graph())
        self.temperature = float(checkpoint.temperature)
        self.uncertain_threshold = uncertain_threshold
        self.rejects = int(checkpoint.model_args.get("num_classes", NUM_DIGITS)) > NUM_DIGITS
        fitted = checkpoint.metrics.get("not_a_digit_threshold", DEFAULT_NOT_A_DIGIT_THRESHOLD)
        self.not_a_digit_threshold = (
            float(fitted) if not_a_digit_threshold is None else not_a_digit_threshold
        )
        self.version = checkpoint.version
        self.metrics = checkpoint.metrics
        self.source = source

    @classmethod
    def from_checkpoint(cls, path: Path, *, uncertain_threshold: float | None = None) -> Predictor:
        """Load the checkpoint at ``path``, with the configured thresholds. Which model is
        served is decided in one place: ``digits.api.holder.serving``."""
        from digits.config import get_settings

        settings = get_settings()
        threshold = (
            settings.uncertain_threshold if uncertain_threshold is None else uncertain_threshold
        )
        return cls(
            ckpt.read(path),
            uncertain_threshold=threshold,
            not_a_digit_threshold=settings.not_a_digit_threshold,
            source=path,
        )

    def info(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "temperature": self.temperature,
            "metrics": self.metrics,
            "model_args": self.checkpoint.model_args,
            "created_at": self.checkpoint.created_at,
            "parent": self.checkpoint.parent,
            "uncertain_threshold": self.uncertain_threshold,
            "not_a_digit_threshold": self.not_a_digit_threshold if self.rejects else None,
        }

    def logits(self, inputs: np.ndarray) -> np.ndarray:
        """(N, 28, 28) model inputs in [0, 1] -> (N, classes) raw logits."""
        return self._run(inputs, ckpt.GRAPH_LOGITS)[0]

    def logits_and_features(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 28, 28) model inputs in [0, 1] -> ((N, classes) raw logits, (N, 36w)
        penultimate features), from one forward pass."""
        logits, features = self._run(inputs, ckpt.GRAPH_LOGITS, ckpt.GRAPH_FEATURES)
        return logits, features

    def _run(self, inputs: np.ndarray, *outputs: str) -> list[np.ndarray]:
        batch = preprocess.normalize(inputs.astype(np.float32, copy=False))[:, None]
        results: list[np.ndarray] = self._session.run(list(outputs), {ckpt.GRAPH_INPUT: batch})
        return results

    def scores(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 28, 28) model inputs in [0, 1] -> ((N, 10) calibrated digit probabilities,
        (N,) not-a-digit scores; zeros for a model without that class).

        The temperature is fitted on digits alone, so it calibrates the best guess among the
        ten; the not-a-digit score is the plain softmax share of the extra class, compared
        with a threshold fitted on `validation` writers.
        """
        return self._scores(self.logits(inputs))

    def scores_and_features(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``scores`` and the (N, 36w) penultimate features that ``digits.memory`` compares,
        from one forward pass."""
        logits, features = self.logits_and_features(inputs)
        return (*self._scores(logits), features)

    def _scores(self, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        digits = softmax(logits[:, :NUM_DIGITS] / self.temperature)
        if not self.rejects:
            return digits, np.zeros(len(logits))
        return digits, softmax(logits)[:, NOT_A_DIGIT]

    def probabilities(self, inputs: np.ndarray) -> np.ndarray:
        """(N, 28, 28) model inputs in [0, 1] -> (N, 10) calibrated digit probabilities."""
        return self.scores(inputs)[0]

    def status(self, probs: np.ndarray, reject: float) -> Status:
        """The status of an answer: (10,) calibrated digit probabilities and the not-a-digit
        score, as ``scores`` gives them (``digits.memory.adapt`` applies it to its own)."""
        if self.rejects and reject >= self.not_a_digit_threshold:
            return "not_a_digit"
        if float(probs.max()) < self.uncertain_threshold:
            return "uncertain"
        return "ok"

    def _prediction(
        self, probs: np.ndarray, reject: float, model_input: np.ndarray, features: np.ndarray
    ) -> Prediction:
        digit = int(probs.argmax())
        status = self.status(probs, reject)
        values = [float(p) for p in probs]
        return Prediction(
            digit,
            values[digit],
            values,
            status,
            model_input,
            self.version,
            reject=reject,
            features=features,
        )

    def predict(self, image: decode.ImageInput, **limits: int) -> Prediction:
        """Raises decode.PreprocessError (EmptyImageError for a blank drawing)."""
        model_input = preprocess.to_model_input(image, **limits)
        return self.predict_inputs(model_input[None])[0]

    def predict_drawing(
        self,
        data: bytes | np.ndarray,
        *,
        limits: decode.InputLimits,
        stored_max_side: int,
        stored: bytes | None = None,
    ) -> Prediction:
        """A submitted PNG or JPEG -> the prediction with the two images kept beside it: the
        drawing as stored (a PNG at most ``stored_max_side`` a side) and the 28x28 input.
        ``data`` may also be pixels already decoded and shrunk, with ``stored`` made beside
        them (digits.api.large_images)."""
        started = time.perf_counter()
        prediction = self.predict(data, max_bytes=limits.max_bytes, max_pixels=limits.max_pixels)
        return replace(
            prediction,
            image_png=(
                stored
                if isinstance(data, np.ndarray)
                else decode.stored_png(data, max_side=stored_max_side)
            ),
            input_png=preprocess.input_to_png(prediction.model_input),
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    def predict_inputs(self, inputs: np.ndarray) -> list[Prediction]:
        return self.predictions(inputs, *self.logits_and_features(inputs))

    def predictions(
        self, inputs: np.ndarray, logits: np.ndarray, features: np.ndarray
    ) -> list[Prediction]:
        """What ``predict_inputs`` answers, from ``logits_and_features`` already run on
        ``inputs`` (digits.read.numbers reads its candidates once)."""
        probs, rejects = self._scores(logits)
        return [
            self._prediction(p, float(r), x, f)
            for p, r, x, f in zip(probs, rejects, inputs, features, strict=True)
        ]


def softmax(logits: np.ndarray) -> np.ndarray:
    """(N, C) logits -> (N, C) probabilities, each row summing to 1."""
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    result: np.ndarray = exp / exp.sum(axis=1, keepdims=True)
    return result

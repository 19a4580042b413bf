"""The real-pen benchmark: `test` writers' digits and letters drawn onto the app's canvas as
users would, read by a Predictor. Never trained or tuned on (digits.data.pen's roles)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from digits import preprocess
from digits.data import pen
from digits.predict import Prediction, Predictor
from digits.training.metrics import summarise

PEN_SEED = 20_261_202  # fixed: the benchmark is the same set every run
CARELESS_SHARE = 0.3  # the rest are drawn "normal" (centred, medium brush)


def drawings(
    samples: list[pen.PenSample] | list[list[np.ndarray]], seed: int, offset: int = 0
) -> list[np.ndarray]:
    """Each sample (or stroke list) drawn once on the 280x280 canvas, deterministic for a seed."""
    return [
        _draw_one(s.strokes if isinstance(s, pen.PenSample) else s, seed, offset, i)
        for i, s in enumerate(samples)
    ]


def _draw_one(strokes: Any, seed: int, offset: int, index: int) -> np.ndarray:
    rng = np.random.default_rng([seed, offset, index])
    mode: Any = "careless" if rng.random() < CARELESS_SHARE else "normal"
    return pen.draw(strokes, rng, mode)


def predict_all(predictor: Predictor, images: list[np.ndarray], desc: str) -> list[Prediction]:
    inputs = np.stack(
        [preprocess.to_model_input(image) for image in tqdm(images, desc=desc, leave=False)]
    )
    return predictor.predict_inputs(inputs)


def _statuses(predictions: list[Prediction]) -> dict[str, float]:
    counts = Counter(p.status for p in predictions)
    n = max(len(predictions), 1)
    return {status: counts[status] / n for status in ("ok", "uncertain", "not_a_digit")}


def pen_benchmark(
    predictor: Predictor, *, seed: int = PEN_SEED, role: pen.Role = "test"
) -> dict[str, Any]:
    """Figures on one writer role: digits (accuracy, answered ok, ECE, per digit), rejectable
    letters, generated scribbles and two-digit drawings (how often each is turned down)."""
    digit_samples = pen.load("digits", role)
    letter_samples = pen.rejectable_letters(pen.load("letters", role))
    rng = np.random.default_rng([seed, 1])
    scribbles = [pen.scribble(rng) for _ in range(300)]
    pairs = [
        pen.side_by_side(digit_samples[a].strokes, digit_samples[b].strokes)
        for a, b in rng.integers(len(digit_samples), size=(300, 2))
    ]
    digit_images = drawings(digit_samples, seed, 0)
    digit_predictions = predict_all(predictor, digit_images, "pen digits")
    labels = np.array([s.digit for s in digit_samples])
    probs = np.array([p.probabilities for p in digit_predictions])
    report = summarise(probs, labels)
    report["status"] = _statuses(digit_predictions)
    report["worst"] = _worst(digit_predictions, labels, digit_images)
    others = {}
    for name, items, offset in (
        ("letters", letter_samples, 1),
        ("scribbles", scribbles, 2),
        ("pairs", pairs, 3),
    ):
        predictions = predict_all(predictor, drawings(items, seed, offset), name)
        others[name] = {"n": len(items)} | _statuses(predictions)
    return {"role": role, "digits": report, **others}


def _worst(
    predictions: list[Prediction], labels: np.ndarray, images: list[np.ndarray]
) -> list[dict[str, Any]]:
    """The most confident mistakes, with their index into the drawn set."""
    wrong = [(p.confidence, i) for i, p in enumerate(predictions) if p.digit != int(labels[i])]
    return [
        {
            "index": i,
            "label": int(labels[i]),
            "digit": predictions[i].digit,
            "confidence": round(predictions[i].confidence, 4),
            "status": predictions[i].status,
        }
        for _, i in sorted(wrong, reverse=True)[:16]
    ]


def worst_picture(report: dict[str, Any], path: Path, *, seed: int = PEN_SEED) -> None:
    """A grid of the most confident mistakes: the drawing, its label and the model's answer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = pen.load("digits", report["role"])
    worst = report["digits"]["worst"]
    fig, axes = plt.subplots(2, 8, figsize=(12, 3.6))
    for ax in axes.flat:
        ax.axis("off")
    for ax, item in zip(axes.flat, worst, strict=False):
        drawn = _draw_one(samples[item["index"]].strokes, seed, 0, item["index"])
        ax.imshow(preprocess.to_model_input(drawn), cmap="gray")
        ax.set_title(
            f"{item['label']} read {item['digit']}\n{item['confidence']:.2f} {item['status']}",
            fontsize=8,
        )
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)

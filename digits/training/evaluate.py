"""Accuracy, confusion, calibration (ECE) and the canvas-like benchmark -> a model card."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm import tqdm

from digits import decode, preprocess
from digits.predict import Predictor
from digits.training.metrics import summarise

log = logging.getLogger(__name__)

CANVAS_SEED = 20_241_128  # fixed: the benchmark is the same set every run
CANVAS_MODES: tuple[Literal["normal", "careless"], ...] = ("normal", "careless")


def canvas_probabilities(predictor: Predictor, images: list[np.ndarray]) -> np.ndarray:
    """Raw canvas images -> probabilities; a drawing preprocessing calls empty gets NaNs."""
    inputs = np.zeros((len(images), preprocess.IMAGE_SIZE, preprocess.IMAGE_SIZE), np.float32)
    ok = np.ones(len(images), dtype=bool)
    for i, image in enumerate(tqdm(images, desc="preprocessing drawings", unit="img", leave=False)):
        try:
            inputs[i] = preprocess.to_model_input(image)
        except decode.EmptyImageError:
            ok[i] = False
    probs = predictor.probabilities(inputs)
    probs[~ok] = np.nan
    return probs


def _plot_reliability(ax: Any, bins: list[dict[str, float]], title: str) -> None:
    centres = [(b["lower"] + b["upper"]) / 2 for b in bins if b["count"]]
    accuracy = [b["accuracy"] for b in bins if b["count"]]
    ax.plot([0, 1], [0, 1], "--", color="#777777", label="perfect calibration")
    ax.bar(
        centres,
        accuracy,
        width=1 / len(bins),
        edgecolor="#1f3b73",
        color="#5b8bd9",
        alpha=0.8,
        label="accuracy",
    )
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left")


def write_plots(report: dict[str, Any], report_dir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("MNIST test", report["reliability"])] + [
        (f"canvas: {name}", r["reliability"]) for name, r in report["canvas"].items()
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4), dpi=80)
    for ax, (title, bins) in zip(np.atleast_1d(axes), panels, strict=True):
        _plot_reliability(ax, bins, title)
    fig.tight_layout()
    fig.savefig(report_dir / "reliability.png")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 4.5), dpi=80)
    confusion = np.array(report["confusion"], dtype=float)
    np.fill_diagonal(confusion, np.nan)  # off-diagonal errors are what is worth seeing
    image = ax.imshow(confusion, cmap="Reds")
    ax.set_xticks(range(10))
    ax.set_yticks(range(10))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("MNIST test errors (diagonal hidden)")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    fig.savefig(report_dir / "confusion.png")
    plt.close(fig)
    return ["reliability.png", "confusion.png"]


def per_digit_table(per_digit: dict[str, float], decimals: int) -> list[str]:
    return [
        "| digit | " + " | ".join(str(d) for d in range(10)) + " |",
        "|---|" + "---|" * 10,
        "| accuracy | " + " | ".join(f"{per_digit[str(d)]:.{decimals}f}" for d in range(10)) + " |",
    ]


def model_card(report: dict[str, Any]) -> str:
    info = report["model"]
    lines = [
        f"# Model card: digits CNN `{info['version']}`",
        "",
        f"- Architecture: `DigitNet({', '.join(f'{k}={v}' for k, v in info['model_args'].items())})`",
        f"- Temperature (calibration): {info['temperature']:.4f}",
        f"- Trained: {info['created_at']}; parent: {info['parent'] or 'none'}",
        "",
        "## MNIST test set",
        "",
        f"- Accuracy: **{report['accuracy']:.4%}** on n={report['n']}",
        f"- ECE (15 bins, top-label): {report['ece']:.4%}",
        f"- Wrong with confidence > 0.9: {report['confident_wrong']:.4%}",
        "",
        *per_digit_table(report["per_digit"], 4),
        "",
        "## Canvas-like benchmark",
        "",
        "Drawings made by `digits.synth` (stroke skeletons in many writing styles and re-drawn MNIST-test",
        "skeletons), rendered on a 280x280 canvas. *normal*: centred, 12-24 px brush; *careless*: small or",
        "off-centre, 4-40 px brush, RGBA/inverted/JPEG encodings, rotation.",
        "",
        "| set | n | accuracy | ECE | wrong & conf > 0.9 | blank |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in report["canvas"].items():
        lines.append(
            f"| {name} | {r['n']} | {r['accuracy']:.4%} | {r['ece']:.4%} | {r['confident_wrong']:.4%} | {r['empty']} |"
        )
    if "pen" in report:
        lines += pen_section(report["pen"])
    lines += ["", "![reliability](reliability.png)", "", "![confusion](confusion.png)", ""]
    lines.append(f"Evaluated in {report['seconds']:.0f} s by `digits evaluate`.")
    return "\n".join(lines) + "\n"


def pen_section(pen: dict[str, Any]) -> list[str]:
    digits = pen["digits"]
    rows = [
        "",
        "## Real pen-drawn digits and letters",
        "",
        "UNIPEN writers this model never trained or tuned on (role `test` in",
        "`digits/datasets/pen/writers.json`), replayed onto the 280x280 canvas as people draw there",
        "(brush sizes, scale, position, every canvas encoding): `benchmarks/pen_bench.py`.",
        "",
        f"- Digits (n={digits['n']}): best guess right **{digits['accuracy']:.2%}**, answered `ok`"
        f" {digits['status']['ok']:.2%}, `not_a_digit` {digits['status']['not_a_digit']:.2%},"
        f" wrong with confidence > 0.9 {digits['confident_wrong']:.2%}, ECE {digits['ece']:.2%}",
        "",
        *per_digit_table(digits["per_digit"], 3),
        "",
        "| drawings that are not one digit | n | answered `ok` | `uncertain` | `not_a_digit` |",
        "|---|---|---|---|---|",
    ]
    for name, label in (
        ("letters", "uppercase letters (not O I S Z B G Q D L T J U A Y)"),
        ("scribbles", "scribbles, shapes, smileys"),
        ("pairs", "two digits side by side"),
    ):
        r = pen[name]
        rows.append(
            f"| {label} | {r['n']} | {r['ok']:.2%} | {r['uncertain']:.2%} | {r['not_a_digit']:.2%} |"
        )
    rows += ["", "The most confident mistakes on real pen digits (label, answer, confidence):", ""]
    rows += ["![worst confusions](worst_confusions.png)"]
    return rows


def evaluate(
    model_path: Path,
    *,
    report_dir: Path | None = None,
    mnist_dir: Path | None = None,
    cache_dir: Path | None = None,
    canvas_n: int = 2000,
) -> dict[str, Any]:
    from digits.config import get_settings
    from digits.data import mnist
    from digits.synth import drawings
    from digits.training.data import framed_mnist

    started = time.perf_counter()
    cache_dir = cache_dir or get_settings().resolved_cache_dir
    predictor = Predictor.from_checkpoint(model_path)
    test = framed_mnist("test", mnist_dir, cache_dir)
    report = summarise(predictor.probabilities(test.images), test.labels)
    report["model"] = predictor.info() | {"model_args": predictor.checkpoint.model_args}
    raw_test = mnist.load_mnist("test", mnist_dir, cache_dir)
    report["canvas"] = {}
    for mode in CANVAS_MODES if canvas_n > 0 else ():
        log.info("canvas benchmark: %s (%d drawings)", mode, canvas_n)
        drawn = drawings.benchmark_set(
            raw_test.images, raw_test.labels, mode=mode, n=canvas_n, seed=CANVAS_SEED
        )
        labels = np.array([label for _, label in drawn])
        probs = canvas_probabilities(predictor, [image for image, _ in drawn])
        report["canvas"][mode] = summarise(probs, labels)
    if canvas_n > 0:
        from digits.training.pen_benchmark import pen_benchmark

        log.info("real-pen benchmark: `test` writers")
        report["pen"] = pen_benchmark(predictor)
    report["seconds"] = round(time.perf_counter() - started, 1)
    if report_dir is not None:
        report_dir.mkdir(parents=True, exist_ok=True)
        report["plots"] = write_plots(report, report_dir)
        if "pen" in report:
            from digits.training.pen_benchmark import worst_picture

            worst_picture(report["pen"], report_dir / "worst_confusions.png")
            report["plots"].append("worst_confusions.png")
        (report_dir / "report.json").write_text(json.dumps(report, indent=1))
        (report_dir / "MODEL_CARD.md").write_text(model_card(report))
    return report

"""`digits retrain`: users' corrections -> a fine-tuned candidate, compared with the active model.

The corrections (every labelled prediction's 28x28 input and true label) are split by a hash of
the prediction id: a quarter is held out, and stays held out as corrections accumulate. The
candidate is fine-tuned from the active model on the rest, each batch mixed with MNIST training
images (replay, so the model keeps what it knew), then recalibrated. It is promoted only when it
is more accurate than the active model on the held-out corrections and no more than
``MNIST_TOLERANCE`` less accurate on the MNIST test set; a comparison report is written either way.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import math
import os
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from tqdm import tqdm

from digits import checkpoint as ckpt
from digits import data, preprocess, train
from digits.config import Settings, get_settings
from digits.evaluate import CANVAS_MODES, CANVAS_SEED, canvas_probabilities, summarise
from digits.predict import Predictor
from digits.registry import Registry

log = logging.getLogger(__name__)

HELDOUT_PERCENT = 25
MNIST_TOLERANCE = 0.001  # 0.1 percentage point
MIN_TRAIN, MIN_HELDOUT = 10, 5
REPLAY = 6000  # MNIST training images replayed per epoch
CALIBRATION_MNIST = 2000  # MNIST training images (not replayed) for the temperature
BATCH_MNIST, BATCH_CORRECTIONS = 112, 16
MAX_LR = 1e-3
DISTILL_WEIGHT, DISTILL_T = 10.0, 2.0
WEIGHT_DECAY = 5e-4
CANVAS_N = 200  # drawings per canvas benchmark mode: enough to see a regression, and quick


@dataclass(frozen=True)
class Options:
    mnist_dir: Path | None = None
    epochs: int = 2
    report_dir: Path | None = None
    promote: bool = True
    canvas_n: int = CANVAS_N
    seed: int = 0


def is_heldout(prediction_id: uuid.UUID) -> bool:
    """Deterministic and stable: a correction held out once is held out in every later run."""
    return hashlib.sha256(prediction_id.bytes).digest()[0] * 100 < HELDOUT_PERCENT * 256


def _decode_input(png: bytes) -> np.ndarray:
    # Stored by preprocess.input_to_png: the model input scaled to 0-255, ink high.
    return np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float32) / 255.0


def load_corrections(database_url: str) -> tuple[data.Dataset, data.Dataset]:
    """(training, held-out) corrections from the database as model inputs and labels."""
    from digits.db import crud
    from digits.db.session import Database

    database = Database(database_url)
    try:
        with database.read() as session:
            rows = crud.labelled_inputs(session)
    finally:
        database.dispose()
    parts: dict[bool, tuple[list[np.ndarray], list[int]]] = {True: ([], []), False: ([], [])}
    for prediction_id, png, label in rows:
        images, labels = parts[is_heldout(prediction_id)]
        images.append(_decode_input(png))
        labels.append(label)

    def dataset(images: list[np.ndarray], labels: list[int]) -> data.Dataset:
        return data.Dataset(
            np.stack(images) if images else np.zeros((0, 28, 28), np.float32),
            np.array(labels, dtype=np.int64),
        )

    return dataset(*parts[False]), dataset(*parts[True])


def fine_tune(
    parent: ckpt.Checkpoint,
    corrections: data.Dataset,
    replay: data.Dataset,
    *,
    epochs: int,
    seed: int,
    max_lr: float = MAX_LR,
    distill: float = DISTILL_WEIGHT,
) -> nn.Module:
    """Each step: a batch of replayed MNIST plus a batch of corrections (drawn with replacement,
    so a few hundred corrections weigh an eighth of every batch), both augmented.

    On the replayed images the candidate is also pulled towards the parent's own answers
    (distillation, as in "Learning without Forgetting"), which keeps what the parent knew far
    better than the labels alone.
    """
    device = train.pick_device()
    torch.manual_seed(seed)
    teacher = parent.build_model().to(device).eval()
    model = parent.build_model().to(device)
    model.train()
    for module in model.modules():
        # BatchNorm keeps the parent's statistics: a few hundred drawings of one user's style
        # must not move the normalisation every MNIST digit goes through.
        if isinstance(module, nn.BatchNorm2d):
            module.eval()
    steps_per_epoch = math.ceil(len(replay.labels) / BATCH_MNIST)
    optimiser = torch.optim.AdamW(model.parameters(), lr=max_lr, weight_decay=WEIGHT_DECAY)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=max_lr, epochs=epochs, steps_per_epoch=steps_per_epoch, pct_start=0.2
    )
    gen = torch.Generator(device=device).manual_seed(seed)
    cpu_gen = torch.Generator().manual_seed(seed)
    augment = train.TrainConfig().augment
    x_mnist = torch.from_numpy(replay.images).unsqueeze(1)
    y_mnist = torch.from_numpy(replay.labels)
    x_user = torch.from_numpy(corrections.images).unsqueeze(1)
    y_user = torch.from_numpy(corrections.labels)
    for epoch in range(epochs):
        order = torch.randperm(len(y_mnist), generator=cpu_gen)
        bar = tqdm(range(steps_per_epoch), desc=f"fine-tune {epoch + 1}/{epochs}", unit="batch")
        for step in bar:
            mnist_idx = order[step * BATCH_MNIST : (step + 1) * BATCH_MNIST]
            user_idx = torch.randint(len(y_user), (BATCH_CORRECTIONS,), generator=cpu_gen)
            x = torch.cat([x_mnist[mnist_idx], x_user[user_idx]]).to(device)
            y = torch.cat([y_mnist[mnist_idx], y_user[user_idx]]).to(device)
            x = preprocess.normalize(train.augment(x, augment, gen))
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            if distill > 0:
                n_mnist = len(mnist_idx)
                with torch.no_grad():
                    target = F.softmax(teacher(x[:n_mnist]) / DISTILL_T, dim=1)
                student = F.log_softmax(logits[:n_mnist] / DISTILL_T, dim=1)
                kl = F.kl_div(student, target, reduction="batchmean") * DISTILL_T**2
                loss = loss + distill * kl
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            scheduler.step()
            bar.set_postfix(loss=f"{loss.item():.4f}")
    return model.cpu().eval()


def _accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    return float((probs.argmax(axis=1) == labels).mean()) if len(labels) else float("nan")


def compare(
    models: dict[str, Predictor],
    *,
    mnist_test: data.Dataset,
    heldout: data.Dataset,
    canvas: dict[str, tuple[list[np.ndarray], np.ndarray]],
) -> dict[str, dict[str, Any]]:
    """Each model's accuracy and ECE on MNIST test, the held-out corrections, the canvas sets."""
    out: dict[str, dict[str, Any]] = {}
    for name, predictor in models.items():
        log.info("evaluating the %s model (%s)", name, predictor.version)
        row: dict[str, Any] = {"version": predictor.version}
        for set_name, images, labels in [
            ("mnist", mnist_test.images, mnist_test.labels),
            ("heldout", heldout.images, heldout.labels),
        ]:
            probs = predictor.probabilities(images)
            summary = summarise(probs, labels)
            row[set_name] = {k: summary[k] for k in ("n", "accuracy", "ece", "confident_wrong")}
        for mode, (drawings, labels) in canvas.items():
            summary = summarise(canvas_probabilities(predictor, drawings), labels)
            row[f"canvas_{mode}"] = {
                k: summary[k] for k in ("n", "accuracy", "ece", "confident_wrong")
            }
        out[name] = row
    return out


def decide(results: dict[str, dict[str, Any]]) -> tuple[bool, list[str]]:
    active, candidate = results["active"], results["candidate"]
    held_a, held_c = active["heldout"]["accuracy"], candidate["heldout"]["accuracy"]
    mnist_a, mnist_c = active["mnist"]["accuracy"], candidate["mnist"]["accuracy"]
    better = held_c > held_a
    kept = mnist_c >= mnist_a - MNIST_TOLERANCE
    reasons = [
        f"held-out corrections: {held_c:.2%} vs {held_a:.2%} "
        f"({'better' if better else 'not better'}; n={candidate['heldout']['n']})",
        f"MNIST test: {mnist_c:.3%} vs {mnist_a:.3%} "
        f"({'within' if kept else 'outside'} the {MNIST_TOLERANCE:.1%} tolerance)",
    ]
    return better and kept, reasons


def _canvas_sets(
    mnist_dir: Path | None, cache_dir: Path, n: int
) -> dict[str, tuple[list[np.ndarray], np.ndarray]]:
    from digits import synth

    if n <= 0:
        return {}
    raw_test = data.load_mnist("test", mnist_dir, cache_dir)
    sets: dict[str, tuple[list[np.ndarray], np.ndarray]] = {}
    for mode in CANVAS_MODES:
        drawings = synth.benchmark_set(
            raw_test.images, raw_test.labels, mode=mode, n=n, seed=CANVAS_SEED
        )
        sets[mode] = ([image for image, _ in drawings], np.array([lab for _, lab in drawings]))
    return sets


def report_markdown(report: dict[str, Any]) -> str:
    results = report["results"]
    lines = [
        f"# Retraining report: candidate `{report['candidate']}` vs active `{report['active_before']}`",
        "",
        f"**Decision: {report['decision']}.**",
        "",
        *(f"- {reason}" for reason in report["reasons"]),
        "",
        "| set | n | active accuracy | candidate accuracy | change | active ECE | candidate ECE |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, title in [
        ("heldout", "held-out corrections"),
        ("mnist", "MNIST test"),
        *((f"canvas_{m}", f"canvas benchmark ({m})") for m in CANVAS_MODES),
    ]:
        if key not in results["active"]:
            continue
        a, c = results["active"][key], results["candidate"][key]
        lines.append(
            f"| {title} | {c['n']} | {a['accuracy']:.3%} | {c['accuracy']:.3%} | "
            f"{(c['accuracy'] - a['accuracy']) * 100:+.2f} pp | {a['ece']:.3%} | {c['ece']:.3%} |"
        )
    d = report["data"]
    lines += [
        "",
        "## Training",
        "",
        f"- Fine-tuned from `{report['active_before']}` for {d['epochs']} epochs on "
        f"{d['corrections_train']} corrections and {d['mnist_replay']} replayed MNIST images "
        f"(held out: {d['corrections_heldout']} corrections), distilling the parent's answers "
        "on the replayed images.",
        f"- Temperature {report['temperature']:.4f}, fitted on {d['calibration']} images "
        "(MNIST training images not replayed, and the held-out corrections; temperature does "
        "not change any accuracy above).",
        f"- {report['seconds']:.0f} s in all.",
        "",
    ]
    return "\n".join(lines)


def _write_report(report: dict[str, Any], report_dir: Path) -> None:
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "retrain.json").write_text(json.dumps(report, indent=1))
    (report_dir / "retrain.md").write_text(report_markdown(report))


def train_candidate(
    parent: ckpt.Checkpoint,
    training: data.Dataset,
    heldout: data.Dataset,
    options: Options,
    cache_dir: Path,
) -> ckpt.Checkpoint:
    """Fine-tune from ``parent`` with MNIST replay, then fit the temperature."""
    if train.pick_device().type == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    # The first images of the training set (framed now, a few seconds) rather than the framed
    # 60 000 (a minute to make where no cache exists yet).
    mnist = train.framed_mnist(
        "train", options.mnist_dir, cache_dir, limit=REPLAY + CALIBRATION_MNIST
    )
    order = np.random.default_rng(options.seed).permutation(len(mnist.labels))
    replay_idx, calib_idx = order[:REPLAY], order[REPLAY : REPLAY + CALIBRATION_MNIST]
    replay = data.Dataset(mnist.images[replay_idx], mnist.labels[replay_idx])
    model = fine_tune(parent, training, replay, epochs=options.epochs, seed=options.seed)

    calibration_x = np.concatenate([mnist.images[calib_idx], heldout.images])
    calibration_y = np.concatenate([mnist.labels[calib_idx], heldout.labels])
    logits = train.logits_of(model, calibration_x, torch.device("cpu"))
    temperature = train.fit_temperature(logits, torch.from_numpy(calibration_y))
    return ckpt.from_model(
        model,
        parent.model_args,
        temperature=temperature,
        train_config={
            "fine_tune": True,
            "epochs": options.epochs,
            "max_lr": MAX_LR,
            "distill": DISTILL_WEIGHT,
            "seed": options.seed,
        },
        parent=parent.version,
        data={
            "corrections_train": len(training.labels),
            "corrections_heldout": len(heldout.labels),
            "mnist_replay": len(replay.labels),
            "calibration": len(calibration_y),
            "epochs": options.epochs,
        },
    )


def _candidate_metrics(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    candidate, active = results["candidate"], results["active"]
    return {
        "mnist_accuracy": candidate["mnist"]["accuracy"],
        "heldout_accuracy": candidate["heldout"]["accuracy"],
        "parent_mnist_accuracy": active["mnist"]["accuracy"],
        "parent_heldout_accuracy": active["heldout"]["accuracy"],
        **{
            f"{key}_accuracy": row["accuracy"]
            for key, row in candidate.items()
            if key.startswith("canvas_")
        },
    }


def retrain(settings: Settings, options: Options) -> dict[str, Any]:
    """The whole loop; returns the report (also written to the report folder)."""
    started = time.perf_counter()
    if settings.model_path is not None:
        log.warning("DIGITS_MODEL_PATH is set: the API serves that file, not the registry's model")
    registry = Registry.from_settings(settings)
    active = registry.ensure().active
    assert active is not None  # ensure() activates the shipped weights at least
    parent = registry.load(active)
    training, heldout = load_corrections(settings.resolved_database_url)
    log.info("corrections: %d for training, %d held out", len(training.labels), len(heldout.labels))
    report: dict[str, Any] = {
        "active_before": active,
        "corrections_train": len(training.labels),
        "corrections_heldout": len(heldout.labels),
    }
    if len(training.labels) < MIN_TRAIN or len(heldout.labels) < MIN_HELDOUT:
        return report | {
            "decision": "skipped",
            "promoted": False,
            "active": active,
            "reasons": [
                f"too few corrections: need {MIN_TRAIN} for training and {MIN_HELDOUT} held out"
            ],
            "seconds": round(time.perf_counter() - started, 1),
        }

    cache_dir = settings.resolved_cache_dir
    candidate = train_candidate(parent, training, heldout, options, cache_dir)
    threshold = settings.uncertain_threshold
    results = compare(
        {
            "active": Predictor(parent, uncertain_threshold=threshold),
            "candidate": Predictor(candidate, uncertain_threshold=threshold),
        },
        mnist_test=train.framed_mnist("test", options.mnist_dir, cache_dir),
        heldout=heldout,
        canvas=_canvas_sets(options.mnist_dir, cache_dir, options.canvas_n),
    )
    accept, reasons = decide(results)
    candidate.metrics = _candidate_metrics(results)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    report_dir = (
        options.report_dir or settings.data_dir / "reports" / f"{stamp}-{candidate.version}"
    )
    promote = accept and options.promote
    report |= {
        "decision": "promoted" if promote else ("accepted, not promoted" if accept else "rejected"),
        "promoted": promote,
        "candidate": candidate.version,
        "active": candidate.version if promote else active,
        "reasons": reasons,
        "temperature": candidate.temperature,
        "data": candidate.data,
        "results": results,
        "report": str(report_dir),
        "seconds": round(time.perf_counter() - started, 1),
    }
    # The report first: the registry keeps its Markdown, and the API shows it as the card.
    _write_report(report, report_dir)
    candidate_file = report_dir / "candidate.pt"
    ckpt.save(candidate, candidate_file)
    registry.register(
        candidate_file, origin="retrain", report=(report_dir / "retrain.md").read_text()
    )
    candidate_file.unlink()
    if promote:
        registry.promote(candidate.version, reason="; ".join(reasons))
    log.info("%s: candidate %s (%s)", report["decision"], candidate.version, "; ".join(reasons))
    return report


def retrain_command(args: argparse.Namespace) -> int:
    options = Options(
        mnist_dir=args.mnist_dir,
        epochs=args.epochs,
        report_dir=args.report_dir,
        promote=not args.no_promote,
        canvas_n=getattr(args, "canvas_n", CANVAS_N),
    )
    report = retrain(get_settings(), options)
    keys = ("decision", "promoted", "active_before", "candidate", "active", "reasons", "seconds")
    line = {k: report[k] for k in keys if k in report}
    if "results" in report:
        line["accuracy"] = {
            name: {key: row[key]["accuracy"] for key in row if key != "version"}
            for name, row in report["results"].items()
        }
        line["report"] = report["report"]
    sys.stdout.write(json.dumps(line) + "\n")
    return 0

"""`digits retrain`: users' corrections -> a fine-tuned candidate, judged on people it never saw.

1. Every labelled prediction (its 28x28 input and true label; "not a digit" is class 10 for a
   model with 11 outputs) is grouped by session. ``digits.gate`` screens out sessions that
   disagree with the active model far more than sessions typically do, holds out whole sessions
   by hash, and caps each training session's weight.
2. The candidate is fine-tuned from the active model (``train.fine_tune``): every batch mixes
   the weighted corrections, balanced by label, with replayed MNIST training images on which it
   is also pulled towards the active model's answers (distillation), so it keeps what it knew.
3. Its temperature is fitted on MNIST images it did not train on and on a fold of the training
   sessions kept out of fine-tuning: never on the held-out sessions that judge it.
4. ``gate.decide`` promotes it only when it is better on the held-out sessions beyond the noise
   and within ``gate.MNIST_TOLERANCE`` on MNIST test. A report is written either way.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from digits import checkpoint as ckpt
from digits import data, gate, train
from digits.config import Settings, get_settings
from digits.evaluate import CANVAS_MODES, CANVAS_SEED, expected_calibration_error
from digits.model import NOT_A_DIGIT, NUM_DIGITS
from digits.predict import Predictor
from digits.registry import Registry

log = logging.getLogger(__name__)


MIN_TRAIN, MIN_HELDOUT = 10, 5
REPLAY = 6000  # MNIST training images replayed
CALIBRATION_MNIST = 2000  # MNIST training images (not replayed) for the temperature
CALIBRATION_PERCENT = 15  # of the non-held-out sessions: kept out of training, for the temperature
BATCH_MNIST, BATCH_CORRECTIONS = 96, 32
STEPS_PER_EPOCH = 100
MAX_LR = 1e-3
DISTILL_WEIGHT = 10.0
CANVAS_N = 200  # drawings per canvas benchmark mode: enough to see a regression, and quick


@dataclass(frozen=True)
class Options:
    mnist_dir: Path | None = None
    epochs: int = 2
    report_dir: Path | None = None
    promote: bool = True
    canvas_n: int = CANVAS_N
    seed: int = 0


@dataclass(frozen=True)
class Corrections:
    images: np.ndarray  # (N, 28, 28) float32 model inputs
    labels: np.ndarray  # (N,) int64; NOT_A_DIGIT for "not a digit"
    sessions: np.ndarray  # (N,) str: gate.session_key of each row
    unusable: int = 0  # "not a digit" corrections a 10-output model cannot learn

    def subset(self, mask: np.ndarray) -> data.Dataset:
        return data.Dataset(self.images[mask], self.labels[mask])


def _decode_input(png: bytes) -> np.ndarray:
    # Stored by preprocess.input_to_png: the model input scaled to 0-255, ink high.
    return np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float32) / 255.0


def load_corrections(database_url: str, num_classes: int) -> Corrections:
    """Every labelled prediction from the database, as model inputs, labels and sessions."""
    from digits.db import queries
    from digits.db.session import Database

    database = Database(database_url)
    try:
        with database.read() as session:
            rows = queries.corrections(session)
    finally:
        database.dispose()
    images, labels, sessions = [], [], []
    unusable = 0
    for row in rows:
        if row.not_a_digit:
            if num_classes <= NOT_A_DIGIT:
                unusable += 1
                continue
            label = NOT_A_DIGIT
        else:
            assert row.true_label is not None
            label = row.true_label
        images.append(_decode_input(row.input_png))
        labels.append(label)
        sessions.append(gate.session_key(row.session_id, row.id))
    return Corrections(
        np.stack(images) if images else np.zeros((0, 28, 28), np.float32),
        np.array(labels, dtype=np.int64),
        np.array(sessions, dtype=str),
        unusable,
    )


def is_calibration(key: str) -> bool:
    """A second, independent hash of the session key (salted): the temperature's fold."""
    digest = hashlib.sha256(b"calibration:" + key.encode()).digest()
    return int.from_bytes(digest[:4], "big") * 100 < CALIBRATION_PERCENT * 2**32


@dataclass(frozen=True)
class Answers:
    """What the API would answer for each input (digits.predict.Predictor itself)."""

    probs: np.ndarray  # (N, 10) calibrated digit probabilities: the best guess and its confidence
    rejected: np.ndarray  # (N,) bool: answered not_a_digit

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
        "confident_wrong": float(((confidence > 0.9) & ~right).mean()) if digits.any() else 0.0,
    }


def _canvas_inputs(
    mnist_dir: Path | None, cache_dir: Path, n: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The canvas benchmark's synthetic drawings, framed (a drawing framed as empty is left out:
    both models would abstain alike)."""
    from digits import preprocess, synth

    if n <= 0:
        return {}
    raw_test = data.load_mnist("test", mnist_dir, cache_dir)
    sets: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for mode in CANVAS_MODES:
        inputs, labels = [], []
        for image, label in synth.benchmark_set(
            raw_test.images, raw_test.labels, mode=mode, n=n, seed=CANVAS_SEED
        ):
            try:
                inputs.append(preprocess.to_model_input(image))
            except preprocess.PreprocessError:
                continue
            labels.append(label)
        sets[mode] = (np.stack(inputs), np.array(labels, dtype=np.int64))
    return sets


def train_candidate(
    parent: ckpt.Checkpoint,
    corrections: Corrections,
    split: gate.Split,
    options: Options,
    cache_dir: Path,
) -> ckpt.Checkpoint:
    """Fine-tune from ``parent`` on the training sessions with MNIST replay; fit the temperature."""
    if train.pick_device().type == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    # The first images of the training set (framed now, a few seconds) rather than the framed
    # 60 000 (a minute to make where no cache exists yet).
    mnist = train.framed_mnist(
        "train", options.mnist_dir, cache_dir, limit=REPLAY + CALIBRATION_MNIST
    )
    order = np.random.default_rng(options.seed).permutation(len(mnist.labels))
    replay_idx, calib_idx = order[:REPLAY], order[REPLAY : REPLAY + CALIBRATION_MNIST]
    calibration = np.array([is_calibration(str(s)) for s in corrections.sessions], dtype=bool)
    calibration &= split.train
    fit_rows = split.train & ~calibration
    if not fit_rows.any():  # too few sessions to spare a fold: calibrate on MNIST alone
        fit_rows, calibration = split.train, np.zeros_like(split.train)
    weights = gate.capped_weights(corrections.sessions, corrections.labels, fit_rows)
    steps = options.epochs * STEPS_PER_EPOCH
    model = train.fine_tune(
        parent,
        [
            train.Source(
                data.Dataset(mnist.images[replay_idx], mnist.labels[replay_idx]),
                BATCH_MNIST,
                distill=True,
            ),
            train.Source(corrections.subset(fit_rows), BATCH_CORRECTIONS, weights[fit_rows]),
        ],
        steps=steps,
        max_lr=MAX_LR,
        seed=options.seed,
        distill_weight=DISTILL_WEIGHT,
    )
    # On digits and their ten outputs only, as train.fit does: the Predictor divides those by it.
    calibration &= corrections.labels < NUM_DIGITS
    calibration_x = np.concatenate([mnist.images[calib_idx], corrections.images[calibration]])
    calibration_y = np.concatenate([mnist.labels[calib_idx], corrections.labels[calibration]])
    logits = train.logits_of(model, calibration_x, torch.device("cpu"))[:, :NUM_DIGITS]
    temperature = train.fit_temperature(logits, torch.from_numpy(calibration_y))
    return ckpt.from_model(
        model,
        parent.model_args,
        temperature=temperature,
        train_config={
            "fine_tune": True,
            "steps": steps,
            "max_lr": MAX_LR,
            "distill": DISTILL_WEIGHT,
            "seed": options.seed,
            "session_cap": gate.SESSION_CAP,
        },
        parent=parent.version,
        data={
            "corrections_train": int(fit_rows.sum()),
            "corrections_calibration": int(calibration.sum()),
            "corrections_heldout": int(split.heldout.sum()),
            "corrections_excluded": split.excluded_corrections,
            "sessions_excluded": len(split.excluded),
            "mnist_replay": len(replay_idx),
            "calibration": len(calibration_y),
            "epochs": options.epochs,
        },
    )


def compare(
    models: dict[str, ckpt.Checkpoint],
    *,
    mnist_test: data.Dataset,
    heldout: data.Dataset,
    canvas: dict[str, tuple[np.ndarray, np.ndarray]],
) -> tuple[dict[str, dict[str, Any]], dict[str, np.ndarray]]:
    """Each model's figures on MNIST test, the held-out sessions and the canvas sets, and its
    per-sample correctness on the held-out sessions (for the paired interval)."""
    results: dict[str, dict[str, Any]] = {}
    correct: dict[str, np.ndarray] = {}
    for name, checkpoint in models.items():
        log.info("evaluating the %s model (%s)", name, checkpoint.version)
        row: dict[str, Any] = {"version": checkpoint.version}
        predictor = Predictor(checkpoint)
        row["mnist"] = summary(answers(predictor, mnist_test.images), mnist_test.labels)
        held = answers(predictor, heldout.images)
        row["heldout"] = summary(held, heldout.labels)
        correct[name] = held.correct(heldout.labels)
        for mode, (inputs, labels) in canvas.items():
            row[f"canvas_{mode}"] = summary(answers(predictor, inputs), labels)
        results[name] = row
    return results, correct


def report_markdown(report: dict[str, Any]) -> str:
    results = report["results"]
    screen = report["screen"]
    lines = [
        f"# Retraining report: candidate `{report['candidate']}` vs active `{report['active_before']}`",
        "",
        f"**Decision: {report['decision']}.**",
        "",
        *(f"- {reason}" for reason in report["reasons"]),
        "",
        f"Held out: {report['heldout_sessions']} sessions, {report['heldout_samples']} samples "
        "(whole sessions, chosen by a hash of the session, never trained on).",
        "",
        "| set | n | active accuracy | candidate accuracy | change | active ECE | candidate ECE |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, title in [
        ("heldout", "held-out sessions"),
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
        "## Sessions",
        "",
        f"- Typical disagreement with the active model: {screen['typical_rate']:.1%} of a "
        f"session's labels. Left out of training and of the held-out set as far more "
        f"disagreeing: {len(screen['excluded'])} sessions, {screen['excluded_corrections']} "
        "corrections.",
        f"- No session weighs more than {gate.SESSION_CAP:.0%} of the training corrections; "
        "labels are balanced.",
        "",
        "## Training",
        "",
        f"- Fine-tuned from `{report['active_before']}` for {report['train_config']['steps']} "
        f"steps on {d['corrections_train']} corrections and {d['mnist_replay']} replayed MNIST "
        "images, distilling the parent's answers on the replayed images.",
        f"- Temperature {report['temperature']:.4f}, fitted on {d['calibration']} images: MNIST "
        f"training images not replayed and {d['corrections_calibration']} corrections from "
        "training sessions kept out of fine-tuning; none from the held-out sessions.",
        f"- {report['seconds']:.0f} s in all.",
        "",
    ]
    return "\n".join(lines)


def _write_report(report: dict[str, Any], report_dir: Path) -> None:
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "retrain.json").write_text(json.dumps(report, indent=1))
    (report_dir / "retrain.md").write_text(report_markdown(report))


def _candidate_metrics(
    parent: ckpt.Checkpoint, results: dict[str, dict[str, Any]], sessions: int
) -> dict[str, Any]:
    candidate, active = results["candidate"], results["active"]
    inherited = {  # fitted on `validation` writers, which a fine-tune on corrections never sees
        key: parent.metrics[key] for key in ("not_a_digit_threshold",) if key in parent.metrics
    }
    return inherited | {
        "heldout_sessions": sessions,
        "mnist_accuracy": candidate["mnist"]["accuracy"],
        "heldout_accuracy": candidate["heldout"]["accuracy"],
        "heldout_samples": candidate["heldout"]["n"],
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
    num_classes = int(parent.model_args.get("num_classes", 10))
    corrections = load_corrections(settings.resolved_database_url, num_classes)
    answered = answers(Predictor(parent), corrections.images).labels()
    split = gate.split(corrections.sessions, corrections.labels, answered)
    heldout_sessions = len(np.unique(corrections.sessions[split.heldout]))
    log.info(
        "corrections: %d for training, %d held out (%d sessions), %d excluded (%d sessions)",
        int(split.train.sum()),
        int(split.heldout.sum()),
        heldout_sessions,
        split.excluded_corrections,
        len(split.excluded),
    )
    report: dict[str, Any] = {
        "active_before": active,
        "corrections_train": int(split.train.sum()),
        "corrections_heldout": int(split.heldout.sum()),
        "heldout_sessions": heldout_sessions,
        "heldout_samples": int(split.heldout.sum()),
        "screen": {
            "typical_rate": split.typical_rate,
            "excluded": {k: vars(v) for k, v in split.excluded.items()},
            "excluded_corrections": split.excluded_corrections,
            "unusable_not_a_digit": corrections.unusable,
        },
    }
    if int(split.train.sum()) < MIN_TRAIN or int(split.heldout.sum()) < MIN_HELDOUT:
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
    candidate = train_candidate(parent, corrections, split, options, cache_dir)
    results, correct = compare(
        {"active": parent, "candidate": candidate},
        mnist_test=train.framed_mnist("test", options.mnist_dir, cache_dir),
        heldout=corrections.subset(split.heldout),
        canvas=_canvas_inputs(options.mnist_dir, cache_dir, options.canvas_n),
    )
    interval = gate.paired_interval(
        correct["active"], correct["candidate"], corrections.sessions[split.heldout]
    )
    decision = gate.decide(
        interval, results["active"]["mnist"]["accuracy"], results["candidate"]["mnist"]["accuracy"]
    )
    candidate.metrics = _candidate_metrics(parent, results, heldout_sessions)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    report_dir = (
        options.report_dir or settings.data_dir / "reports" / f"{stamp}-{candidate.version}"
    )
    promote = decision.accept and options.promote
    accepted = "accepted, not promoted" if decision.accept else "rejected"
    report |= {
        "decision": "promoted" if promote else accepted,
        "promoted": promote,
        "candidate": candidate.version,
        "active": candidate.version if promote else active,
        "reasons": decision.reasons,
        "heldout_interval": vars(interval),
        "temperature": candidate.temperature,
        "train_config": candidate.train_config,
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
        registry.promote(candidate.version, reason="; ".join(decision.reasons))
    log.info("%s: candidate %s (%s)", report["decision"], candidate.version, report["reasons"])
    return report


def summary_line(report: dict[str, Any]) -> dict[str, Any]:
    """The one JSON line `digits retrain` prints."""
    keys = (
        "decision",
        "promoted",
        "active_before",
        "candidate",
        "active",
        "reasons",
        "heldout_sessions",
        "heldout_samples",
        "seconds",
    )
    line = {k: report[k] for k in keys if k in report}
    if "results" in report:
        line["accuracy"] = {
            name: {key: row[key]["accuracy"] for key in row if key != "version"}
            for name, row in report["results"].items()
        }
        line["heldout_interval"] = report["heldout_interval"]
        line["excluded_sessions"] = len(report["screen"]["excluded"])
        line["report"] = report["report"]
    return line


def retrain_command(args: argparse.Namespace) -> int:
    options = Options(
        mnist_dir=args.mnist_dir,
        epochs=args.epochs,
        report_dir=args.report_dir,
        promote=not args.no_promote,
        canvas_n=getattr(args, "canvas_n", CANVAS_N),
    )
    report = retrain(get_settings(), options)
    sys.stdout.write(json.dumps(summary_line(report)) + "\n")
    return 0

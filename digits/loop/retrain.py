"""`digits retrain`: users' corrections -> a fine-tuned candidate, judged on people it never saw.

1. Every labelled prediction (its 28x28 input and true label; "not a digit" is class 10 for a
   model with 11 outputs) is grouped by session. ``digits.loop.gate`` screens out sessions that
   disagree with the active model far more than sessions typically do, holds out whole sessions
   by hash, and caps each training session's weight.
2. The candidate is fine-tuned from the active model (``finetune.fine_tune``): every batch mixes
   the weighted corrections, balanced by label, with replayed MNIST training images on which it
   is also pulled towards the active model's answers (distillation), so it keeps what it knew.
3. Its temperature is fitted on MNIST images it did not train on and on a fold of the training
   sessions kept out of fine-tuning: never on the held-out sessions that judge it.
4. ``gate.decide`` promotes it only when it is better on the held-out sessions beyond the noise
   and within ``gate.MNIST_TOLERANCE`` on MNIST test. A report is written either way.
"""

from __future__ import annotations

import argparse
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

from digits import checkpoint as ckpt
from digits.config import Settings, get_settings
from digits.data import mnist
from digits.loop import gate, judge
from digits.loop.corrections import Corrections, load_corrections
from digits.loop.registry import Registry
from digits.loop.report import summary_line, write_report
from digits.model import NUM_DIGITS
from digits.predict import Predictor
from digits.training import data, finetune, train
from digits.training.calibration import fit_temperature, logits_of

log = logging.getLogger(__name__)


MIN_TRAIN, MIN_HELDOUT = 10, 5
REPLAY = 6000  # MNIST training images replayed
CALIBRATION_MNIST = 2000  # MNIST training images (not replayed) for the temperature
CALIBRATION_PERCENT = 15  # of the non-held-out sessions: kept out of training, for the temperature
BATCH_MNIST, BATCH_CORRECTIONS = 96, 32
STEPS_PER_EPOCH = 100
MAX_LR = 1e-3
# Pulls the fine-tune towards the active model on replayed MNIST. 10 held it so close that a
# model with room to learn (the MNIST-only one, on `loop` writers' corrections) gained less than
# a third as much on `validation` writers as at 3, where MNIST test stays as it was.
DISTILL_WEIGHT = 3.0
CANVAS_N = 200  # drawings per canvas benchmark mode: enough to see a regression, and quick


@dataclass(frozen=True)
class Options:
    mnist_dir: Path | None = None
    epochs: int = 2
    report_dir: Path | None = None
    promote: bool = True
    canvas_n: int = CANVAS_N
    seed: int = 0


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
    framed = data.framed_mnist(
        "train", options.mnist_dir, cache_dir, limit=REPLAY + CALIBRATION_MNIST
    )
    order = np.random.default_rng(options.seed).permutation(len(framed.labels))
    replay_idx, calib_idx = order[:REPLAY], order[REPLAY : REPLAY + CALIBRATION_MNIST]
    # The temperature's fold: a share of sessions independent of the held-out one (salted).
    calibration = np.array(
        [gate.in_share(str(s), CALIBRATION_PERCENT, b"calibration:") for s in corrections.sessions],
        dtype=bool,
    )
    calibration &= split.train
    fit_rows = split.train & ~calibration
    if not fit_rows.any():  # too few sessions to spare a fold: calibrate on MNIST alone
        fit_rows, calibration = split.train, np.zeros_like(split.train)
    weights = gate.capped_weights(corrections.sessions, corrections.labels, fit_rows)
    steps = options.epochs * STEPS_PER_EPOCH
    model = finetune.fine_tune(
        parent,
        [
            finetune.Source(
                mnist.Dataset(framed.images[replay_idx], framed.labels[replay_idx]),
                BATCH_MNIST,
                distill=True,
            ),
            finetune.Source(corrections.subset(fit_rows), BATCH_CORRECTIONS, weights[fit_rows]),
        ],
        steps=steps,
        max_lr=MAX_LR,
        seed=options.seed,
        distill_weight=DISTILL_WEIGHT,
    )
    # On digits and their ten outputs only, as train.fit does: the Predictor divides those by it.
    calibration &= corrections.labels < NUM_DIGITS
    calibration_x = np.concatenate([framed.images[calib_idx], corrections.images[calibration]])
    calibration_y = np.concatenate([framed.labels[calib_idx], corrections.labels[calibration]])
    logits = logits_of(model, calibration_x, torch.device("cpu"))[:, :NUM_DIGITS]
    temperature = fit_temperature(logits, torch.from_numpy(calibration_y))
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
    answered = judge.answers(Predictor(parent), corrections.images).labels()
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
    results, correct = judge.compare(
        {"active": parent, "candidate": candidate},
        mnist_test=data.framed_mnist("test", options.mnist_dir, cache_dir),
        heldout=corrections.subset(split.heldout),
        canvas=judge.canvas_inputs(options.mnist_dir, cache_dir, options.canvas_n),
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
    write_report(report, report_dir)
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

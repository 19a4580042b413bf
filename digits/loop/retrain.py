"""`digits retrain`: users' corrections -> a fine-tuned model, judged on people it never saw.

1. Every labelled prediction (its 28x28 input and true label; "not a digit" is class 10 for a
   model with 11 outputs) is grouped by session. ``digits.gate`` pools anonymous rows and small
   sessions, screens out sessions that disagree with the active model far more than sessions
   typically do, and deals the other sessions into K folds.
2. One recipe (``crossfit``) fine-tunes K fold candidates, each on every kept row but its fold's,
   and the final model on every kept row, side by side.
3. Each fold candidate answers its own fold: the pooled out-of-fold answers are the evidence,
   every session counted once, by a model that never saw that person.
4. The final model's temperature is fitted on MNIST images it did not train on and on the fold
   candidates' out-of-fold answers: the same recipe, on people it had not seen.
5. ``gate.decide`` promotes the final model only when the out-of-fold evidence is better beyond
   the noise and the final model is within ``gate.MNIST_TOLERANCE`` on MNIST test. A report is
   written either way, and the final model is registered as the candidate.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from digits import checkpoint as ckpt
from digits.config import Settings, get_settings
from digits.data import mnist
from digits.loop import crossfit, gate, judge
from digits.loop.corrections import Corrections, load_corrections
from digits.loop.registry import Registry
from digits.loop.report import summary_line, write_report
from digits.model import NUM_DIGITS
from digits.predict import Predictor
from digits.read import pieces, probe
from digits.training import data
from digits.training.calibration import fit_temperature, logits_of

log = logging.getLogger(__name__)


MIN_TRAIN, MIN_HELDOUT = 10, 5
CALIBRATION_MNIST = 2000  # MNIST training images (not replayed) for the temperature
CANVAS_N = 200  # drawings per canvas benchmark mode: enough to see a regression, and quick
# One epoch (100 steps) for every fit, rather than fewer for the folds only: the out-of-fold
# evidence must be about the very recipe that makes the promoted model, and the K + 1 fits must
# stay under five minutes on two cores. Back to back on this project's two cores, busy with
# other work: 7,500 corrections took 714 s so, and 932 s with the single split of two epochs.
EPOCHS = 1
# `train` numbers composed to fit a candidate's number-reader probe (digits.read.pieces): about
# 25 s on two cores. For the shipped model, such a probe tells 82.8 % of `validation` pieces
# apart (82.4 % from 3,000), and the reader's `validation` figures stay within 1.5 points of the
# shipped probe's.
PROBE_NUMBERS = 2000


@dataclass(frozen=True)
class Options:
    mnist_dir: Path | None = None
    epochs: int = EPOCHS
    report_dir: Path | None = None
    promote: bool = True
    canvas_n: int = CANVAS_N
    seed: int = 0
    probe_numbers: int = PROBE_NUMBERS


@dataclass(frozen=True)
class Fitted:
    """The final model and the evidence of its recipe: each fold's candidate on its fold."""

    final: ckpt.Checkpoint
    folds: list[ckpt.Checkpoint]


def fit_models(
    parent: ckpt.Checkpoint,
    corrections: Corrections,
    split: gate.Split,
    options: Options,
    cache_dir: Path,
    on_step: Callable[[float], None] | None = None,
) -> Fitted:
    """Fine-tune the fold candidates and the final model; fit the temperature they share.
    ``on_step`` hears the share of fine-tuning steps done."""
    # The first images of the training set (framed now, a few seconds) rather than the framed
    # 60 000 (a minute to make where no cache exists yet).
    framed = data.framed_mnist(
        "train", options.mnist_dir, cache_dir, limit=crossfit.REPLAY + CALIBRATION_MNIST
    )
    rng = np.random.default_rng(options.seed)
    order = rng.permutation(len(framed.labels))
    replay_idx = order[: crossfit.REPLAY]
    calib_idx = order[crossfit.REPLAY : crossfit.REPLAY + CALIBRATION_MNIST]
    recipe = crossfit.Recipe(
        parent,
        mnist.Dataset(framed.images[replay_idx], framed.labels[replay_idx]),
        mnist.Dataset(corrections.images, corrections.labels),
        steps=options.epochs * crossfit.STEPS_PER_EPOCH,
        seed=options.seed,
    )
    rows = [split.train(k) for k in range(split.folds)] + [split.train()]
    models = crossfit.fit_all(
        recipe,
        [gate.capped_weights(split.sessions, corrections.labels, r) for r in rows],
        on_step=on_step,
    )
    # On digits and their ten outputs only, as train.fit does: the Predictor divides those by it.
    # Each correction's logits come from the candidate that never saw its session; as many
    # corrections as MNIST images at most, so that neither decides the temperature alone.
    cpu = torch.device("cpu")
    logits = [logits_of(models[-1], framed.images[calib_idx], cpu)[:, :NUM_DIGITS]]
    labels = [framed.labels[calib_idx]]
    digits = np.flatnonzero(split.evidence & (corrections.labels < NUM_DIGITS))
    chosen = np.zeros(len(corrections.labels), dtype=bool)
    chosen[rng.permutation(digits)[:CALIBRATION_MNIST]] = True
    for k, model in enumerate(models[:-1]):
        rows = chosen & (split.fold == k)
        logits.append(logits_of(model, corrections.images[rows], cpu)[:, :NUM_DIGITS])
        labels.append(corrections.labels[rows])
    temperature = fit_temperature(torch.cat(logits), torch.from_numpy(np.concatenate(labels)))
    config = recipe.config() | {"session_cap": gate.SESSION_CAP, "folds": split.folds}
    checkpoints = [
        ckpt.from_model(
            model,
            parent.model_args,
            temperature=temperature,
            train_config=config,
            parent=parent.version,
        )
        for model in models
    ]
    final = checkpoints[-1]
    final.data = {
        "corrections_train": int(split.train().sum()),
        "corrections_excluded": split.excluded_corrections,
        "sessions_excluded": len(split.excluded),
        "pool": int((split.kept & (split.sessions == gate.POOL)).sum()),
        "evidence_samples": int(split.evidence.sum()),
        "mnist_replay": len(replay_idx),
        "calibration": sum(len(y) for y in labels),
        "calibration_corrections": sum(len(y) for y in labels[1:]),
        "epochs": options.epochs,
    }
    return Fitted(final, checkpoints[:-1])


def fold_figures(
    split: gate.Split, correct_active: np.ndarray, correct_candidate: np.ndarray
) -> list[dict[str, Any]]:
    """Each fold's sessions, samples, and accuracy of the active model and of its candidate
    (arrays over the evidence rows, in row order)."""
    fold = split.fold[split.evidence]
    sessions = split.sessions[split.evidence]
    figures = []
    for k in range(split.folds):
        rows = fold == k
        active, candidate = (
            float(correct_active[rows].mean()),
            float(correct_candidate[rows].mean()),
        )
        figures.append(
            {
                "fold": k,
                "sessions": len(np.unique(sessions[rows])),
                "samples": int(rows.sum()),
                "active_accuracy": active,
                "candidate_accuracy": candidate,
                "difference": candidate - active,
            }
        )
    return figures


def _candidate_metrics(
    parent: ckpt.Checkpoint, results: dict[str, dict[str, Any]], sessions: int
) -> dict[str, Any]:
    candidate, active = results["candidate"], results["active"]
    inherited = {  # fitted on `validation` writers, which a fine-tune on corrections never sees
        key: parent.metrics[key] for key in ("not_a_digit_threshold",) if key in parent.metrics
    }
    # "heldout": the out-of-fold evidence, under the names every version's card already uses.
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


def _evidence(
    parent_read: judge.Answers, fitted: Fitted, corrections: Corrections, split: gate.Split
) -> tuple[judge.Answers, judge.Answers]:
    """The active model's answers on the evidence rows, and each fold candidate's on its fold."""
    images, fold = corrections.images[split.evidence], split.fold[split.evidence]
    probs = np.zeros((len(images), NUM_DIGITS), dtype=np.float32)
    rejected = np.zeros(len(images), dtype=bool)
    for k, candidate in enumerate(fitted.folds):
        read = judge.answers(Predictor(candidate.for_serving()), images[fold == k])
        probs[fold == k], rejected[fold == k] = read.probs, read.rejected
    return parent_read.subset(split.evidence), judge.Answers(probs, rejected)


def retrain(
    settings: Settings, options: Options, *, progress: Callable[[float], None] | None = None
) -> dict[str, Any]:
    """The whole loop; returns the report (also written to the report folder). ``progress``
    hears how far it got, 0-1: most of the time goes to fine-tuning, then to judging."""
    progress = progress or (lambda _: None)
    started = time.perf_counter()
    if settings.model_path is not None:
        log.warning("DIGITS_MODEL_PATH is set: the API serves that file, not the registry's model")
    registry = Registry.from_settings(settings)
    active = registry.ensure().active
    assert active is not None  # ensure() activates the shipped weights at least
    parent = ckpt.load_bytes(registry.checkpoint_bytes(active), name=f"registered model {active}")
    num_classes = int(parent.model_args.get("num_classes", 10))
    corrections = load_corrections(settings.resolved_database_url, num_classes)
    parent_read = judge.answers(Predictor(parent.for_serving()), corrections.images)
    split = gate.split(
        corrections.sessions,
        corrections.labels,
        parent_read.labels(),
        folds=settings.retrain_folds,
        min_session=settings.retrain_min_session,
    )
    evidence_sessions = len(np.unique(split.sessions[split.evidence]))
    log.info(
        "corrections: %d for training, %d of them evidence (%d sessions in %d folds), "
        "%d excluded (%d sessions)",
        int(split.train().sum()),
        int(split.evidence.sum()),
        evidence_sessions,
        split.folds,
        split.excluded_corrections,
        len(split.excluded),
    )
    report: dict[str, Any] = {
        "active_before": active,
        "corrections_train": int(split.train().sum()),
        "corrections_heldout": int(split.evidence.sum()),
        "evidence_sessions": evidence_sessions,
        "heldout_sessions": evidence_sessions,
        "heldout_samples": int(split.evidence.sum()),
        "folds": [],
        "screen": {
            "typical_rate": split.typical_rate,
            "excluded": {k: vars(v) for k, v in split.excluded.items()},
            "excluded_corrections": split.excluded_corrections,
            "unusable_not_a_digit": corrections.unusable,
            "min_session": settings.retrain_min_session,
        },
    }
    if (
        int(split.train().sum()) < MIN_TRAIN
        or int(split.evidence.sum()) < MIN_HELDOUT
        or split.folds < 2
    ):
        return report | {
            "decision": "skipped",
            "promoted": False,
            "active": active,
            "reasons": [
                f"too few corrections: need {MIN_TRAIN} for training and {MIN_HELDOUT} from at "
                f"least two sessions of {settings.retrain_min_session} or more to judge by"
            ],
            "seconds": round(time.perf_counter() - started, 1),
        }

    cache_dir = settings.resolved_cache_dir
    progress(0.05)
    fitted = fit_models(
        parent, corrections, split, options, cache_dir, lambda done: progress(0.05 + 0.75 * done)
    )
    progress(0.8)
    candidate = fitted.final
    # The number reader's probe reads this model's features: fitted anew, carried in its data
    # (a model without the not-a-digit class has no probability for it to share out).
    serving = Predictor(candidate.for_serving())
    if serving.rejects:
        fresh_probe = pieces.fit_for(serving, options.probe_numbers)
        candidate.data |= {probe.DATA_KEY: fresh_probe.as_data()}
    results = judge.compare(
        {"active": parent, "candidate": candidate},
        mnist_test=data.framed_mnist("test", options.mnist_dir, cache_dir),
        canvas=judge.canvas_inputs(options.mnist_dir, cache_dir, options.canvas_n),
    )
    labels = corrections.labels[split.evidence]
    read_active, read_folds = _evidence(parent_read, fitted, corrections, split)
    correct_active, correct_candidate = read_active.correct(labels), read_folds.correct(labels)
    results["active"]["heldout"] = judge.summary(read_active, labels)
    results["candidate"]["heldout"] = judge.summary(read_folds, labels)
    interval = gate.paired_interval(
        correct_active, correct_candidate, split.sessions[split.evidence]
    )
    decision = gate.decide(
        interval, results["active"]["mnist"]["accuracy"], results["candidate"]["mnist"]["accuracy"]
    )
    folds = fold_figures(split, correct_active, correct_candidate)
    candidate.metrics = _candidate_metrics(parent, results, evidence_sessions)
    candidate.data |= {"folds": folds, "evidence_sessions": evidence_sessions}
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
        "folds": folds,
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
        epochs=EPOCHS if args.epochs is None else args.epochs,
        report_dir=args.report_dir,
        promote=not args.no_promote,
        canvas_n=getattr(args, "canvas_n", CANVAS_N),
    )
    report = retrain(get_settings(), options)
    sys.stdout.write(json.dumps(summary_line(report)) + "\n")
    return 0

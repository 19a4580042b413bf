"""A retraining's report: the Markdown the registry keeps and the Models page shows, the JSON
beside it, and the one line `digits retrain` prints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from digits.loop import gate
from digits.training.evaluate import CANVAS_MODES


def report_markdown(report: dict[str, Any]) -> str:
    results = report["results"]
    screen = report["screen"]
    d = report["data"]
    lines = [
        f"# Retraining report: candidate `{report['candidate']}` vs active `{report['active_before']}`",
        "",
        f"**Decision: {report['decision']}.**",
        "",
        *(f"- {reason}" for reason in report["reasons"]),
        "",
        f"Evidence: {report['evidence_sessions']} sessions, {report['heldout_samples']} samples, "
        f"in {len(report['folds'])} folds of whole sessions. Each fold is judged by a candidate "
        "fine-tuned on every other fold, so every session counts once, read by a model that "
        "never saw that person; the candidate below is then fine-tuned on all of them.",
        "",
        "| set | n | active accuracy | candidate accuracy | change | active ECE | candidate ECE |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, title in [
        ("heldout", "sessions, out of fold"),
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
    lines += [
        "",
        "## Folds",
        "",
        "| fold | sessions | samples | active accuracy | its candidate's accuracy | change |",
        "|---|---|---|---|---|---|",
        *(
            f"| {f['fold'] + 1} | {f['sessions']} | {f['samples']} | {f['active_accuracy']:.3%} "
            f"| {f['candidate_accuracy']:.3%} | {f['difference'] * 100:+.2f} pp |"
            for f in report["folds"]
        ),
        "",
        "## Sessions",
        "",
        f"- Typical disagreement with the active model: {screen['typical_rate']:.1%} of a "
        f"session's labels. Left out of training and of the evidence as far more "
        f"disagreeing: {len(screen['excluded'])} sessions, {screen['excluded_corrections']} "
        "corrections.",
        f"- Rows without a session and sessions of fewer than {screen['min_session']} labelled "
        f"rows share one pool ({d['pool']} corrections kept): trained on as one session, never "
        "evidence.",
        f"- No session weighs more than {gate.SESSION_CAP:.0%} of any label's training corrections; "
        "labels are balanced.",
        "",
        "## Training",
        "",
        f"- Every fold's candidate and the final model: fine-tuned from "
        f"`{report['active_before']}` for {report['train_config']['steps']} steps with "
        f"{d['mnist_replay']} replayed MNIST images, distilling the parent's answers on them; "
        f"the final model on all {d['corrections_train']} kept corrections.",
        f"- Temperature {report['temperature']:.4f}, fitted on {d['calibration']} images: MNIST "
        f"training images not replayed, and {d['calibration_corrections']} corrections as read "
        "by the fold candidate that never saw them.",
        f"- {report['seconds']:.0f} s in all.",
        "",
    ]
    return "\n".join(lines)


def write_report(report: dict[str, Any], report_dir: Path) -> None:
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "retrain.json").write_text(json.dumps(report, indent=1))
    (report_dir / "retrain.md").write_text(report_markdown(report))


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
        "evidence_sessions",
        "folds",
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

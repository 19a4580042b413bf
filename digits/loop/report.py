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

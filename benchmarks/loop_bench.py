"""The learning loop with real handwriting: `loop` writers correct the model, `test` writers judge it.

    .venv/bin/python benchmarks/loop_bench.py [--letters 5] [--poison 0] [--keep DIR] [--start PATH]
        [--repeat N]

1. A fresh data folder and SQLite database; the registry starts from the shipped model, which
   never saw the `loop` or `test` writers of digits/datasets/pen (or from ``--start``: e.g. the
   MNIST-only model before it, which saw no pen data at all and so leaves the loop more to learn:
   ``git show 677be87:digits/weights/model.pt > var/runs/mnist-base.pt``, see the README).
2. A real `digits serve` process. Every `loop` writer's digits (and ``--letters`` of their
   letters nobody would read as a digit) are drawn onto the 280x280 canvas, sent to
   POST /api/predictions in one session per writer (POST /api/sessions), and labelled with PATCH as the user
   would: the true digit, or "not a digit" for a letter. ``--poison N`` adds one more session
   that labels N drawings of 3 as 8.
3. `digits retrain`, timed, on a copy of that database; ``--repeat N`` runs it N times, each on a
   copy whose sessions are the same people under new ids: the same corrections, and only what
   the session ids decide (which folds the gate deals them into) changes between runs.
4. The active model before, the candidate and the model active after each run, on every `test`
   writer's digits: error, the 95 % bootstrap interval of the difference (paired, resampling
   writers), ECE, accuracy on 3s; MNIST from the retraining report. Prints a table and one JSON
   line (with ``--repeat``: each run's, and the spread of the error after across runs).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from sqlalchemy import select, update

from digits import preprocess
from digits.api.testing import free_port
from digits.config import Settings
from digits.data import pen
from digits.db.models import PredictionRow
from digits.db.session import Database
from digits.loop import judge
from digits.loop.registry import Registry
from digits.predict import Predictor
from digits.synth import drawings
from digits.training.metrics import expected_calibration_error

DIGITS = str(Path(sys.executable).parent / "digits")

SESSIONS = uuid.UUID("3c6f7a52-5f0e-4d0b-9a51-6f1d3b8e2a10")  # namespace of renamed sessions


def start_server(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [DIGITS, "serve", "--port", str(port)],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the API exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return process, base_url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    process.terminate()
    raise SystemExit("the API did not become ready in 180 s")


def new_session(client: httpx.Client) -> dict[str, str]:
    """The headers of a new session (one per writer, as one per person and device)."""
    created = client.post("/api/sessions")
    created.raise_for_status()
    return {"X-Session-Token": created.json()["session_token"]}


def label_through_api(
    client: httpx.Client, image: np.ndarray, session: dict[str, str], body: dict[str, object]
) -> bool:
    """POST the drawing in a session, PATCH the user's label; False if the API refused it."""
    posted = client.post(
        "/api/predictions",
        files={"image": ("d.png", drawings.to_png(image), "image/png")},
        data={"source": "canvas"},
        headers=session,
    )
    if posted.status_code != 201:
        return False
    patched = client.patch(f"/api/predictions/{posted.json()['id']}", json=body, headers=session)
    return patched.status_code == 200


def start_from(path: Path, registry: Registry) -> None:
    """Register ``path`` and make it the active model the loop starts from."""
    registry.ensure()
    version, _ = registry.register(path, origin="manual")
    registry.promote(version, reason="loop_bench --start")


def send_loop_writers(base_url: str, letters: int, poison: int, seed: int) -> dict[str, int]:
    rng = np.random.default_rng(seed)
    digits = pen.load("digits", "loop")
    rejects = pen.rejectable_letters(pen.load("letters", "loop"))
    counts = {"sessions": 0, "digits": 0, "letters": 0, "refused": 0, "poison": 0}
    with httpx.Client(base_url=base_url, timeout=60) as client:
        for writer in sorted({s.writer for s in digits}):
            session = new_session(client)
            counts["sessions"] += 1
            for sample in (s for s in digits if s.writer == writer):
                ok = label_through_api(
                    client,
                    pen.draw(sample.strokes, rng),
                    session,
                    {"true_label": sample.digit},
                )
                counts["digits" if ok else "refused"] += 1
            for sample in [s for s in rejects if s.writer == writer][:letters]:
                ok = label_through_api(
                    client, pen.draw(sample.strokes, rng), session, {"not_a_digit": True}
                )
                counts["letters" if ok else "refused"] += 1
        threes = [s for s in digits if s.digit == 3]
        poisoner = new_session(client)
        for i in range(poison):
            sample = threes[i % len(threes)]
            ok = label_through_api(
                client, pen.draw(sample.strokes, rng), poisoner, {"true_label": 8}
            )
            counts["poison" if ok else "refused"] += 1
    return counts


def test_writers(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    samples = pen.load("digits", "test")
    inputs = np.stack([preprocess.to_model_input(pen.draw(s.strokes, rng)) for s in samples])
    labels = np.array([s.digit for s in samples], dtype=np.int64)
    return inputs, labels, np.array([s.writer for s in samples])


def bootstrap_difference(
    wrong_before: np.ndarray, wrong_after: np.ndarray, writers: np.ndarray, seed: int
) -> tuple[float, float, float]:
    """Error after minus error before, with its 95 % interval (paired, writers resampled)."""
    keys, inverse = np.unique(writers, return_inverse=True)
    change = np.bincount(inverse, weights=wrong_after.astype(float) - wrong_before.astype(float))
    size = np.bincount(inverse).astype(float)
    picks = np.random.default_rng(seed).integers(len(keys), size=(10_000, len(keys)))
    diffs = change[picks].sum(axis=1) / size[picks].sum(axis=1)
    low, high = np.quantile(diffs, [0.025, 0.975])
    return float(change.sum() / size.sum()), float(low), float(high)


def figures(read: judge.Answers, labels: np.ndarray) -> dict[str, float]:
    correct = read.correct(labels)
    return {
        "error": float(1 - correct.mean()),
        "ece": expected_calibration_error(read.probs.max(axis=1), correct),
        "accuracy_3": float(correct[labels == 3].mean()),
    }


def renamed_sessions(url: str, namespace: uuid.UUID) -> None:
    """Give every session a new id: the same people and corrections, under other names."""
    database = Database(url)
    try:
        with database.write() as session:
            old_ids = session.scalars(
                select(PredictionRow.session_id)
                .where(PredictionRow.session_id.is_not(None))
                .distinct()
            ).all()
            for old in old_ids:
                session.execute(
                    update(PredictionRow)
                    .where(PredictionRow.session_id == old)
                    .values(session_id=uuid.uuid5(namespace, str(old)))
                )
    finally:
        database.dispose()


def retrain_copy(root: Path, run: int, env: dict[str, str]) -> tuple[dict[str, Any], float, Path]:
    """`digits retrain` on a copy of the sent database (sessions renamed after the first run):
    its JSON line, its seconds, and the copy's data folder."""
    folder = root / f"run-{run}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    # SQLite's own backup: a plain file copy could miss what its write-ahead log still holds.
    with (
        sqlite3.connect(root / "digits.sqlite3") as source,
        sqlite3.connect(folder / "digits.sqlite3") as copy,
    ):
        source.backup(copy)
    url = f"sqlite:///{folder / 'digits.sqlite3'}"
    if run > 1:
        renamed_sessions(url, uuid.uuid5(SESSIONS, f"repeat {run}"))
    env = env | {"DIGITS_DATA_DIR": str(folder / "data"), "DIGITS_DATABASE_URL": url}
    started = time.perf_counter()
    done = subprocess.run([DIGITS, "retrain"], env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(done.returncode)
    return json.loads(done.stdout.strip().splitlines()[-1]), seconds, folder / "data"


def judge_run(
    line: dict[str, Any],
    registry: Registry,
    test: tuple[np.ndarray, np.ndarray, np.ndarray],
    seed: int,
) -> dict[str, Any]:
    """The `test` writers read by the model before, the candidate and the model active after."""
    inputs, labels, writers = test
    reads = {
        name: judge.answers(Predictor(registry.load(version)), inputs)
        for name, version in (
            ("before", line["active_before"]),
            # The candidate is judged even when the gate refused it: what the refusal left.
            ("candidate", line.get("candidate", line["active"])),
            ("after", line["active"]),
        )
    }
    wrong = {name: ~read.correct(labels) for name, read in reads.items()}
    figures_of = {name: figures(read, labels) for name, read in reads.items()}
    change, low, high = bootstrap_difference(wrong["before"], wrong["candidate"], writers, seed)
    after, after_low, after_high = bootstrap_difference(
        wrong["before"], wrong["after"], writers, seed
    )
    return {
        "n": len(labels),
        "writers": len(set(writers)),
        "before": figures_of["before"],
        # "after": the candidate's figures, as every earlier report of this benchmark gave them.
        "after": figures_of["candidate"],
        "error_change": change,
        "error_change_95": [low, high],
        "active_after": figures_of["after"],
        "active_after_change": after,
        "active_after_change_95": [after_low, after_high],
    }


def run_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    errors = [r["test_writers"]["active_after"]["error"] for r in runs]
    promoted = [r for r in runs if r["promoted"]]
    return {
        "runs": len(runs),
        "decisions": [r["decision"] for r in runs],
        "same_decision": len({r["decision"] for r in runs}) == 1,
        "promoted_runs_interval_excludes_zero": all(
            r["test_writers"]["active_after_change_95"][1] < 0 for r in promoted
        ),
        "error_after": errors,
        "error_after_spread_pp": (max(errors) - min(errors)) * 100,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--letters", type=int, default=5, help="letters per loop writer")
    parser.add_argument("--poison", type=int, default=0, help="3s labelled 8 by one session")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, default=None, help="work here instead of a temp dir")
    parser.add_argument(
        "--start", type=Path, default=None, help="the active model to start from (default: shipped)"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="retrain N times, the sessions renamed each time"
    )
    parser.add_argument(
        "--first-run",
        type=int,
        default=1,
        help="number the runs from here: the renamed sessions of run K are always the same, so "
        "--first-run 4 --repeat 2 adds runs 4 and 5 to an earlier --repeat 3",
    )
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="loop-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGITS_")} | {
        "DIGITS_DATA_DIR": str(root / "data"),
        "DIGITS_DATABASE_URL": f"sqlite:///{root / 'digits.sqlite3'}",
        "DIGITS_MNIST_DIR": os.environ.get("DIGITS_MNIST_DIR", "../shared/mnist"),
        # One cache of framed MNIST for every run.
        "DIGITS_CACHE_DIR": str(root / "data" / "mnist"),
        "DIGITS_LOG_LEVEL": "WARNING",
        "DIGITS_RATE_LIMIT": "0",
    }
    settings = Settings(database_url=env["DIGITS_DATABASE_URL"], data_dir=root / "data")
    if args.start is not None:
        start_from(args.start, Registry.from_settings(settings))
    server, base_url = start_server(env, root / "server.log")
    try:
        started = time.perf_counter()
        counts = send_loop_writers(base_url, args.letters, args.poison, args.seed)
        send_s = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(timeout=60)
    test = test_writers(args.seed + 1)
    runs = []
    for run in range(args.first_run, args.first_run + args.repeat):
        line, retrain_s, data_dir = retrain_copy(root, run, env)
        registry = Registry.from_settings(
            Settings(
                database_url=f"sqlite:///{data_dir.parent / 'digits.sqlite3'}", data_dir=data_dir
            )
        )
        judged = judge_run(line, registry, test, args.seed)
        registry.database.dispose()
        mnist = line.get("accuracy", {})
        result = {
            "sent": counts,
            "send_s": round(send_s, 1),
            "decision": line["decision"],
            "promoted": line["promoted"],
            "heldout_sessions": line["heldout_sessions"],
            "heldout_samples": line["heldout_samples"],
            "evidence_sessions": line.get("evidence_sessions"),
            "heldout_interval": line.get("heldout_interval"),
            "folds": line.get("folds"),
            "excluded_sessions": line.get("excluded_sessions", 0),
            "retrain_s": round(retrain_s, 1),
            "test_writers": judged,
            "mnist": {name: row.get("mnist") for name, row in mnist.items()},
        }
        runs.append(result)
        b, c, a = judged["before"], judged["after"], judged["active_after"]
        low, high = judged["error_change_95"]
        a_low, a_high = judged["active_after_change_95"]
        sys.stdout.write(
            f"run {run} of {args.first_run}-{args.first_run + args.repeat - 1}: {line['decision']} ({'; '.join(line.get('reasons', []))})\n"
            f"  test writers ({judged['n']} digits, {judged['writers']} writers): error "
            f"{b['error']:.2%} -> candidate {c['error']:.2%} (change "
            f"{judged['error_change'] * 100:+.2f} pp, 95% [{low * 100:+.2f}, {high * 100:+.2f}]);"
            f" active after {a['error']:.2%} ({judged['active_after_change'] * 100:+.2f} pp, "
            f"95% [{a_low * 100:+.2f}, {a_high * 100:+.2f}]); ECE {b['ece']:.2%} -> "
            f"{c['ece']:.2%}; 3s {b['accuracy_3']:.2%} -> {c['accuracy_3']:.2%}\n"
            f"  MNIST: {json.dumps(result['mnist'])}; retrain {retrain_s:.0f} s\n"
        )
        sys.stdout.flush()
    if args.repeat == 1:
        sys.stdout.write(json.dumps(runs[0]) + "\n")
        return 0
    summary = run_summary(runs)
    sys.stdout.write(
        f"{args.repeat} runs: {', '.join(summary['decisions'])}; error after "
        f"{', '.join(f'{e:.2%}' for e in summary['error_after'])} (spread "
        f"{summary['error_after_spread_pp']:.2f} pp)\n"
    )
    sys.stdout.write(json.dumps({"runs": runs, "summary": summary}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

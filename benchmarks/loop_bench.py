"""The learning loop with real handwriting: `loop` writers correct the model, `test` writers judge it.

    .venv/bin/python benchmarks/loop_bench.py [--letters 5] [--poison 0] [--keep DIR] [--start PATH]

1. A fresh data folder and SQLite database; the registry starts from the shipped model, which
   never saw the `loop` or `test` writers of digits/datasets/pen (or from ``--start``: e.g. the
   MNIST-only model before it, which saw no pen data at all and so leaves the loop more to learn).
2. A real `digits serve` process. Every `loop` writer's digits (and ``--letters`` of their
   letters nobody would read as a digit) are drawn onto the 280x280 canvas, sent to
   POST /api/predictions in one session per writer (POST /api/sessions), and labelled with PATCH as the user
   would: the true digit, or "not a digit" for a letter. ``--poison N`` adds one more session
   that labels N drawings of 3 as 8.
3. `digits retrain`, timed.
4. The active model before and the promoted model after, on every `test` writer's digits: error,
   the 95 % bootstrap interval of the difference (paired, resampling writers), ECE, accuracy on
   3s; MNIST from the retraining report. Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from digits import preprocess
from digits.api.testing import free_port
from digits.config import Settings
from digits.data import pen
from digits.loop import judge
from digits.loop.registry import Registry
from digits.predict import Predictor
from digits.synth import drawings
from digits.training.metrics import expected_calibration_error

DIGITS = str(Path(sys.executable).parent / "digits")


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--letters", type=int, default=5, help="letters per loop writer")
    parser.add_argument("--poison", type=int, default=0, help="3s labelled 8 by one session")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, default=None, help="work here instead of a temp dir")
    parser.add_argument(
        "--start", type=Path, default=None, help="the active model to start from (default: shipped)"
    )
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="loop-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGITS_")} | {
        "DIGITS_DATA_DIR": str(root / "data"),
        "DIGITS_DATABASE_URL": f"sqlite:///{root / 'digits.sqlite3'}",
        "DIGITS_MNIST_DIR": os.environ.get("DIGITS_MNIST_DIR", "../shared/mnist"),
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
    started = time.perf_counter()
    done = subprocess.run([DIGITS, "retrain"], env=env, capture_output=True, text=True, check=False)
    retrain_s = time.perf_counter() - started
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        return done.returncode
    line = json.loads(done.stdout.strip().splitlines()[-1])

    registry = Registry.from_settings(settings)
    before = registry.load(line["active_before"])
    # The candidate is judged even when the gate refused it: what the refusal left on the table.
    after = registry.load(line.get("candidate", line["active"]))
    inputs, labels, writers = test_writers(args.seed + 1)
    read_before = judge.answers(Predictor(before), inputs)
    read_after = judge.answers(Predictor(after), inputs)
    judged = {"before": figures(read_before, labels), "after": figures(read_after, labels)}
    wrong_before = ~read_before.correct(labels)
    wrong_after = ~read_after.correct(labels)
    change, low, high = bootstrap_difference(wrong_before, wrong_after, writers, args.seed)
    mnist = line.get("accuracy", {})
    result = {
        "sent": counts,
        "send_s": round(send_s, 1),
        "decision": line["decision"],
        "promoted": line["promoted"],
        "heldout_sessions": line["heldout_sessions"],
        "heldout_samples": line["heldout_samples"],
        "excluded_sessions": line.get("excluded_sessions", 0),
        "retrain_s": round(retrain_s, 1),
        "test_writers": {
            "n": len(labels),
            "writers": len(set(writers)),
            **judged,
            "error_change": change,
            "error_change_95": [low, high],
        },
        "mnist": {name: row.get("mnist") for name, row in mnist.items()},
    }
    b, a = judged["before"], judged["after"]
    sys.stdout.write(
        f"decision: {line['decision']} ({'; '.join(line.get('reasons', []))})\n"
        f"test writers ({len(labels)} digits, {len(set(writers))} writers): error "
        f"{b['error']:.2%} -> {a['error']:.2%} (change {change * 100:+.2f} pp, 95% "
        f"[{low * 100:+.2f}, {high * 100:+.2f}]); ECE {b['ece']:.2%} -> {a['ece']:.2%}; "
        f"3s {b['accuracy_3']:.2%} -> {a['accuracy_3']:.2%}\n"
        f"MNIST: {json.dumps(result['mnist'])}; retrain {retrain_s:.0f} s\n"
    )
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

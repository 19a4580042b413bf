"""How long `digits retrain` takes on many corrections, on this machine.

    .venv/bin/python benchmarks/retrain_bench.py [--corrections 7500] [--sessions 30] [--keep DIR]
        [--drawings FILE.npz]

The `loop` writers' pen digits are drawn onto the canvas again and again (a new look each time)
until there are ``--corrections`` of them, stored as the API stores a labelled prediction, in
``--sessions`` sessions of equal size, in a fresh SQLite database. Then `digits retrain` runs
as a user would start it, its progress on stderr, and the wall time is printed with its JSON
line. ``--drawings`` keeps the rendered inputs, so a second run times the very same
corrections without drawing them again.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from digits import preprocess
from digits.data import pen
from digits.db.migrate import upgrade_head
from digits.db.testing import store_corrections

SESSIONS = uuid.UUID("0b7c3e9a-41d2-4f5e-8a6b-2d9c1e7f3a54")


def draw(corrections: int, seed: int, cache: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """The `loop` writers' digits, drawn again and again: (inputs, labels)."""
    if cache is not None and cache.exists():
        with np.load(cache) as saved:
            return saved["inputs"][:corrections], saved["labels"][:corrections]
    rng = np.random.default_rng(seed)
    loop = pen.load("digits", "loop")
    samples = [loop[i % len(loop)] for i in range(corrections)]
    inputs = np.stack([preprocess.to_model_input(pen.draw(s.strokes, rng)) for s in samples])
    labels = np.array([s.digit for s in samples], dtype=np.int64)
    if cache is not None:
        np.savez(cache, inputs=inputs, labels=labels)
    return inputs, labels


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corrections", type=int, default=7500)
    parser.add_argument("--sessions", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, default=None, help="work here instead of a temp dir")
    parser.add_argument("--drawings", type=Path, default=None, help="keep/reuse the inputs here")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="retrain-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{root / 'digits.sqlite3'}"
    upgrade_head(url)
    started = time.perf_counter()
    inputs, labels = draw(args.corrections, args.seed, args.drawings)
    sessions = [
        uuid.uuid5(SESSIONS, str(i * args.sessions // len(labels))) for i in range(len(labels))
    ]
    store_corrections(url, inputs, labels, sessions, model_version="bench")
    sys.stderr.write(f"stored {len(labels)} corrections in {time.perf_counter() - started:.0f} s\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGITS_")} | {
        "DIGITS_DATA_DIR": str(root / "data"),
        "DIGITS_DATABASE_URL": url,
        "DIGITS_MNIST_DIR": os.environ.get("DIGITS_MNIST_DIR", "../shared/mnist"),
        "DIGITS_LOG_LEVEL": "INFO",
    }
    started = time.perf_counter()
    done = subprocess.run(
        [str(Path(sys.executable).parent / "digits"), "retrain", "--no-promote"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        return done.returncode
    line = json.loads(done.stdout.strip().splitlines()[-1])
    sys.stdout.write(
        json.dumps(
            {
                "corrections": args.corrections,
                "sessions": args.sessions,
                "retrain_s": round(seconds, 1),
                "decision": line["decision"],
                "folds": len(line.get("folds", [])),
                "cpus": os.cpu_count(),
            }
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

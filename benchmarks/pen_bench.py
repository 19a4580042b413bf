"""Real-pen benchmark: `test` writers of digits/datasets/pen drawn onto the 280x280 canvas as
users would (brush sizes, scale, position, every canvas encoding), read by the shipped weights
(or --model). Prints a table and one JSON line; exits 1 when a target is missed.

    .venv/bin/python benchmarks/pen_bench.py [--model PATH] [--mnist-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from digits.config import SHIPPED_WEIGHTS
from digits.predict import Predictor
from digits.training.metrics import summarise
from digits.training.pen_benchmark import pen_benchmark

TARGETS = {
    "digits_accuracy": (">=", 0.985),
    "digits_ok": (">=", 0.97),
    "digits_confident_wrong": ("<=", 0.005),
    "digits_ece": ("<=", 0.02),
    "letters_ok": ("<=", 0.10),
    "mnist_accuracy": (">=", 0.995),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="default: the shipped weights")
    parser.add_argument("--mnist-dir", type=Path, default=os.environ.get("DIGITS_MNIST_DIR"))
    args = parser.parse_args()
    predictor = Predictor.from_checkpoint(args.model or SHIPPED_WEIGHTS)
    report = pen_benchmark(predictor)
    digits = report["digits"]
    figures = {
        "model": predictor.version,
        "digits_n": digits["n"],
        "digits_accuracy": digits["accuracy"],
        "digits_ok": digits["status"]["ok"],
        "digits_not_a_digit": digits["status"]["not_a_digit"],
        "digits_confident_wrong": digits["confident_wrong"],
        "digits_ece": digits["ece"],
        "per_digit": digits["per_digit"],
        "letters_n": report["letters"]["n"],
        "letters_ok": report["letters"]["ok"],
        "letters_not_a_digit": report["letters"]["not_a_digit"],
        "scribbles_not_a_digit": report["scribbles"]["not_a_digit"],
        "pairs_not_a_digit": report["pairs"]["not_a_digit"],
    }
    if args.mnist_dir is not None:
        from digits.config import get_settings
        from digits.training.data import framed_mnist

        test = framed_mnist("test", args.mnist_dir, get_settings().resolved_cache_dir)
        figures["mnist_accuracy"] = summarise(predictor.probabilities(test.images), test.labels)[
            "accuracy"
        ]

    print(f"real-pen benchmark, `test` writers, model {predictor.version}")
    print(f"{'figure':28} {'value':>9}  target")
    failed = []
    for name, value in figures.items():
        if not isinstance(value, float):
            continue
        target = TARGETS.get(name)
        verdict = ""
        if target is not None:
            op, bound = target
            met = value >= bound if op == ">=" else value <= bound
            verdict = f"{op} {bound:.1%}  {'met' if met else 'MISSED'}"
            if not met:
                failed.append(name)
        print(f"{name:28} {value:>9.2%}  {verdict}")
    print("per digit: " + "  ".join(f"{d}:{a:.1%}" for d, a in digits["per_digit"].items()))
    print(json.dumps(figures | {"missed": failed}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

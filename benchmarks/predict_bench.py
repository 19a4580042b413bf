"""Prediction speed: `digits predict --json` over many 280x280 PNGs, and single-image latency.

    .venv/bin/python benchmarks/predict_bench.py [--files 6000] [--repeats 2000]

Single-image latency is preprocess + forward on one intra-op thread, from PNG bytes (what the API
receives: saved by Pillow, and as Chromium encodes the web UI's canvas, whose PNG inflates ~4x
faster) and from a decoded RGBA array (what a canvas holds). In the same run, as the baseline,
the forward pass of the typical MNIST CNN (pytorch/examples mnist `Net`: 2 conv layers, 1.2 M
parameters) on an already-framed 28x28 input.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from typical_server import TypicalNet

CANVAS_DRAWING = Path(__file__).with_name("drawings") / "canvas_7.png"


def percentiles(samples: list[float]) -> str:
    p50, p95, p99 = np.percentile(np.array(samples) * 1e3, [50, 95, 99])
    return f"p50 {p50:.3f} ms  p95 {p95:.3f} ms  p99 {p99:.3f} ms"


def timed(fn, repeats: int) -> list[float]:  # type: ignore[no-untyped-def]
    for _ in range(min(50, repeats)):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=6000)
    parser.add_argument("--repeats", type=int, default=2000)
    args = parser.parse_args()

    from digits.config import SHIPPED_WEIGHTS
    from digits.predict import Predictor
    from digits.synth import drawings

    torch.set_num_threads(1)
    predictor = Predictor.from_checkpoint(SHIPPED_WEIGHTS)
    drawn = drawings.benchmark_set(None, None, mode="careless", n=200, seed=7)
    rgba = next(image for image, _ in drawn if image.ndim == 3 and image.shape[2] == 4)
    png = drawings.to_png(rgba)
    framed = torch.zeros(1, 1, 28, 28)
    typical = TypicalNet().eval()

    print(f"single image, one thread ({predictor.version}):")
    print(
        f"  ours, preprocess + forward from RGBA PNG bytes: {percentiles(timed(lambda: predictor.predict(png), args.repeats))}"
    )
    print(
        f"  ours, preprocess + forward from RGBA array:     {percentiles(timed(lambda: predictor.predict(rgba), args.repeats))}"
    )
    canvas = CANVAS_DRAWING.read_bytes()
    print(
        f"  ours, from the canvas PNG Chromium encodes:     {percentiles(timed(lambda: predictor.predict(canvas), args.repeats))}"
    )
    with torch.inference_mode():
        print(
            f"  ours, forward only:                             {percentiles(timed(lambda: predictor.logits(framed[:, 0].numpy()), args.repeats))}"
        )
        print(
            f"  baseline typical CNN, forward only:             {percentiles(timed(lambda: typical(framed), args.repeats))}"
        )

    with tempfile.TemporaryDirectory() as tmp:
        drawn = drawings.benchmark_set(None, None, mode="normal", n=min(args.files, 500), seed=11)
        paths = []
        for i in range(args.files):
            path = Path(tmp) / f"{i:05d}.png"
            path.write_bytes(drawings.to_png(drawn[i % len(drawn)][0]))
            paths.append(str(path))
        start = time.perf_counter()
        result = subprocess.run(
            [str(Path(sys.executable).parent / "digits"), "predict", "--json", *paths],
            capture_output=True,
            text=True,
            check=True,
        )
        elapsed = time.perf_counter() - start
        lines = [json.loads(line) for line in result.stdout.splitlines()]
        statuses = {
            s: sum(1 for line in lines if line["status"] == s)
            for s in ("ok", "uncertain", "empty", "error")
        }
        print(
            f"digits predict --json over {args.files} PNG files (280x280): {elapsed:.1f} s wall, "
            f"{len(lines)} lines, {statuses}"
        )


if __name__ == "__main__":
    main()

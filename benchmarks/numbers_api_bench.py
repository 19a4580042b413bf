"""POST /api/numbers at concurrency 1: a 6-digit number a `test` writer wrote (real pen digits
composed as digits.synth.pen_numbers places them), sent as the web UI sends it (a PNG of black
ink on white, the strokes as a form field) and as an upload (no strokes); POST /api/predictions
with the UI's single-digit canvas in the same run, as the baseline. `digits serve` with one
worker on a fresh SQLite database, loopback only; the load generator is api_bench's.

    nice -n 10 .venv/bin/python benchmarks/numbers_api_bench.py --seconds 5
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
from pathlib import Path

import numpy as np
from api_bench import (
    canvas_png,
    ensure_model,
    multipart_request,
    run_load,
    session_token,
    start_server,
    warm_up,
)
from PIL import Image

from digits.synth import pen_numbers

LENGTH = 6
SEED = 28


def six_digit_number() -> tuple[bytes, str, str]:
    """(PNG, strokes as JSON, the number written): normal gaps, as most people write."""
    writers = pen_numbers.eligible_writers("test")
    rng = np.random.default_rng(SEED)
    own = writers[sorted(writers)[0]]
    chosen = [own[int(i)] for i in rng.choice(len(own), size=LENGTH, replace=False)]
    drawing = pen_numbers.compose(chosen, rng, "normal")
    buffer = io.BytesIO()
    Image.fromarray(255 - drawing.image).save(buffer, format="PNG")
    strokes = json.dumps([np.round(s, 1).tolist() for s in drawing.strokes])
    return buffer.getvalue(), strokes, drawing.label


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    args = parser.parse_args()
    png, strokes, label = six_digit_number()
    with tempfile.TemporaryDirectory() as work:
        workdir = Path(work)
        url = f"sqlite:///{workdir / 'digits.sqlite3'}"
        process, port = start_server(url, workdir, ensure_model(workdir), workers=1)
        try:
            token = session_token(port)
            cases = {
                "POST /api/numbers, 6 digits, with strokes": multipart_request(
                    port, png, token, path="/api/numbers", fields={"strokes": strokes}
                ),
                "POST /api/numbers, 6 digits, upload": multipart_request(
                    port, png, token, path="/api/numbers", fields={"source": "upload"}
                ),
                "POST /api/predictions, 1 digit (baseline)": multipart_request(
                    port, canvas_png(), token
                ),
            }
            print(
                f"number written: {label} ({len(png)} bytes PNG, {Image.open(io.BytesIO(png)).size})"
            )
            print(f"{'request':<44} {'n':>6} {'p50 ms':>8} {'p95 ms':>8} {'errors':>7}")
            figures = {}
            for name, request in cases.items():
                warm_up(port, request, 1, 1.0)
                result = run_load(port, request, 1, args.seconds)
                figures[name] = result
                print(
                    f"{name:<44} {result['n']:>6} {result['p50']:>8.2f} {result['p95']:>8.2f} "
                    f"{result['errors']:>7}"
                )
            print(json.dumps({name: round(r["p50"], 2) for name, r in figures.items()}))
        finally:
            process.terminate()
            process.wait(timeout=20)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

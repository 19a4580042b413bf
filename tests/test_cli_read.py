"""The `digits read --json` contract: one object per input file, one per line, in order."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from digits.config import SHIPPED_WEIGHTS
from digits.synth import drawings, pen_numbers

KEYS = {"file", "number", "confidence", "status", "digits"}
DIGIT_KEYS = {"digit", "confidence", "probabilities", "status", "box"}


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "digits.cli", "read", "--model", str(SHIPPED_WEIGHTS), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ,
    )


def test_json_lines_for_every_kind_of_file(tmp_path: Path) -> None:
    items = pen_numbers.number_set("validation", 6, 3)
    good = []
    for k, item in enumerate(items[:2]):
        path = tmp_path / f"n{k}.png"
        path.write_bytes(drawings.to_png(item.image))
        good.append(path)
    blank = tmp_path / "blank.png"
    blank.write_bytes(drawings.to_png(np.zeros((280, 700), np.uint8)))
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    missing = tmp_path / "missing.png"
    files = [good[0], blank, text, missing, good[1]]

    result = _run("--json", *map(str, files))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["file"] for line in lines] == [str(f) for f in files]

    for line, path in zip((lines[0], lines[4]), good, strict=True):
        assert set(line) == KEYS
        assert line["status"] in ("ok", "uncertain", "not_a_number")
        assert re.fullmatch(r"[0-9]{1,12}", line["number"])
        assert line["number"] == "".join(str(d["digit"]) for d in line["digits"])
        assert 0.0 < line["confidence"] <= 1.0
        width = synth_width(path)
        for digit in line["digits"]:
            assert set(digit) == DIGIT_KEYS
            assert len(digit["probabilities"]) == 10
            assert abs(sum(digit["probabilities"]) - 1) < 1e-4
            x0, y0, x1, y1 = digit["box"]
            assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= 280
    assert lines[1] == {
        "file": str(blank),
        "number": None,
        "confidence": None,
        "status": "empty",
        "digits": [],
    }
    for line in (lines[2], lines[3]):
        assert set(line) == KEYS | {"error"}
        assert line["status"] == "error" and line["number"] is None and line["digits"] == []
        assert line["confidence"] is None and line["error"]
    assert "No such file" in lines[3]["error"]


def synth_width(path: Path) -> int:
    from PIL import Image

    with Image.open(path) as image:
        return image.width


def test_plain_output(tmp_path: Path) -> None:
    item = pen_numbers.number_set("validation", 1, 4)[0]
    path = tmp_path / "one.png"
    path.write_bytes(drawings.to_png(item.image))
    result = _run(str(path), str(tmp_path / "gone.png"))
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.splitlines()
    assert re.fullmatch(
        rf"{re.escape(str(path))}: [0-9]+ \((ok|uncertain|not_a_number), [0-9]{{1,3}} %\)", first
    )
    assert second.startswith(f"{tmp_path / 'gone.png'}: error ")

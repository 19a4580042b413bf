"""The `digits predict --json` contract: one object per input file, one per line, in order."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from digits import checkpoint as ckpt
from digits.model import NUM_CLASSES, DigitNet
from digits.synth import drawings, glyphs

KEYS = {"file", "digit", "confidence", "probabilities", "status"}


def _run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "digits.cli", "predict", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )


def test_json_lines_for_every_kind_of_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    good = []
    for digit in (1, 4, 7):
        path = tmp_path / f"d{digit}.png"
        path.write_bytes(
            drawings.to_png(
                drawings.draw(
                    glyphs.glyph_strokes(digit, glyphs.STYLES[digit][0], rng), drawings.Look()
                )
            )
        )
        good.append(path)
    blank = tmp_path / "blank.png"
    blank.write_bytes(drawings.to_png(np.full((280, 280), 255, np.uint8)))
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    missing = tmp_path / "missing.png"
    files = [good[0], blank, text, good[1], missing, good[2]]

    result = _run("--json", *map(str, files))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["file"] for line in lines] == [str(f) for f in files]

    for line, digit in zip([lines[0], lines[3], lines[5]], (1, 4, 7), strict=True):
        assert set(line) == KEYS
        assert line["status"] in ("ok", "uncertain")
        assert line["digit"] == digit
        assert len(line["probabilities"]) == 10
        assert abs(sum(line["probabilities"]) - 1) < 1e-4
        assert line["confidence"] == max(line["probabilities"])
    assert lines[1] == {
        "file": str(blank),
        "digit": None,
        "confidence": None,
        "probabilities": None,
        "status": "empty",
    }
    for line in (lines[2], lines[4]):
        assert set(line) == KEYS | {"error"}
        assert line["status"] == "error" and line["digit"] is None and line["probabilities"] is None
        assert line["error"]
    assert "No such file" in lines[4]["error"]


def test_plain_output(tmp_path: Path) -> None:
    path = tmp_path / "one.png"
    path.write_bytes(
        drawings.to_png(
            drawings.draw(glyphs.glyph_strokes(1, glyphs.STYLES[1][0]), drawings.Look())
        )
    )
    result = _run(str(path))
    assert result.returncode == 0
    assert result.stdout.startswith(f"{path}: 1 (")


def test_not_a_digit_is_printed_with_its_best_guess(tmp_path: Path) -> None:
    # An 11-class model, with the setting's threshold 0 so that every drawing is refused.
    torch.manual_seed(0)
    args = {"width": 8, "num_classes": NUM_CLASSES}
    model = tmp_path / "rejecting.pt"
    ckpt.save(ckpt.from_model(DigitNet(**args), args), model)
    path = tmp_path / "one.png"
    path.write_bytes(
        drawings.to_png(
            drawings.draw(glyphs.glyph_strokes(1, glyphs.STYLES[1][0]), drawings.Look())
        )
    )
    refuse = {"DIGITS_NOT_A_DIGIT_THRESHOLD": "0"}
    result = _run("--json", "--model", str(model), str(path), **refuse)
    assert result.returncode == 0, result.stderr
    (line,) = [json.loads(text) for text in result.stdout.splitlines()]
    assert set(line) == KEYS and line["status"] == "not_a_digit"
    assert 0 <= line["digit"] <= 9 and abs(sum(line["probabilities"]) - 1) < 1e-4
    plain = _run("--model", str(model), str(path), **refuse)
    assert plain.stdout.startswith(f"{path}: {line['digit']} (")
    assert plain.stdout.rstrip().endswith(", not_a_digit)")

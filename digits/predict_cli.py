"""`digits predict [--json] FILE...`: one line per file, in order; a bad file never stops the batch."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from digits import decode, preprocess
from digits.predict import Predictor

BATCH = 256


def _lines(predictor: Predictor, files: Sequence[Path]) -> Iterator[dict[str, Any]]:
    for start in range(0, len(files), BATCH):
        chunk = files[start : start + BATCH]
        results: list[dict[str, Any]] = []
        inputs, slots = [], []
        for path in chunk:
            line: dict[str, Any] = {
                "file": str(path),
                "digit": None,
                "confidence": None,
                "probabilities": None,
            }
            try:
                inputs.append(preprocess.to_model_input(path.read_bytes()))
                slots.append(len(results))
            except decode.EmptyImageError:
                line["status"] = "empty"
            except (decode.PreprocessError, OSError) as exc:
                line |= {"status": "error", "error": str(exc)}
            results.append(line)
        if inputs:
            for slot, prediction in zip(
                slots, predictor.predict_inputs(np.stack(inputs)), strict=True
            ):
                results[slot] |= prediction.as_dict()
        yield from results


def run_predict(files: Sequence[Path], *, as_json: bool, model: Path | None = None) -> int:
    from digits.api.holder import serving
    from digits.config import get_settings
    from digits.registry import Registry

    if model:
        predictor = Predictor.from_checkpoint(model)
    else:  # the model the API serves: DIGITS_MODEL_PATH, else the registry's active one
        settings = get_settings()
        predictor = serving(settings, Registry.from_settings(settings))[0]()
    for line in _lines(predictor, files):
        if as_json:
            sys.stdout.write(json.dumps(line) + "\n")
        elif line["digit"] is not None:  # ok, uncertain or not_a_digit, with the best guess
            sys.stdout.write(
                f"{line['file']}: {line['digit']} ({line['confidence']:.1%}, {line['status']})\n"
            )
        else:
            sys.stdout.write(
                f"{line['file']}: {line['status']} {line.get('error', '')}".rstrip() + "\n"
            )
    sys.stdout.flush()
    return 0

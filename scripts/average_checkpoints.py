"""Average two fine-tuned siblings' weights (a "model soup"), then refit the not-a-digit
threshold on `validation` writers as `digits train` does:

    .venv/bin/python scripts/average_checkpoints.py A.pt B.pt OUTPUT.pt

The shipped weights are the average of the two warm-started passes in the README: the second
pass reads real pen digits better, the first keeps MNIST; their average keeps both.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from digits import checkpoint as ckpt
from digits.config import get_settings
from digits.training import calibration, data
from digits.training.config import TrainConfig


def main(first: Path, second: Path, output: Path) -> None:
    a, b = ckpt.load(first), ckpt.load(second)
    b.state_dict = {
        name: ((a.state_dict[name].float() + tensor.float()) / 2).to(tensor.dtype)
        for name, tensor in b.state_dict.items()
    }
    b.temperature = (a.temperature + b.temperature) / 2
    b.parent = b.parent or a.version
    fields = TrainConfig.__dataclass_fields__
    config = TrainConfig(**{k: v for k, v in b.train_config.items() if k in fields})
    val = data.pen_drawings("validation", config, get_settings().resolved_cache_dir)
    logits = calibration.logits_of(b.build_model(), val.images, torch.device("cpu"))
    b.metrics["not_a_digit_threshold"] = calibration.reject_threshold(
        logits, val.labels, n_pen_val=len(val.labels)
    )
    b.metrics["averaged_with"] = a.version
    sys.stdout.write(ckpt.save(b, output) + "\n")


if __name__ == "__main__":
    main(*(Path(arg) for arg in sys.argv[1:4]))

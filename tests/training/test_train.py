import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from digits import checkpoint as ckpt
from digits.cli import main
from digits.config import SHIPPED_WEIGHTS
from digits.data import pen
from digits.model import DigitNet
from digits.training import calibration, data, train
from digits.training.config import TrainConfig


def test_dry_run_writes_a_loadable_calibrated_checkpoint(tmp_path: Path, mnist_dir: Path) -> None:
    out = tmp_path / "model.pt"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "digits.cli",
            "train",
            "--dry-run",
            "--width",
            "16",
            "--mnist-dir",
            str(mnist_dir),
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={"DIGITS_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    loaded = ckpt.load(out)
    assert summary["version"] == loaded.version
    assert loaded.temperature > 0
    assert loaded.train_config["dry_run"] is True
    assert loaded.model_args["width"] == 16
    assert loaded.build_model()(torch.zeros(1, 1, 28, 28)).shape == (1, 11)
    assert "epoch 1/1" in result.stderr  # progress is shown
    assert loaded.metrics["val_accuracy"] > 0.5  # a small pass already learns something


def test_temperature_scaling_recovers_known_temperature() -> None:
    """Labels sampled from softmax(z / 2): the fitted temperature for logits z is about 2."""
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(20000, 10, generator=gen) * 4
    labels = torch.multinomial(torch.softmax(logits / 2.0, dim=1), 1, generator=gen).squeeze(1)
    assert calibration.fit_temperature(logits, labels) == pytest.approx(2.0, rel=0.08)


def test_augment_keeps_shape_range_and_mass() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.zeros(64, 1, 28, 28)
    x[:, :, 6:22, 12:16] = 1.0
    out = train.augment(x, TrainConfig().augment, gen)
    assert out.shape == x.shape
    assert float(out.min()) >= 0.0 and float(out.amax(dim=(1, 2, 3)).min()) == pytest.approx(1.0)
    assert not torch.equal(out, x)
    mass = out.sum(dim=(1, 2, 3)) / x.sum(dim=(1, 2, 3))
    assert float(mass.min()) > 0.3 and float(mass.max()) < 3.0


def test_split_is_disjoint_and_seeded() -> None:
    from digits.data.mnist import Dataset

    ds = Dataset(np.arange(100, dtype=np.float32).reshape(100, 1, 1), np.arange(100))
    a_train, a_val = data.split(ds, 10, seed=1)
    _, b_val = data.split(ds, 10, seed=1)
    assert np.array_equal(a_val.labels, b_val.labels)
    assert not set(a_train.labels) & set(a_val.labels)
    assert len(a_train.labels) + len(a_val.labels) == 100


def test_pen_cache_follows_the_writers_roles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A changed writers.json draws the pen set again: a cached set never keeps the old roles."""
    pen_dir = tmp_path / "pen"
    shutil.copytree(pen.PEN_DIR, pen_dir)
    monkeypatch.setattr(pen, "PEN_DIR", pen_dir)
    config = TrainConfig(dry_run=True, pen_renders=1, reject_renders=1, scribbles=0, pairs=0)
    cache = tmp_path / "cache"
    before = data.pen_drawings("validation", config, cache)
    roles = pen.roles()
    gone = pen.load("digits", "validation")[0].writer  # among the dry run's first samples
    (pen_dir / "writers.json").write_text(json.dumps(roles | {gone: "train"}))
    after = data.pen_drawings("validation", config, cache)
    assert len(list(cache.glob("pen-*.npz"))) == 2
    assert not np.array_equal(before.images, after.images)


def test_fine_tune_keeps_the_width_of_its_start(tmp_path: Path) -> None:
    """--init fixes the network: a different --width is refused before any training."""
    assert (
        main(
            [
                "train",
                "--init",
                str(SHIPPED_WEIGHTS),
                "--width",
                "48",
                "--output",
                str(tmp_path / "m.pt"),
            ]
        )
        == 1
    )
    assert not (tmp_path / "m.pt").exists()


def test_fine_tune_trains_the_network_it_starts_from(tmp_path: Path, mnist_dir: Path) -> None:
    """A width-16 start is fine-tuned at width 16, whatever the config's own width."""
    start = ckpt.from_model(
        DigitNet(width=16, num_classes=11), {"width": 16, "num_classes": 11}, temperature=1.0
    )
    config = TrainConfig(dry_run=True)
    result = train.fit(
        config, tmp_path / "m.pt", mnist_dir=mnist_dir, cache_dir=tmp_path, init=start
    )
    assert config.width == 32
    assert result.model_args["width"] == 16 and result.train_config["width"] == 16
    assert result.parent == start.version

"""Training the line model (digits.training.line): its composed numbers and its export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from digits.data import mnist
from digits.read import line
from digits.training import line as training


def test_composed_numbers_carry_their_labels_and_letters() -> None:
    writers, letters = training._characters("validation")
    rng = np.random.default_rng(4)
    found = [training.compose_one(writers, letters, rng) for _ in range(40)]
    for image, labels in found:
        assert image.dtype == np.uint8 and image.shape[0] == line.HEIGHT
        assert image.shape[1] % line.STRIDE == 0
        assert training.LENGTHS[0] <= len(labels) <= training.LENGTHS[1]
        assert all(0 <= c <= line.LETTER - 1 for c in labels)
        # wide enough for CTC: two output columns a character
        assert image.shape[1] // line.STRIDE >= 2 * len(labels)
    with_letter = [labels for _, labels in found if line.LETTER - 1 in labels]
    assert 0 < len(with_letter) < len(found)
    assert all(labels.count(line.LETTER - 1) == 1 for labels in with_letter)


def test_the_exported_graph_reads_any_width_as_torch_does(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = training.LineNet()
    out = tmp_path / "line.onnx"
    training.export(model, out)
    served = line.LineModel(out)
    for width in (16, 100, 320):
        image = np.random.default_rng(width).random((line.HEIGHT, width), np.float32)
        with torch.no_grad():
            expected = model(torch.from_numpy(image)[None, None])[0].numpy()
        found = served.log_probs(image)
        assert found.shape == (width // line.STRIDE, line.CLASSES)
        np.testing.assert_allclose(found, expected, rtol=1e-4, atol=1e-4)


def test_mnist_numbers_carry_their_labels(mnist_dir: Path) -> None:
    digits = mnist.load_mnist("test", mnist_dir)
    rng = np.random.default_rng(5)
    for _ in range(30):
        image, labels = training.compose_mnist(digits.images[:500], digits.labels[:500], rng)
        assert image.dtype == np.uint8 and image.shape[0] == line.HEIGHT
        assert training.LENGTHS[0] <= len(labels) <= training.LENGTHS[1]
        assert all(0 <= c <= 9 for c in labels)
        # the ink fills the frame's height, and each digit has room for CTC's two columns
        rows = np.flatnonzero(image.max(axis=1) > 0)
        assert rows[-1] - rows[0] + 1 >= line.INK_HEIGHT - 1
        assert image.shape[1] // line.STRIDE >= 2 * len(labels)

"""The synthetic canvas drawings: deterministic, correctly encoded, balanced, really careless."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from digits.data.mnist import load_mnist
from digits.synth import drawings, glyphs, skeleton


def ink_of(image: np.ndarray) -> np.ndarray:
    """Ink coverage in [0, 1] for any encoding: alpha if transparent, else contrast to border."""
    if image.ndim == 3 and image.shape[2] == 4:
        return image[..., 3] / 255.0
    lum = image.mean(axis=2) if image.ndim == 3 else image.astype(np.float64)
    border = np.median(np.concatenate([lum[0], lum[-1], lum[:, 0], lum[:, -1]]))
    return np.clip(np.abs(lum - border) / 200.0, 0.0, 1.0)


def box_of(ink: np.ndarray) -> tuple[int, int, int, int]:
    rows = np.flatnonzero(ink.max(axis=1) > 0.5)
    cols = np.flatnonzero(ink.max(axis=0) > 0.5)
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


def stroke_width(ink: np.ndarray) -> float:
    """A stroke of width w and length L has area wL and about 2L boundary pixels."""
    mask = ink > 0.5
    inner = mask.copy()
    inner[1:] &= mask[:-1]
    inner[:-1] &= mask[1:]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return 2.0 * mask.sum() / max(int(mask.sum() - inner.sum()), 1)


@pytest.fixture(scope="module")
def mnist_test(mnist_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    data = load_mnist("test", mnist_dir=mnist_dir)
    return data.images, data.labels


def test_benchmark_is_deterministic_and_seeded() -> None:
    first = drawings.benchmark_set(None, None, mode="careless", n=12, seed=5)
    again = drawings.benchmark_set(None, None, mode="careless", n=12, seed=5)
    other = drawings.benchmark_set(None, None, mode="careless", n=12, seed=6)
    assert [label for _, label in first] == [label for _, label in again]
    assert all(np.array_equal(a, b) for (a, _), (b, _) in zip(first, again, strict=True))
    assert not all(
        a.shape == b.shape and np.array_equal(a, b)
        for (a, _), (b, _) in zip(first, other, strict=True)
    )


def test_benchmark_labels_are_balanced_with_and_without_mnist(
    mnist_test: tuple[np.ndarray, np.ndarray],
) -> None:
    images, labels = mnist_test
    styles_only = drawings.benchmark_set(None, None, mode="normal", n=40, seed=0)
    mixed = drawings.benchmark_set(images, labels, mode="normal", n=40, seed=0)
    for samples in (styles_only, mixed):
        assert np.bincount([label for _, label in samples], minlength=10).tolist() == [4] * 10


def test_normal_benchmark_is_centred_dark_on_light_280_canvas() -> None:
    for image, _ in drawings.benchmark_set(None, None, mode="normal", n=20, seed=1):
        assert image.dtype == np.uint8 and image.shape[:2] == (280, 280)
        assert image.ndim == 2 or image.shape[2] == 3
        assert int(image[0, 0].min()) == 255  # white background
        top, bottom, left, right = box_of(ink_of(image))
        assert 0.45 * 280 <= bottom - top <= 0.9 * 280
        assert abs((top + bottom) / 2 - 140) <= 0.15 * 280
        assert abs((left + right) / 2 - 140) <= 0.15 * 280


def test_careless_benchmark_is_small_big_off_centre_thin_and_thick() -> None:
    samples = drawings.benchmark_set(None, None, mode="careless", n=80, seed=2)
    heights, offsets, widths, channels = [], [], [], set()
    for image, _ in samples:
        ink = ink_of(image)
        top, bottom, left, right = box_of(ink)
        heights.append((bottom - top) / 280)
        offsets.append(max(abs((top + bottom) / 2 - 140), abs((left + right) / 2 - 140)) / 280)
        widths.append(stroke_width(ink))
        channels.add(1 if image.ndim == 2 else image.shape[2])
        assert ink[[0, -1]].max() < 0.5 and ink[:, [0, -1]].max() < 0.5  # nothing cut off
    assert min(heights) < 0.3 and max(heights) > 0.75
    assert sum(h < 0.45 for h in heights) >= 30
    assert max(offsets) > 0.25
    assert min(widths) < 7 and max(widths) > 25
    assert channels == {1, 3, 4}


def test_rgba_background_is_fully_transparent() -> None:
    stroke = [np.array([[60.0, 60.0], [200.0, 220.0]])]
    image = drawings.render(stroke, encoding="RGBA", ink=(20, 40, 200), brush=18)
    assert image.shape == (280, 280, 4) and image.dtype == np.uint8
    assert image[250, 30].tolist() == [0, 0, 0, 0]
    assert image[140, 140].tolist() == [20, 40, 200, 255]
    drawn = image[..., 3] > 0
    assert (image[~drawn] == 0).all()
    decoded = np.asarray(Image.open(io.BytesIO(drawings.to_png(image))))
    assert np.array_equal(decoded, image)


@pytest.mark.parametrize(
    ("encoding", "shape", "background", "ink"),
    [
        ("L", (280, 280), 255, 0),
        ("L-inverted", (280, 280), 0, 255),
        ("RGB", (280, 280, 3), [255, 255, 255], [0, 0, 0]),
        ("JPEG", (280, 280, 3), [255, 255, 255], [0, 0, 0]),
    ],
)
def test_opaque_encodings(
    encoding: drawings.Encoding, shape: tuple[int, ...], background: object, ink: object
) -> None:
    image = drawings.render([np.array([[60.0, 60.0], [200.0, 220.0]])], encoding=encoding)
    assert image.shape == shape and image.dtype == np.uint8
    if encoding == "JPEG":
        assert np.abs(image[250, 30].astype(int) - 255).max() <= 8
        assert image[140, 140].max() <= 40
    else:
        assert image[250, 30].tolist() == background
        assert image[140, 140].tolist() == ink


def test_brush_width_and_round_caps() -> None:
    image = drawings.render([np.array([[100.0, 140.0], [180.0, 140.0]])], brush=20.0)
    ink = ink_of(image)
    assert abs(ink[:, 140].sum() - 20.0) < 1.5  # across the stroke: the brush diameter
    assert abs(ink[140].sum() - 100.0) < 1.5  # along it: length plus two round caps
    assert ink[131, 92] < 0.1  # the cap is round, not square


def test_every_style_draws_inside_the_canvas() -> None:
    rng = np.random.default_rng(0)
    for digit, styles in glyphs.STYLES.items():
        assert len(styles) >= 2
        for style in styles:
            for mode in ("normal", "careless"):
                look = drawings.random_look(rng, mode)
                image = drawings.draw(glyphs.glyph_strokes(digit, style, rng), look)
                ink = ink_of(image)
                assert ink.sum() > 100, (digit, style)
                assert ink[[0, -1]].max() < 0.5 and ink[:, [0, -1]].max() < 0.5


def test_international_styles_exist() -> None:
    assert {"plain", "crossbar"} <= set(glyphs.STYLES[7])
    assert {"bar", "long_flag", "flag_base"} <= set(glyphs.STYLES[1])
    assert {"plain", "slashed", "dotted"} <= set(glyphs.STYLES[0])
    assert {"open", "closed"} <= set(glyphs.STYLES[4])
    assert {"straight", "curled"} <= set(glyphs.STYLES[9])
    assert {"plain", "loop"} <= set(glyphs.STYLES[2])


def test_skeleton_redraw_keeps_the_ink_where_the_original_was(
    mnist_test: tuple[np.ndarray, np.ndarray],
) -> None:
    images, _ = mnist_test
    overlaps = []
    for image in images[:20]:
        strokes = skeleton.mnist_strokes(image)
        # Strokes are in units of the 28-px frame: draw them 10x on a 280 canvas, MNIST-thick.
        drawn = drawings.render([s * 280 for s in strokes], brush=25.0, encoding="L-inverted")
        small = drawn.reshape(28, 10, 28, 10).mean(axis=(1, 3)) / 255.0
        near = image > 50
        grown = near.copy()
        grown[1:] |= near[:-1]
        grown[:-1] |= near[1:]
        grown[:, 1:] |= near[:, :-1]
        grown[:, :-1] |= near[:, 1:]
        redrawn = small > 0.5
        assert redrawn[~grown].sum() <= 0.03 * redrawn.sum()  # no ink where none was
        ours, theirs = small > 0.3, image > 0.3 * 255
        overlaps.append((ours & theirs).sum() / (ours | theirs).sum())
    assert min(overlaps) > 0.4 and np.mean(overlaps) > 0.7


def test_training_set_is_model_inputs_and_deterministic(
    mnist_dir: Path,
) -> None:
    train = load_mnist("test", mnist_dir=mnist_dir)  # any images will do for the mechanics
    x, y = drawings.training_set(
        30, 3, mnist_train_images=train.images, mnist_train_labels=train.labels
    )
    x2, y2 = drawings.training_set(
        30, 3, mnist_train_images=train.images, mnist_train_labels=train.labels
    )
    assert x.shape == (30, 28, 28) and x.dtype == np.float32
    assert y.shape == (30,) and y.dtype == np.int64 and set(y.tolist()) <= set(range(10))
    assert x.min() >= 0.0 and x.max() <= 1.0 and (x.reshape(30, -1).max(axis=1) > 0.9).all()
    assert np.array_equal(x, x2) and np.array_equal(y, y2)


def test_benchmark_and_training_streams_differ() -> None:
    bench = drawings.benchmark_set(None, None, mode="normal", n=10, seed=0)
    x, _ = drawings.training_set(10, 0)
    from digits.preprocess import to_model_input

    bench_inputs = np.stack([to_model_input(image) for image, _ in bench])
    assert not any(np.allclose(b, t) for b in bench_inputs for t in x)


def test_benchmark_covers_every_style_and_names_its_sources(
    mnist_test: tuple[np.ndarray, np.ndarray],
) -> None:
    images, labels = mnist_test
    items = drawings.benchmark_items(images, labels, mode="normal", n=80, seed=0)
    sources = {item.source for item in items}
    styles = {f"style:{d}/{s}" for d, names in glyphs.STYLES.items() for s in names}
    assert styles <= sources
    redrawn = [item for item in items if item.source.startswith("mnist:")]
    assert len(redrawn) == 40
    assert all(labels[int(item.source[6:])] == item.label for item in redrawn)

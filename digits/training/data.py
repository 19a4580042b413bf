"""Training data, framed exactly as a served drawing is (``preprocess.to_model_input``): MNIST,
our synthetic canvas drawings and the real pen writers, each cached per preprocessing version."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from digits import preprocess
from digits.data import mnist, pen
from digits.model import NOT_A_DIGIT
from digits.training.config import TrainConfig

log = logging.getLogger(__name__)


def frame_all(images: np.ndarray, desc: str) -> np.ndarray:
    """Run every raw image through the serving preprocessing (with a progress bar)."""
    out = np.empty((len(images), preprocess.IMAGE_SIZE, preprocess.IMAGE_SIZE), np.float32)
    for i, image in enumerate(tqdm(images, desc=desc, unit="img", leave=False, mininterval=1.0)):
        out[i] = preprocess.to_model_input(image)
    return out


def _content_code(paths: Iterable[Path]) -> str:
    """A short hash of the files a cached set was made from: a cache key that follows them."""
    return hashlib.sha256(b"".join(p.read_bytes() for p in paths)).hexdigest()[:8]


def framed_mnist(
    split: mnist.Split, mnist_dir: Path | None, cache_dir: Path, *, limit: int | None = None
) -> mnist.Dataset:
    """MNIST through the serving preprocessing, cached per preprocessing version."""
    raw = mnist.load_mnist(split, mnist_dir, cache_dir)
    if limit is not None:
        return mnist.Dataset(
            frame_all(raw.images[:limit], f"framing MNIST {split}"), raw.labels[:limit]
        )
    key = hashlib.sha256(raw.images.tobytes()).hexdigest()[:12]
    cache = cache_dir / f"framed-{split}-v{preprocess.PREPROCESS_VERSION}-{key}.npy"
    if cache.exists():
        return mnist.Dataset(np.load(cache), raw.labels)
    framed = frame_all(raw.images, f"framing MNIST {split}")
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, framed)
    return mnist.Dataset(framed, raw.labels)


def synthetic_drawings(
    n: int, seed: int, cache_dir: Path, mnist_train: mnist.Dataset
) -> mnist.Dataset:
    """Canvas-like drawings of our own making (digits.synth.drawings), framed like served drawings:
    stroke-font glyphs in many writing styles, and MNIST training digits re-drawn as pen strokes."""
    from digits.synth import drawings, glyphs, skeleton

    code = _content_code(Path(str(m.__file__)) for m in (drawings, glyphs, skeleton))
    cache = cache_dir / f"synthetic-v{preprocess.PREPROCESS_VERSION}-{code}-{n}-{seed}.npz"
    if cache.exists():
        stored = np.load(cache)
        return mnist.Dataset(stored["images"], stored["labels"])
    images, labels = drawings.training_set(
        n, seed, mnist_train_images=mnist_train.images, mnist_train_labels=mnist_train.labels
    )
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, images=images, labels=labels)
    return mnist.Dataset(images.astype(np.float32), labels.astype(np.int64))


def pen_drawings(role: pen.Role, config: TrainConfig, cache_dir: Path) -> mnist.Dataset:
    """Real pen digits and rejectable letters of one writer role, drawn as canvases, plus
    scribbles and digit pairs (both labelled not-a-digit), cached like the synthetic set."""
    # The drawing code and the dataset folder (samples, writers' roles): a change draws again.
    code = _content_code([Path(pen.__file__), *sorted(pen.PEN_DIR.iterdir())])
    shares = 1 if role == "train" else 4  # validation: a quarter as many generated extras
    limit = 100 if config.dry_run else None
    if config.dry_run:
        shares *= 20
    key = f"{role}-{config.pen_renders}-{config.reject_renders}-{config.scribbles}-{config.pairs}-{config.seed}-{limit}"
    cache = cache_dir / f"pen-v{preprocess.PREPROCESS_VERSION}-{code}-{key}.npz"
    if cache.exists():
        stored = np.load(cache)
        return mnist.Dataset(stored["images"], stored["labels"])
    log.info("drawing the pen samples of %s writers", role)
    images, labels = pen.training_inputs(
        pen.load("digits", role)[:limit],
        pen.rejectable_letters(pen.load("letters", role))[:limit],
        renders=config.pen_renders,
        reject_renders=config.reject_renders,
        scribbles=config.scribbles // shares,
        pairs=config.pairs // shares,
        seed=config.seed + (7 if role == "train" else 11),
        not_a_digit=NOT_A_DIGIT,
    )
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, images=images, labels=labels)
    return mnist.Dataset(images, labels)


def split(dataset: mnist.Dataset, val_size: int, seed: int) -> tuple[mnist.Dataset, mnist.Dataset]:
    order = np.random.default_rng(seed).permutation(len(dataset.labels))
    val, train = order[:val_size], order[val_size:]
    return (
        mnist.Dataset(dataset.images[train], dataset.labels[train]),
        mnist.Dataset(dataset.images[val], dataset.labels[val]),
    )

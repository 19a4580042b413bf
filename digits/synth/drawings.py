"""Canvas-like digit drawings: the project's canvas benchmark and extra training data.

A drawing starts as pen strokes in a unit box (x right, y down, the digit about 1 unit tall),
either from a hand-authored glyph style (digits.synth.glyphs) or from the skeleton of an MNIST image
(digits.synth.skeleton), then gets a writer's quirks (slant, aspect, wobble), is placed on a square
canvas the way a user would draw it ("normal" or "careless") and rendered with a round,
anti-aliased brush in one of the encodings a browser canvas or an upload produces.

A sample is ``DrawingSample = tuple[np.ndarray, int]``: the raw canvas image (uint8, (H, W) or
(H, W, C), exactly what a client would send, not preprocessed) and its digit label.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw

from digits.config import CANVAS_SIZE, DEFAULT_BRUSH
from digits.synth import glyphs, skeleton

Mode = Literal["normal", "careless"]
Encoding = Literal["L", "L-inverted", "RGB", "RGBA", "JPEG"]
Color = tuple[int, int, int]
DrawingSample = tuple[np.ndarray, int]
"""(image, label): the raw canvas (uint8 (H, W) or (H, W, C)) and the digit drawn on it."""

ENCODINGS: tuple[Encoding, ...] = ("L", "L-inverted", "RGB", "RGBA", "JPEG")

# Disjoint random streams: a benchmark sample can never coincide with a training sample.
_BENCH_STREAM = 0xBE7C
_TRAIN_STREAM = 0x7A1D
_KIND_STYLE, _KIND_MNIST = 0, 1


# ---------------------------------------------------------------------------------------------
# Placement and rendering.
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Look:
    """How a drawing sits on the canvas; sizes are fractions of the canvas side."""

    height: float = 0.65
    centre: tuple[float, float] = (0.5, 0.5)  # where the ink's box centre goes, (x, y)
    brush: float = DEFAULT_BRUSH  # brush diameter in pixels of a CANVAS_SIZE-sized canvas
    rotation: float = 0.0  # degrees, counter-clockwise
    encoding: Encoding = "L"
    ink: Color = (0, 0, 0)
    background: Color = (255, 255, 255)


def random_look(rng: np.random.Generator, mode: Mode, max_rotation: float = 20.0) -> Look:
    """Sample how a user draws: "normal" is centred and medium; "careless" is anything goes."""
    if mode == "normal":
        return Look(
            height=rng.uniform(0.5, 0.8),
            centre=(0.5 + rng.uniform(-0.1, 0.1), 0.5 + rng.uniform(-0.1, 0.1)),
            brush=rng.uniform(12.0, 24.0),
            rotation=rng.uniform(-6.0, 6.0),
            encoding="L" if rng.random() < 0.5 else "RGB",
        )
    if mode != "careless":
        raise ValueError(f"unknown mode {mode!r}; expected 'normal' or 'careless'")
    height = rng.uniform(0.2, 0.45) if rng.random() < 0.65 else rng.uniform(0.8, 0.95)
    # A brush thicker than ~25% of the digit's height turns it into a blob nobody could read.
    brush = float(np.exp(rng.uniform(np.log(4.0), np.log(40.0))))
    brush = max(4.0, min(brush, 0.25 * height * CANVAS_SIZE))
    encoding: Encoding = ENCODINGS[int(rng.integers(len(ENCODINGS)))]
    ink: Color = (0, 0, 0)
    background: Color = (255, 255, 255)
    if rng.random() < 0.35:
        ink = _PEN_COLOURS[int(rng.integers(len(_PEN_COLOURS)))]
    if encoding == "L-inverted":
        ink, background = (255, 255, 255), (0, 0, 0)
    elif encoding in ("RGB", "JPEG") and rng.random() < 0.4:
        background = (238, 238, 238)  # streamlit-drawable-canvas's default background
    elif encoding == "RGBA" and rng.random() < 0.15:
        ink = (255, 255, 255)  # white pen on a transparent (dark-themed) canvas
    return Look(
        height=height,
        centre=(rng.uniform(0, 1), rng.uniform(0, 1)),  # clamped to fit in place()
        brush=brush,
        rotation=rng.uniform(-max_rotation, max_rotation),
        encoding=encoding,
        ink=ink,
        background=background,
    )


_MARGIN = 3.0  # pixels kept clear between the ink and the canvas edge
_PEN_COLOURS: tuple[Color, ...] = ((20, 40, 200), (200, 20, 20), (0, 120, 40), (90, 0, 140))


def place(strokes: Sequence[np.ndarray], look: Look, canvas: int = CANVAS_SIZE) -> list[np.ndarray]:
    """Rotate, scale to the look's height and move to its centre -> canvas pixel coordinates."""
    angle = math.radians(look.rotation)
    rot = np.array([[math.cos(angle), math.sin(angle)], [-math.sin(angle), math.cos(angle)]])
    turned = [s @ rot.T for s in strokes]
    allpts = np.vstack(turned)
    lo, hi = allpts.min(axis=0), allpts.max(axis=0)
    extent = np.maximum(hi - lo, 1e-3)
    brush = look.brush * canvas / CANVAS_SIZE
    room = canvas - brush - 2 * _MARGIN  # the whole stroke, caps included, stays on the canvas
    scale = min(look.height * canvas / extent[1], room / extent[0], room / extent[1])
    half = extent * scale / 2 + brush / 2 + _MARGIN
    centre = np.clip(np.array(look.centre) * canvas, half, canvas - half)
    mid = (lo + hi) / 2
    return [(s - mid) * scale + centre for s in turned]


def _stamp_centres(pts: np.ndarray, spacing: float) -> np.ndarray:
    """Resample a polyline at even arc-length steps no longer than spacing."""
    if len(pts) < 2:
        return pts
    cum = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
    u = np.linspace(0.0, cum[-1], max(2, math.ceil(cum[-1] / spacing) + 1))
    return np.column_stack([np.interp(u, cum, pts[:, 0]), np.interp(u, cum, pts[:, 1])])


def render(
    strokes: Sequence[np.ndarray],
    *,
    canvas: int = CANVAS_SIZE,
    height: int | None = None,
    brush: float = DEFAULT_BRUSH,
    encoding: Encoding = "L",
    ink: Color = (0, 0, 0),
    background: Color = (255, 255, 255),
    supersample: int = 2,
    jpeg_quality: int = 80,
) -> np.ndarray:
    """Draw round-capped strokes (canvas pixel coordinates) -> uint8 image, ``canvas`` pixels
    wide and ``height`` (default: as many) high.

    Encodings: "L" (H, W) ink dark on light; "L-inverted" (H, W) light ink on dark, whatever
    the colours given; "RGB" (H, W, 3); "RGBA" (H, W, 4) with a transparent background (all four
    channels 0) and opaque ink; "JPEG" an RGB image that went through JPEG compression.
    """
    size = (canvas, canvas if height is None else height)
    layer = Image.new("L", (size[0] * supersample, size[1] * supersample), 0)
    pen = ImageDraw.Draw(layer)
    width = max(1.0, brush * supersample)
    r = width / 2
    # A round brush is a disc dragged along the path: stamping discs every r/2 leaves ripples
    # of r/32 at most, and avoids the slivers PIL's wide lines leave at short segments.
    spacing = max(r / 2, 0.75)
    for stroke in strokes:
        pts = _stamp_centres(np.asarray(stroke, dtype=np.float64) * supersample, spacing)
        for x, y in pts.tolist():
            pen.ellipse((x - r, y - r, x + r, y + r), fill=255)
    if supersample > 1:
        layer = layer.resize(size, Image.Resampling.BOX)
    alpha = np.asarray(layer, dtype=np.float32)[..., None] / 255.0  # (H, W, 1) coverage
    if encoding == "L":
        return np.rint(255.0 - alpha[..., 0] * 255.0).astype(np.uint8)
    if encoding == "L-inverted":
        return np.rint(alpha[..., 0] * 255.0).astype(np.uint8)
    ink_rgb = np.array(ink, dtype=np.float32)
    if encoding == "RGBA":
        rgb = np.where(alpha > 0, ink_rgb, 0.0)
        return np.concatenate([rgb, alpha * 255.0], axis=2).round().astype(np.uint8)
    rgb = np.rint(np.array(background, np.float32) * (1 - alpha) + ink_rgb * alpha)
    rgb_u8 = rgb.astype(np.uint8)
    if encoding == "RGB":
        return rgb_u8
    if encoding == "JPEG":
        return np.asarray(Image.open(io.BytesIO(to_jpeg(rgb_u8, quality=jpeg_quality))))
    raise ValueError(f"unknown encoding {encoding!r}; expected one of {ENCODINGS}")


def draw(
    strokes: Sequence[np.ndarray], look: Look, *, canvas: int = CANVAS_SIZE, supersample: int = 2
) -> np.ndarray:
    """Place unit-box strokes as the look says and render them."""
    return render(
        place(strokes, look, canvas),
        canvas=canvas,
        brush=look.brush * canvas / CANVAS_SIZE,
        encoding=look.encoding,
        ink=look.ink,
        background=look.background,
        supersample=supersample,
    )


def to_png(image: np.ndarray) -> bytes:
    """uint8 (H, W), (H, W, 3) or (H, W, 4) array -> PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def to_jpeg(image: np.ndarray, quality: int = 80) -> bytes:
    """uint8 (H, W) or (H, W, 3) array -> JPEG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------
# Data sets.
# ---------------------------------------------------------------------------------------------
def _style_sample(
    digit: int, style: str, rng: np.random.Generator, mode: Mode, canvas: int, strength: float
) -> tuple[np.ndarray, Look]:
    strokes = glyphs.glyph_strokes(digit, style, rng, glyphs.random_quirks(rng, strength))
    look = random_look(rng, mode)
    return draw(strokes, look, canvas=canvas), look


def _mnist_sample(
    image: np.ndarray, rng: np.random.Generator, mode: Mode, canvas: int, strength: float
) -> tuple[np.ndarray, Look]:
    strokes = skeleton.mnist_strokes(image)
    if strength > 0:
        q = glyphs.random_quirks(rng, strength)
        field = glyphs.wobble(q.wobble * 0.5, rng)
        strokes = [
            field(np.column_stack([s[:, 0] + q.slant * 0.3 * (0.5 - s[:, 1]), s[:, 1]]))
            for s in strokes
        ]
    # The writer's own slant is already in an MNIST digit: turning it a full 20 degrees more
    # makes some (a leaning 8 becomes an infinity sign) unreadable to people too.
    look = random_look(rng, mode, max_rotation=10.0)
    return draw(strokes, look, canvas=canvas), look


def _balanced_indices(labels: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """count indices, as equal per digit as the data allows, chosen without replacement."""
    per_digit = [np.flatnonzero(labels == d) for d in range(10)]
    picks = []
    for d in range(10):
        k = count // 10 + (1 if d < count % 10 else 0)
        picks.append(rng.choice(per_digit[d], size=min(k, len(per_digit[d])), replace=False))
    return np.concatenate(picks)


@dataclass(frozen=True)
class BenchmarkItem:
    """One benchmark drawing with where it came from, for per-style or per-look breakdowns."""

    image: np.ndarray
    label: int
    source: str  # "style:<digit>/<style>" or "mnist:<index into the given images>"
    look: Look


def benchmark_items(
    mnist_test_images: np.ndarray | None,
    mnist_test_labels: np.ndarray | None,
    *,
    mode: Mode,
    n: int,
    seed: int,
) -> list[BenchmarkItem]:
    """benchmark_set() with each drawing's source and look."""
    if mode not in ("normal", "careless"):
        raise ValueError(f"unknown mode {mode!r}; expected 'normal' or 'careless'")
    mode_key = 0 if mode == "normal" else 1
    n_mnist = n // 2 if mnist_test_images is not None and mnist_test_labels is not None else 0
    items: list[BenchmarkItem] = []
    for i in range(n - n_mnist):
        digit = i % 10
        styles = glyphs.STYLES[digit]
        style = styles[(i // 10) % len(styles)]
        rng = np.random.default_rng([seed, _BENCH_STREAM, mode_key, _KIND_STYLE, i])
        image, look = _style_sample(digit, style, rng, mode, CANVAS_SIZE, 1.0)
        items.append(BenchmarkItem(image, digit, f"style:{digit}/{style}", look))
    if n_mnist:
        assert mnist_test_images is not None and mnist_test_labels is not None
        labels = np.asarray(mnist_test_labels)
        pick_rng = np.random.default_rng([seed, _BENCH_STREAM, mode_key, _KIND_MNIST])
        for j, index in enumerate(_balanced_indices(labels, n_mnist, pick_rng)):
            rng = np.random.default_rng([seed, _BENCH_STREAM, mode_key, _KIND_MNIST, j])
            image, look = _mnist_sample(mnist_test_images[index], rng, mode, CANVAS_SIZE, 0.0)
            items.append(BenchmarkItem(image, int(labels[index]), f"mnist:{index}", look))
    order = np.random.default_rng([seed, _BENCH_STREAM, mode_key, 2]).permutation(len(items))
    return [items[k] for k in order]


def benchmark_set(
    mnist_test_images: np.ndarray | None,
    mnist_test_labels: np.ndarray | None,
    *,
    mode: Mode,
    n: int,
    seed: int,
) -> list[DrawingSample]:
    """A fixed canvas benchmark: raw 280x280 canvases and labels, deterministic for a seed.

    About half are glyph styles (every style, labels balanced), half re-drawn skeletons of the
    given MNIST test images (labels balanced); without images all are glyph styles.
    """
    items = benchmark_items(mnist_test_images, mnist_test_labels, mode=mode, n=n, seed=seed)
    return [(item.image, item.label) for item in items]


def training_set(
    n: int,
    seed: int,
    *,
    mnist_train_images: np.ndarray | None = None,
    mnist_train_labels: np.ndarray | None = None,
    canvas: int = 140,
) -> tuple[np.ndarray, np.ndarray]:
    """n synthetic drawings as model inputs -> ((n, 28, 28) float32, (n,) int64 labels).

    Half "normal", half "careless", all styles; with MNIST train images, 40% are re-drawn
    skeletons of them. Rendered on a smaller canvas (brush scaled alike) for speed: after
    preprocessing the result is the same kind of input.
    """
    from digits.preprocess import to_model_input

    use_mnist = mnist_train_images is not None and mnist_train_labels is not None
    x = np.zeros((n, 28, 28), dtype=np.float32)
    y = np.zeros(n, dtype=np.int64)
    for i in range(n):
        rng = np.random.default_rng([seed, _TRAIN_STREAM, i])
        mode: Mode = "normal" if rng.random() < 0.5 else "careless"
        if use_mnist and rng.random() < 0.4:
            assert mnist_train_images is not None and mnist_train_labels is not None
            index = int(rng.integers(len(mnist_train_images)))
            digit = int(mnist_train_labels[index])
            image, _ = _mnist_sample(mnist_train_images[index], rng, mode, canvas, 1.0)
        else:
            digit = int(rng.integers(10))
            style = glyphs.STYLES[digit][int(rng.integers(len(glyphs.STYLES[digit])))]
            image, _ = _style_sample(digit, style, rng, mode, canvas, 1.3)
        x[i] = to_model_input(image)
        y[i] = digit
    return x, y

"""Whatever a user sends (read by digits.decode) -> the 28x28 image the model reads, framed the
way MNIST digits were.

MNIST framing: the ink's bounding box is scaled (aspect ratio kept) to fit a 20x20 box, then
placed in a 28x28 field so that its centre of mass sits at the centre. Every framing
constant of the project lives in this module; training and serving both import it.
"""

from __future__ import annotations

import functools
import io
from typing import Any, TypeVar

import numpy as np
from PIL import Image

from digits import decode
from digits.errors import EmptyImageError

IMAGE_SIZE = 28
BOX_SIZE = 20
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081
# Bump when the framing changes: checkpoints record it, and cached training inputs depend on it.
PREPROCESS_VERSION = 1


# Framing is done at WORK_SCALE times the 20x20 box, so stroke width can be adjusted in
# whole pixels before the final area-averaging down to 20x20.
WORK_SCALE = 4
# MNIST stroke width, in 28x28 pixels (measured: 5th/50th/95th percentile 1.8 / 2.7 / 4.4).
# Strokes outside [THIN, THICK] are brought to TARGET; the model is trained to take the rest.
STROKE_TARGET = 2.7
STROKE_THIN = 1.8
STROKE_THICK = 4.5

CONTRAST_MIN = 0.12  # ink weaker than this, relative to the background, is no ink at all
NOISE_FLOOR = 0.15  # after stretching, lighter pixels are compression noise or paper
MIN_INK_FRACTION = 3e-4  # less ink mass than this share of the canvas is a blank drawing
BBOX_THRESHOLD = 0.25

ArrayOrTensor = TypeVar("ArrayOrTensor", bound=Any)


@functools.cache
def _ink_table(background: int) -> np.ndarray:
    """Lookup table luminance -> ink for a background level, either polarity.

    Monotonic: decreasing for dark ink on a light background, increasing otherwise."""
    levels = np.arange(256, dtype=np.int32)
    if background >= 128:
        table = (background - levels) * 255 // max(background, 1)
    else:
        table = (levels - background) * 255 // (255 - background)
    table = np.clip(table, 0, 255).astype(np.uint8)
    table.flags.writeable = False  # cached: every call with this background shares it
    return table


# _border_level, _black (with the black-ink shortcut in _transparent_plane) and block_mean
# are numpy shortcuts that give the plain way's result exactly (tests/test_preprocess.py);
# together they save 0.3-0.4 ms of CPU per canvas drawing (benchmarks/trick_bench.py).


def _border_level(plane: np.ndarray) -> int:
    """int(np.median(border pixels)) at a fraction of its cost: the border holds 2 * (H + W)
    pixels, an even count, so the median is the mean of the two middle values."""
    border = np.concatenate([plane[0], plane[-1], plane[:, 0], plane[:, -1]])
    middle = border.size // 2
    low, high = np.partition(border, (middle - 1, middle))[middle - 1 : middle + 1]
    return (int(low) + int(high)) // 2


def _black(colour: np.ndarray) -> bool:
    """Whether every pixel of a grey or RGBA array is black (alpha aside). RGBA pixels are read
    as 32-bit words with the alpha byte masked off: one pass over contiguous words, cheaper than
    reducing the three colour channels through a strided view."""
    if colour.ndim == 3 and colour.strides[-2:] == (4, 1):
        return not (colour.view("<u4") & 0x00FFFFFF).any()
    return not (colour if colour.ndim == 2 else colour[..., :3]).any()


def _alpha_box(alpha: np.ndarray) -> tuple[slice, slice]:
    """The rows and columns that hold any alpha."""
    rows = np.flatnonzero(alpha.max(axis=1))
    if rows.size == 0:
        raise EmptyImageError("the image is fully transparent: nothing was drawn")
    band = np.s_[rows[0] : rows[-1] + 1]
    cols = np.flatnonzero(alpha[band].max(axis=0))
    return band, np.s_[cols[0] : cols[-1] + 1]


def _transparent_plane(colour: np.ndarray, alpha: np.ndarray) -> tuple[np.ndarray, int]:
    """Strokes on a transparent canvas, composited over the colour that contrasts with them
    (black ink reads as black on white, white ink as white on black) -> (plane, background).

    Only the box that holds any alpha is converted and composited: the rest of the canvas is
    background by definition, so it holds no ink."""
    box = _alpha_box(alpha)
    if _black(colour[box]):
        # Black ink, what canvases draw by default: the composite below comes to exactly this,
        # for a fraction of its CPU.
        return np.subtract(255, alpha[box], dtype=np.uint8), 255
    lum, a = decode.luminance(colour[box]), alpha[box].astype(np.uint16)
    opaque = a > 127
    dark = float(lum[opaque].mean()) < 128 if opaque.any() else True
    background = 255 if dark else 0
    composite = (a * lum + (255 - a) * background) // 255
    return composite.astype(np.uint8), background


def _ink_plane(colour: np.ndarray, alpha: np.ndarray | None) -> tuple[np.ndarray, int]:
    """Colour and alpha -> (plane, background): the ink is _ink_table(background)[plane], and
    where the plane covers only part of the canvas, the rest holds no ink."""
    if alpha is not None and int(alpha.min()) < 250:
        if _border_level(alpha) < 128:
            return _transparent_plane(colour, alpha)
        # An opaque canvas with a few see-through pixels: flatten them onto white.
        a = alpha.astype(np.uint16)
        plane = (255 - (a * (255 - decode.luminance(colour))) // 255).astype(np.uint8)
    else:
        plane = decode.luminance(colour)
    return plane, _border_level(plane)


def _span(flags: np.ndarray, empty: str = "the image holds no drawing") -> slice:
    """From the first true flag to the last; EmptyImageError(empty) if none is true."""
    (indices,) = flags.nonzero()
    if indices.size == 0:
        raise EmptyImageError(empty)
    return slice(indices[0], indices[-1] + 1)


def _levels(table: np.ndarray, peak: int) -> np.ndarray:
    """Luminance -> ink, 1.0 at the peak and 0 below NOISE_FLOOR. Scaling by the peak and the
    noise floor act on each level alike: they are applied to the table's 256 entries rather
    than to every pixel."""
    if peak < CONTRAST_MIN * 255:
        raise EmptyImageError("the image is blank: no stroke stands out from the background")
    levels = table.astype(np.float32) / peak
    levels[levels < NOISE_FLOOR] = 0.0
    return levels


def _require_mass(ink: np.ndarray, canvas_size: int) -> None:
    if float(ink.sum()) < max(3.0, MIN_INK_FRACTION * canvas_size):
        raise EmptyImageError("the image is nearly blank: draw a digit")


def _ink_crop(
    plane: np.ndarray, table: np.ndarray, canvas_size: int
) -> tuple[np.ndarray, tuple[slice, slice]]:
    """-> the ink, 1.0 at its peak and 0 below NOISE_FLOOR, cropped to the rows and columns
    that reach the floor, and the box within it of the pixels above BBOX_THRESHOLD.

    The table is monotonic, so the strongest ink of a row is the table at the row's darkest
    pixel (lightest, for light ink): one min (max) reduction per axis finds both boxes, and
    only the cropped pixels are mapped. Columns are reduced over the band of rows that reach
    the floor; no pixel outside it does. Pixels left and right of the crop are below the
    floor, so also below BBOX_THRESHOLD: the rows' extremes serve for the inner box too."""
    extreme = np.minimum if table[0] > table[255] else np.maximum
    row_levels = extreme.reduce(plane, axis=1)
    peak = int(table[row_levels].max())
    levels = _levels(table, peak)
    floor = NOISE_FLOOR * peak
    rows = _span(table[row_levels] >= floor)
    col_levels = extreme.reduce(plane[rows], axis=0)
    cols = _span(table[col_levels] >= floor)
    ink = np.take(levels, plane[rows, cols])
    # Blank or not is judged against the whole canvas, not the crop.
    _require_mass(ink, canvas_size)
    inner_rows = _span(levels[row_levels[rows]] > BBOX_THRESHOLD)
    inner_cols = _span(levels[col_levels[cols]] > BBOX_THRESHOLD)
    return ink, (inner_rows, inner_cols)


def ink_map(
    image: decode.ImageInput,
    *,
    max_bytes: int = decode.DEFAULT_MAX_BYTES,
    max_pixels: int = decode.DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """PNG/JPEG bytes, a PIL image or an array -> (H, W) float32 ink over the whole input, 1.0
    at its peak and 0 below NOISE_FLOOR: the ink to_model_input crops, for a reader that cuts
    it into several digits (digits.read.numbers). Raises EmptyImageError as to_model_input does."""
    colour, alpha = decode.colour_and_alpha(image, max_bytes=max_bytes, max_pixels=max_pixels)
    plane, background = _ink_plane(colour, alpha)
    table = _ink_table(background)
    if plane.shape != colour.shape[:2]:  # a transparent canvas: the plane covers its alpha box
        full = np.full(colour.shape[:2], background, np.uint8)
        full[_alpha_box(alpha)] = plane  # type: ignore[arg-type]
        plane = full
    # The table is monotonic: the strongest ink is at the plane's darkest or lightest pixel.
    peak = int(table[[plane.min(), plane.max()]].max())
    ink = np.take(_levels(table, peak), plane)
    _require_mass(ink, plane.size)
    return ink


def _dilate(image: np.ndarray, steps: int) -> np.ndarray:
    for _ in range(steps):
        out = image.copy()
        np.maximum(out[1:], image[:-1], out=out[1:])
        np.maximum(out[:-1], image[1:], out=out[:-1])
        np.maximum(out[:, 1:], image[:, :-1], out=out[:, 1:])
        np.maximum(out[:, :-1], image[:, 1:], out=out[:, :-1])
        image = out
    return image


def _erode(image: np.ndarray, steps: int) -> np.ndarray:
    return 1.0 - _dilate(1.0 - image, steps)


def stroke_width(ink: np.ndarray, threshold: float = 0.5) -> float:
    """Mean stroke width in pixels: a stroke of width w and length L has area wL and ~2L edge."""
    mask = ink > threshold
    area = int(np.count_nonzero(mask))
    if area == 0:
        return 0.0
    inner = mask.copy()
    inner[1:] &= mask[:-1]
    inner[:-1] &= mask[1:]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    edge = area - int(np.count_nonzero(inner))
    return 2.0 * area / max(edge, 1)


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    pil = Image.frombytes("F", image.shape[::-1], np.ascontiguousarray(image, dtype=np.float32))
    resample = Image.Resampling.BOX if width < image.shape[1] else Image.Resampling.BILINEAR
    return np.asarray(pil.resize((width, height), resample), dtype=np.float32)


def block_mean(image: np.ndarray, step: int = WORK_SCALE) -> np.ndarray:
    """Mean of each step x step block (both sides a multiple of step). Adding strided slices,
    columns then rows, sums each block in the order numpy's reshape(...).mean(axis=(1, 3))
    does, so the float32 results are the same, at a tenth of the cost for a number's line
    (digits.read.numbers) and half for a digit's framing."""
    across = sum((image[:, k::step] for k in range(1, step)), image[:, 0::step])
    down = sum((across[k::step] for k in range(1, step)), across[0::step])
    result: np.ndarray = down / step**2
    return result


def frame(crop: np.ndarray) -> np.ndarray:
    """Ink cropped to its pixels above BBOX_THRESHOLD -> fit the 20x20 box, even out the
    stroke, centre by mass in 28x28."""
    height, width = crop.shape
    work_box = BOX_SIZE * WORK_SCALE
    scale = work_box / max(height, width)
    work_h = max(WORK_SCALE, round(height * scale / WORK_SCALE) * WORK_SCALE)
    work_w = max(WORK_SCALE, round(width * scale / WORK_SCALE) * WORK_SCALE)

    pad = WORK_SCALE * 2  # room for dilation without clipping the stroke
    work = np.zeros((work_h + 2 * pad, work_w + 2 * pad), dtype=np.float32)
    work[pad:-pad, pad:-pad] = _resize(crop, work_w, work_h)
    width_px = stroke_width(work) / WORK_SCALE
    if 0 < width_px < STROKE_THIN:
        work = _dilate(work, round((STROKE_TARGET - width_px) * WORK_SCALE / 2))
    elif width_px > STROKE_THICK:
        work = _erode(work, round((width_px - STROKE_TARGET) * WORK_SCALE / 2))

    # Area-average down to the 20x20 scale (MNIST's anti-aliasing). The result is at most
    # BOX_SIZE + 2 * pad / WORK_SCALE = 24 pixels a side, so it fits the 28x28 field.
    small = block_mean(work)
    vanished = "the drawing vanished when scaled down: nothing was drawn"
    small = small[_span(small.max(axis=1) > 0.05, vanished), _span(small.max(axis=0) > 0.05)]
    small_h, small_w = small.shape

    mass = float(small.sum())
    com_y = float((small.sum(axis=1) * np.arange(small_h)).sum()) / mass
    com_x = float((small.sum(axis=0) * np.arange(small_w)).sum()) / mass
    centre = IMAGE_SIZE / 2
    top = min(max(round(centre - com_y), 0), IMAGE_SIZE - small_h)
    left = min(max(round(centre - com_x), 0), IMAGE_SIZE - small_w)
    out = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    # All values are >= 0, so the peak of out is the peak of small.
    out[top : top + small_h, left : left + small_w] = small / max(float(small.max()), 1e-6)
    return out


def to_model_input(
    image: decode.ImageInput,
    *,
    max_bytes: int = decode.DEFAULT_MAX_BYTES,
    max_pixels: int = decode.DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """PNG/JPEG bytes, a PIL image or an array -> (28, 28) float32, ink 1.0 on 0.0."""
    colour, alpha = decode.colour_and_alpha(image, max_bytes=max_bytes, max_pixels=max_pixels)
    plane, background = _ink_plane(colour, alpha)
    canvas_size = colour.shape[0] * colour.shape[1]
    ink, box = _ink_crop(plane, _ink_table(background), canvas_size)
    return frame(ink[box])


def normalize(batch: ArrayOrTensor) -> ArrayOrTensor:
    """Model inputs in [0, 1] -> the standardised values the network was trained on.

    Works on numpy arrays (serving) and torch tensors (training) alike: one formula for both."""
    return (batch - MNIST_MEAN) / MNIST_STD


def input_to_png(model_input: np.ndarray) -> bytes:
    """A (28, 28) model input -> PNG bytes (white ink on black, as the model sees it)."""
    pixels = np.clip(np.rint(np.asarray(model_input, dtype=np.float32) * 255.0), 0, 255)
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def png_to_input(png: bytes) -> np.ndarray:
    """PNG bytes from ``input_to_png`` -> the (28, 28) float32 model input in [0, 1]."""
    return np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float32) / 255.0


def describe() -> dict[str, Any]:
    """The constants a checkpoint records so a consumer can verify it reads inputs the same way."""
    return {
        "version": PREPROCESS_VERSION,
        "image_size": IMAGE_SIZE,
        "box_size": BOX_SIZE,
        "mean": MNIST_MEAN,
        "std": MNIST_STD,
    }

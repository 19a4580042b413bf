"""Whatever a user sends -> the 28x28 image the model reads, framed the way MNIST digits were.

MNIST framing: the ink's bounding box is scaled (aspect ratio kept) to fit a 20x20 box, then
placed in a 28x28 field so that its centre of mass sits at the centre. Every image constant of
the project lives in this module; training and serving both import it.
"""

from __future__ import annotations

import io
import struct
import warnings
from typing import Any, TypeVar

import numpy as np
import pyspng
from PIL import Image, UnidentifiedImageError

IMAGE_SIZE = 28
BOX_SIZE = 20
NUM_CLASSES = 10
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081
# Bump when the framing changes: checkpoints record it, and cached training inputs depend on it.
PREPROCESS_VERSION = 1

DEFAULT_MAX_BYTES = 2 * 1024 * 1024
DEFAULT_MAX_PIXELS = 4096 * 4096
ACCEPTED_FORMATS = ("PNG", "JPEG")
# Pillow's mode for an 8-bit PNG -> the libspng output with the same pixels. Grey+alpha, palette,
# 1-bit and 16-bit PNGs are rare and take Pillow's path (its conversions decide their pixels).
_SPNG_FORMATS = {"L": "L", "RGB": "RGB", "RGBA": "RGBA"}
_PNG_BIT_DEPTH = 24  # offset in the file: 8-byte signature, IHDR length and type, width, height

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
ImageInput = bytes | bytearray | memoryview | np.ndarray | Image.Image


class PreprocessError(ValueError):
    """The input cannot become a model input; the message says why."""


class EmptyImageError(PreprocessError):
    """The image holds no drawing (blank or nearly so)."""


class ImageTooLargeError(PreprocessError):
    """The input is over the byte or pixel limit."""


class UnsupportedImageError(PreprocessError):
    """The bytes are not a decodable PNG or JPEG, or the array has an unusable shape."""


def _open(data: bytes, max_pixels: int) -> Image.Image:
    """Read the header only: format and size are known before any pixel is decompressed."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    width, height = image.size
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"the image is {width}x{height} pixels; the limit is {max_pixels} pixels"
        )
    if width == 0 or height == 0:
        raise UnsupportedImageError("the image has no pixels")
    return image


def decode(
    data: bytes | bytearray | memoryview,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Image.Image | np.ndarray:
    """Decode PNG or JPEG bytes, refusing oversized files before any pixel is decompressed.

    8-bit PNGs (what canvases and most tools write) come back as an (H, W[, C]) uint8 array
    decoded by libspng, about 1.6x faster than Pillow's decoder with the same pixels; other
    PNGs and JPEGs come back as a loaded PIL image.
    """
    if len(data) > max_bytes:
        raise ImageTooLargeError(f"the image is {len(data)} bytes; the limit is {max_bytes} bytes")
    if len(data) == 0:
        raise UnsupportedImageError("the image is empty (0 bytes); send a PNG or JPEG file")
    data = bytes(data)
    try:
        image = _open(data, max_pixels)
        spng_format = _SPNG_FORMATS.get(image.mode) if image.format == "PNG" else None
        if spng_format is not None and data[_PNG_BIT_DEPTH] == 8:
            pixels: np.ndarray = pyspng.load(data, spng_format)
            return pixels
        image.load()
        return image
    except PreprocessError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError(f"the image is too large to decode safely: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise UnsupportedImageError("the file is not a PNG or JPEG image") from exc
    except (OSError, ValueError, SyntaxError, RuntimeError, struct.error) as exc:
        raise UnsupportedImageError(f"the image is truncated or corrupt: {exc}") from exc


def _image_to_planes(image: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """-> luminance (H, W) uint8 and alpha (H, W) uint8 or None."""
    if image.mode not in ("L", "RGB", "RGBA", "LA"):
        has_transparency = "transparency" in image.info or image.mode == "PA"
        image = image.convert("RGBA" if has_transparency else "RGB")
    luminance = np.asarray(image.convert("L") if image.mode != "L" else image)
    alpha = np.asarray(image.getchannel("A")) if image.mode in ("RGBA", "LA") else None
    return luminance, alpha


def _array_to_planes(array: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (2, 3, 4)):
        raise UnsupportedImageError(
            f"expected an (H, W), (H, W, 3) or (H, W, 4) array, got {array.shape}"
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise UnsupportedImageError("the array has no pixels")
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    elif array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.number):
            raise UnsupportedImageError(f"unsupported array dtype {array.dtype}")
        values = array.astype(np.float32)
        if not np.isfinite(values).all():
            raise UnsupportedImageError("the array holds NaN or infinite values")
        if values.max(initial=0.0) <= 1.0:
            values = values * 255.0
        array = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    if array.ndim == 2:
        return array, None
    channels = array.shape[2]
    if channels == 2:
        return array[..., 0], array[..., 1]
    # Pillow's C conversion is several times faster than the same weighted sum in numpy.
    mode = "RGBA" if channels == 4 else "RGB"
    color = Image.fromarray(np.ascontiguousarray(array), mode=mode)
    alpha = array[..., 3] if channels == 4 else None
    return np.asarray(color.convert("L")), alpha


def _ink_table(background: int) -> np.ndarray:
    """Lookup table luminance -> ink for a background level, either polarity."""
    levels = np.arange(256, dtype=np.int32)
    if background >= 128:
        table = (background - levels) * 255 // max(background, 1)
    else:
        table = (levels - background) * 255 // (255 - background)
    return np.clip(table, 0, 255).astype(np.uint8)


def _transparent_ink(luminance: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Ink of strokes on a transparent canvas, composited over the colour that contrasts with
    them (black ink reads as black on white, white ink as white on black). Only the box that
    holds any alpha is composited: the rest of the canvas is background by definition."""
    rows = np.flatnonzero(alpha.max(axis=1) > 0)
    cols = np.flatnonzero(alpha.max(axis=0) > 0)
    if rows.size == 0:
        raise EmptyImageError("the image is fully transparent: nothing was drawn")
    box = np.s_[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    lum, a = luminance[box], alpha[box].astype(np.uint16)
    opaque = a > 127
    dark = float(lum[opaque].mean()) < 128 if opaque.any() else True
    background = 255 if dark else 0
    composite = (a * lum + (255 - a) * background) // 255
    ink = np.zeros(luminance.shape, dtype=np.uint8)
    ink[box] = _ink_table(background)[composite]
    return ink


def ink_map(luminance: np.ndarray, alpha: np.ndarray | None = None) -> np.ndarray:
    """uint8 planes -> ink as uint8 (255 where the pen was), whatever the polarity or alpha."""
    if alpha is not None and int(alpha.min()) < 250:
        border = np.concatenate([alpha[0], alpha[-1], alpha[:, 0], alpha[:, -1]])
        if np.median(border) < 128:
            return _transparent_ink(luminance, alpha)
        # An opaque canvas with a few see-through pixels: flatten them onto white.
        a = alpha.astype(np.uint16)
        luminance = (255 - (a * (255 - luminance)) // 255).astype(np.uint8)
    border = np.concatenate([luminance[0], luminance[-1], luminance[:, 0], luminance[:, -1]])
    return _ink_table(int(np.median(border)))[luminance]


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
    area = int(mask.sum())
    if area == 0:
        return 0.0
    inner = mask.copy()
    inner[1:] &= mask[:-1]
    inner[:-1] &= mask[1:]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    edge = area - int(inner.sum())
    return 2.0 * area / max(edge, 1)


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    pil = Image.fromarray(image.astype(np.float32, copy=False), mode="F")
    resample = Image.Resampling.BOX if width < image.shape[1] else Image.Resampling.BILINEAR
    return np.asarray(pil.resize((width, height), resample), dtype=np.float32)


def frame(ink: np.ndarray) -> np.ndarray:
    """Crop to the ink, fit the 20x20 box, even out the stroke, centre by mass in 28x28."""
    rows = np.flatnonzero(ink.max(axis=1) > BBOX_THRESHOLD)
    cols = np.flatnonzero(ink.max(axis=0) > BBOX_THRESHOLD)
    if rows.size == 0:
        raise EmptyImageError("the image holds no drawing")
    crop = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    height, width = crop.shape
    work_box = BOX_SIZE * WORK_SCALE
    scale = work_box / max(height, width)
    work_h = max(WORK_SCALE, round(height * scale / WORK_SCALE) * WORK_SCALE)
    work_w = max(WORK_SCALE, round(width * scale / WORK_SCALE) * WORK_SCALE)
    work = _resize(crop, work_w, work_h)

    pad = WORK_SCALE * 2  # room for dilation without clipping the stroke
    work = np.pad(work, pad)
    width_px = stroke_width(work) / WORK_SCALE
    if 0 < width_px < STROKE_THIN:
        work = _dilate(work, round((STROKE_TARGET - width_px) * WORK_SCALE / 2))
    elif width_px > STROKE_THICK:
        work = _erode(work, round((width_px - STROKE_TARGET) * WORK_SCALE / 2))

    # Area-average WORK_SCALE x WORK_SCALE blocks down to the 20x20 scale (MNIST's anti-aliasing).
    small_h, small_w = work.shape[0] // WORK_SCALE, work.shape[1] // WORK_SCALE
    small = work.reshape(small_h, WORK_SCALE, small_w, WORK_SCALE).mean(axis=(1, 3))
    small_rows = np.flatnonzero(small.max(axis=1) > 0.05)
    small_cols = np.flatnonzero(small.max(axis=0) > 0.05)
    if small_rows.size == 0:
        raise EmptyImageError("the drawing vanished when scaled down: nothing was drawn")
    small = small[small_rows[0] : small_rows[-1] + 1, small_cols[0] : small_cols[-1] + 1]
    small_h, small_w = small.shape
    if max(small_h, small_w) > IMAGE_SIZE:
        small = small[:IMAGE_SIZE, :IMAGE_SIZE]
        small_h, small_w = small.shape

    mass = float(small.sum())
    com_y = float((small.sum(axis=1) * np.arange(small_h)).sum()) / mass
    com_x = float((small.sum(axis=0) * np.arange(small_w)).sum()) / mass
    centre = IMAGE_SIZE / 2
    top = int(np.clip(round(centre - com_y), 0, IMAGE_SIZE - small_h))
    left = int(np.clip(round(centre - com_x), 0, IMAGE_SIZE - small_w))
    out = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    out[top : top + small_h, left : left + small_w] = small
    return out / max(float(out.max()), 1e-6)


def to_planes(
    image: ImageInput, *, max_bytes: int = DEFAULT_MAX_BYTES, max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[np.ndarray, np.ndarray | None]:
    if isinstance(image, bytes | bytearray | memoryview):
        decoded = decode(image, max_bytes=max_bytes, max_pixels=max_pixels)
        if isinstance(decoded, np.ndarray):
            return _array_to_planes(decoded)
        return _image_to_planes(decoded)
    if isinstance(image, Image.Image):
        if image.width * image.height > max_pixels:
            raise ImageTooLargeError(
                f"the image is {image.width}x{image.height} pixels; the limit is {max_pixels} pixels"
            )
        return _image_to_planes(image)
    if isinstance(image, np.ndarray):
        if image.ndim >= 2 and image.shape[0] * image.shape[1] > max_pixels:
            raise ImageTooLargeError(
                f"the array {image.shape} is over the limit of {max_pixels} pixels"
            )
        return _array_to_planes(image)
    raise UnsupportedImageError(f"cannot read an image from {type(image).__name__}")


def to_model_input(
    image: ImageInput, *, max_bytes: int = DEFAULT_MAX_BYTES, max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """PNG/JPEG bytes, a PIL image or an array -> (28, 28) float32, ink 1.0 on 0.0."""
    ink = ink_map(*to_planes(image, max_bytes=max_bytes, max_pixels=max_pixels))
    peak = int(ink.max())
    if peak < CONTRAST_MIN * 255:
        raise EmptyImageError("the image is blank: no stroke stands out from the background")
    rows = np.flatnonzero(ink.max(axis=1) >= NOISE_FLOOR * peak)
    cols = np.flatnonzero(ink.max(axis=0) >= NOISE_FLOOR * peak)
    crop = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].astype(np.float32) / peak
    crop[crop < NOISE_FLOOR] = 0.0
    if float(crop.sum()) < max(3.0, MIN_INK_FRACTION * ink.size):
        raise EmptyImageError("the image is nearly blank: draw a digit")
    return frame(crop)


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


def describe() -> dict[str, Any]:
    """The constants a checkpoint records so a consumer can verify it reads inputs the same way."""
    return {
        "version": PREPROCESS_VERSION,
        "image_size": IMAGE_SIZE,
        "box_size": BOX_SIZE,
        "mean": MNIST_MEAN,
        "std": MNIST_STD,
    }

"""Whatever a user sends -> pixel planes: PNG or JPEG bytes (read by libspng or Pillow), a PIL
image or an array, with the byte and pixel limits enforced before any pixel is decompressed.
Every failure is a PreprocessError whose message says why."""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass

import numpy as np
import pyspng
from PIL import Image, UnidentifiedImageError

# The image branch of digits.errors, where the decoding stage's callers look for it.
from digits.errors import EmptyImageError as EmptyImageError
from digits.errors import ImageTooLargeError, PreprocessError, UnsupportedImageError

DEFAULT_MAX_BYTES = 2 * 1024 * 1024
DEFAULT_MAX_PIXELS = 4096 * 4096
ACCEPTED_FORMATS = ("PNG", "JPEG")
# The Pillow modes of the PNGs libspng decodes to the same pixels (its output formats bear the
# same names). Grey+alpha, palette, 1-bit and 16-bit grey PNGs are rare and take Pillow's path.
# libspng saves 0.6-0.8 ms of CPU per canvas drawing over Pillow's decoder, the largest of the
# serving road's tricks (benchmarks/trick_bench.py; docs/api.md, Performance).
_SPNG_MODES = frozenset({"L", "RGB", "RGBA"})

ImageInput = bytes | bytearray | memoryview | np.ndarray | Image.Image


@dataclass(frozen=True)
class InputLimits:
    """What an upload may weigh (bytes) and hold (pixels) before anything is decompressed."""

    max_bytes: int = DEFAULT_MAX_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS


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

    Grey, RGB and RGBA PNGs (what canvases and most tools write) come back as an (H, W[, C])
    uint8 array decoded by libspng, which is faster than Pillow's decoder with the same
    pixels; other PNGs and JPEGs come back as a loaded PIL image.
    """
    if len(data) > max_bytes:
        raise ImageTooLargeError(f"the image is {len(data)} bytes; the limit is {max_bytes} bytes")
    if len(data) == 0:
        raise UnsupportedImageError("the image is empty (0 bytes); send a PNG or JPEG file")
    data = bytes(data)
    try:
        image = _open(data, max_pixels)
        if image.format == "PNG" and image.mode in _SPNG_MODES:
            pixels: np.ndarray = pyspng.load(data, image.mode)
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


def _as_uint8(array: np.ndarray) -> np.ndarray:
    """Check an array's shape and values -> uint8 (H, W) or (H, W, 2|3|4)."""
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (2, 3, 4)):
        raise UnsupportedImageError(
            f"expected an (H, W), (H, W, 3) or (H, W, 4) array, got {array.shape}"
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise UnsupportedImageError("the array has no pixels")
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.number):
            raise UnsupportedImageError(f"unsupported array dtype {array.dtype}")
        values = array.astype(np.float32)
        if not np.isfinite(values).all():
            raise UnsupportedImageError("the array holds NaN or infinite values")
        if values.max(initial=0.0) <= 1.0:
            values = values * 255.0
        return np.clip(np.rint(values), 0, 255).astype(np.uint8)
    return array


def _split_alpha(array: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """uint8 array -> colour and alpha. Colour stays grey (H, W) or RGB[A] (H, W, 3|4): its
    luminance is computed later, and for a transparent canvas only where something was drawn.
    Alpha is copied out of the interleaved channels: the few reductions over it run several
    times faster on a contiguous plane."""
    if array.ndim == 2:
        return array, None
    channels = array.shape[2]
    if channels == 3:
        return array, None
    alpha = np.ascontiguousarray(array[..., -1])
    return (array[..., 0] if channels == 2 else array), alpha


def luminance(colour: np.ndarray) -> np.ndarray:
    """Grey or RGB[A] uint8 -> luminance (H, W) uint8.

    Pillow's C conversion is several times faster than the same weighted sum in numpy, and it
    works pixel by pixel: the luminance of a crop is the crop of the luminance."""
    if colour.ndim == 2:
        return colour
    mode = "RGBA" if colour.shape[2] == 4 else "RGB"
    color = Image.fromarray(np.ascontiguousarray(colour), mode=mode)
    return np.asarray(color.convert("L"))


def colour_and_alpha(
    image: ImageInput, *, max_bytes: int, max_pixels: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """Any accepted input -> colour (grey, or RGB[A] for arrays) and alpha, limits enforced."""
    if isinstance(image, bytes | bytearray | memoryview):
        decoded = decode(image, max_bytes=max_bytes, max_pixels=max_pixels)
        if isinstance(decoded, np.ndarray):
            return _split_alpha(decoded)
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
        return _split_alpha(_as_uint8(image))
    raise UnsupportedImageError(f"cannot read an image from {type(image).__name__}")


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# What a PNG's pixels need: the critical chunks, and transparency. Text, metadata, colour
# profiles, private chunks and anything after IEND are dropped from the stored copy.
_KEPT_CHUNKS = frozenset({b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND"})
# A canvas drawing is a few KB; only noise-like images come near this once capped in size.
STORED_MAX_BYTES = 256 * 1024


def _pixel_chunks(data: bytes) -> bytes:
    """The PNG with only the chunks its pixels need (it was decoded already)."""
    kept, position = [PNG_SIGNATURE], len(PNG_SIGNATURE)
    while position + 8 <= len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        end = position + 12 + length  # length, type, data, CRC
        if kind in _KEPT_CHUNKS:
            kept.append(data[position:end])
        if kind == b"IEND":
            break
        position = end
    return b"".join(kept)


def _encode(image: Image.Image, max_side: int) -> bytes:
    """Shrunk to ``max_side`` and encoded fast: a box filter for the whole factor of the
    shrinking (bicubic for the rest) and zlib's fastest level. A 1120x280 number is stored in
    1.3 ms, 7.3 KB, rather than 2.6 ms and 8.8 KB with bicubic all the way and the default
    level (POST /api/numbers answers within 15 ms)."""
    image = image.copy()
    image.thumbnail((max_side, max_side), reducing_gap=1.0)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False, compress_level=1)
    return buffer.getvalue()


def stored_png(data: bytes | Image.Image, *, max_side: int) -> bytes:
    """A decodable PNG or JPEG (or an image decoded already) as the PNG kept for the history:
    no larger than ``max_side`` a side and STORED_MAX_BYTES in all, without ancillary chunks or
    trailing bytes. A small PNG keeps its own pixel chunks; anything else is re-encoded."""
    image = data if isinstance(data, Image.Image) else Image.open(io.BytesIO(data))
    if isinstance(data, bytes) and image.format == "PNG" and max(image.size) <= max_side:
        stripped = _pixel_chunks(data)
        if len(stripped) <= STORED_MAX_BYTES:
            return stripped
    image.load()
    if image.mode not in {"L", "LA", "RGB", "RGBA"}:
        image = image.convert("RGBA" if "A" in image.getbands() or image.mode == "P" else "RGB")
    encoded = _encode(image, max_side)
    while len(encoded) > STORED_MAX_BYTES and max_side > 28:  # noise compresses badly
        max_side //= 2
        encoded = _encode(image, max_side)
    return encoded

"""Turning request bodies into image bytes, and the size-capped PNG kept for the history."""

from __future__ import annotations

import base64
import binascii
import io
import struct

from PIL import Image

from digits.decode import UnsupportedImageError


def decode_base64_image(value: str) -> bytes:
    """Base64 or a ``data:image/...;base64,`` URL -> bytes; UnsupportedImageError otherwise."""
    text = value.strip()
    if text.startswith("data:"):
        header, sep, text = text.partition(",")
        if not sep or not header.endswith(";base64"):
            raise UnsupportedImageError(
                "a data: URL image must be base64 (data:image/png;base64,...)"
            )
    try:
        data = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise UnsupportedImageError("the image field is not valid base64") from exc
    if not data:
        raise UnsupportedImageError("the image field is empty; send a PNG or JPEG as base64")
    return data


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# What a PNG's pixels need: the critical chunks, and transparency. Text, metadata, colour
# profiles, private chunks and anything after IEND are dropped from the stored copy.
_KEPT_CHUNKS = frozenset({b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND"})
# A canvas drawing is a few KB; only noise-like images come near this once capped in size.
STORED_MAX_BYTES = 256 * 1024


def _pixel_chunks(data: bytes) -> bytes:
    """The PNG with only the chunks its pixels need (the predictor already decoded it)."""
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
    image = image.copy()
    image.thumbnail((max_side, max_side))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def stored_png(data: bytes | Image.Image, *, max_side: int) -> bytes:
    """The submitted image as the PNG kept for the history: no larger than ``max_side`` per
    side and STORED_MAX_BYTES in all, without ancillary chunks or trailing bytes. A small PNG
    keeps its own pixel chunks; anything else is re-encoded.

    Called after the predictor decoded ``data`` successfully, so it is a valid PNG or JPEG (or
    an image already decoded and shrunk off the event loop).
    """
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

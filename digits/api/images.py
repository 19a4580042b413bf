"""Turning request bodies into image bytes, and the size-capped PNG kept for the history."""

from __future__ import annotations

import base64
import binascii
import io

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


def stored_png(data: bytes, *, max_side: int) -> bytes:
    """The submitted image as PNG no larger than ``max_side`` (already-small PNGs kept as is).

    Called after the predictor decoded ``data`` successfully, so it is a valid PNG or JPEG.
    """
    image: Image.Image = Image.open(io.BytesIO(data))
    if image.format == "PNG" and max(image.size) <= max_side:
        return data
    image.load()
    if image.mode not in {"L", "LA", "RGB", "RGBA"}:
        image = image.convert("RGBA" if "A" in image.getbands() or image.mode == "P" else "RGB")
    image.thumbnail((max_side, max_side))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()

"""A JSON body's image: base64 text -> bytes."""

from __future__ import annotations

import base64
import binascii

from digits.errors import UnsupportedImageError


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

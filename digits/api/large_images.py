"""Large images are decoded off the event loop, so they cannot stall a worker's other requests.

Decoding a 4096x4096 PNG holds the interpreter lock for about 0.2 s (libspng does not release
it), and framing all its pixels takes twice that: on the event loop, every other request of the
worker waits. So each worker hands images over LARGE_PIXELS to one helper process of its own,
which decodes them and shrinks them (a box filter) to at most WORK_SIDE per side before anything
else reads them; the 28x28 framing of the result is the same digit. One decodes at a time per
worker and QUEUE more may wait: what that budget cannot take is refused (413).
"""

from __future__ import annotations

import asyncio
import io
import math
import multiprocessing
import struct
from concurrent.futures import ProcessPoolExecutor
from functools import partial

import numpy as np
from PIL import Image

from digits import decode
from digits.errors import ImageTooLargeError

LARGE_PIXELS = 1024 * 1024  # canvas drawings (280x280) and most photos stay on the fast path
WORK_SIDE = 1024
QUEUE = 2


class ImageBudgetError(ImageTooLargeError):
    """This worker is already decoding as many large images as its budget allows."""

    retry_later = True


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the header alone; None when it cannot be read (the decoder will say
    why)."""
    if data.startswith(decode.PNG_SIGNATURE) and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    try:
        width, height = Image.open(io.BytesIO(data), formats=decode.ACCEPTED_FORMATS).size
    except (OSError, ValueError, SyntaxError):
        return None
    return int(width), int(height)


def pixel_count(data: bytes) -> int | None:
    size = image_size(data)
    return None if size is None else size[0] * size[1]


def shrink(
    data: bytes, *, max_bytes: int, max_pixels: int, stored_side: int
) -> tuple[np.ndarray, bytes]:
    """In the helper process: decode with the usual limits, shrink to WORK_SIDE, and make the
    stored copy -> (pixels (H, W[, C]) uint8, stored PNG)."""
    decoded = decode.decode(data, max_bytes=max_bytes, max_pixels=max_pixels)
    image = Image.fromarray(decoded) if isinstance(decoded, np.ndarray) else decoded
    if image.mode not in {"L", "LA", "RGB", "RGBA"}:
        has_alpha = "transparency" in image.info or "A" in image.getbands()
        image = image.convert("RGBA" if has_alpha else "RGB")
    factor = math.ceil(max(image.size) / WORK_SIDE)
    if factor > 1:
        image = image.reduce(factor)
    return np.asarray(image), decode.stored_png(image, max_side=stored_side)


class LargeImages:
    """One worker's helper process and its budget (``app.state.large_images``)."""

    def __init__(self, *, max_bytes: int, max_pixels: int, stored_side: int) -> None:
        self.limits = {"max_bytes": max_bytes, "max_pixels": max_pixels}
        self.stored_side = stored_side
        self._pool: ProcessPoolExecutor | None = None
        self._taken = 0  # decoding or waiting; only the event loop's thread changes it

    async def prepare(self, data: bytes) -> tuple[bytes | np.ndarray, bytes | None]:
        """(what the predictor reads, the stored copy or None to make it from the bytes)."""
        pixels = pixel_count(data)
        if pixels is None or pixels <= LARGE_PIXELS or pixels > self.limits["max_pixels"]:
            return data, None
        if self._taken > QUEUE:
            raise ImageBudgetError(
                f"this server is busy with other images over {LARGE_PIXELS} pixels; send a "
                "smaller one, or retry in a moment"
            )
        self._taken += 1
        try:
            if self._pool is None:
                # spawn, not fork: the worker has threads (ONNX Runtime, the database pool).
                context = multiprocessing.get_context("spawn")
                self._pool = ProcessPoolExecutor(max_workers=1, mp_context=context)
            job = partial(shrink, data, stored_side=self.stored_side, **self.limits)
            return await asyncio.get_running_loop().run_in_executor(self._pool, job)
        finally:
            self._taken -= 1

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

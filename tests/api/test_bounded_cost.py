"""What one request may cost: the stored copy is small and bare, a large image is decoded off
the event loop within a budget."""

from __future__ import annotations

import asyncio
import io
import os
import struct
import time
import zlib

import httpx
import numpy as np
import pytest
from api_helpers import SESSION_HEADER, drawing, png_bytes, post_drawing
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

from digits.api import create_app, large_images
from digits.config import Settings
from digits.decode import STORED_MAX_BYTES
from digits.predict import Predictor


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _chunks(png: bytes) -> list[bytes]:
    kinds, position = [], 8
    while position < len(png):
        (length,) = struct.unpack(">I", png[position : position + 4])
        kinds.append(png[position + 4 : position + 8])
        position += 12 + length
    return kinds


def _stored(client: TestClient, created: dict) -> bytes:
    response = client.get(f"/api/predictions/{created['id']}/image")
    assert response.status_code == 200
    return response.content


def test_the_stored_drawing_holds_only_its_pixels(client: TestClient) -> None:
    original = drawing()
    text = _chunk(b"tEXt", b"Comment\x00" + b"x" * 200_000)
    padded = original[:33] + text + original[33:] + os.urandom(1_500_000)  # after IHDR; trailing
    created = post_drawing(client, padded)
    assert created.status_code == 201, created.text
    stored = _stored(client, created.json())
    assert _chunks(stored) == [k for k in _chunks(original) if k in {b"IHDR", b"IDAT", b"IEND"}]
    assert len(stored) <= len(original)
    as_sent = np.asarray(Image.open(io.BytesIO(original)))
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(stored))), as_sent)


def test_a_noisy_drawing_is_stored_under_the_size_cap(client: TestClient) -> None:
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (560, 560, 4), dtype=np.uint8)
    noise[..., 3] = 255
    sent = png_bytes(Image.fromarray(noise, "RGBA"))
    assert len(sent) > STORED_MAX_BYTES
    created = post_drawing(client, sent)
    assert created.status_code == 201, created.text
    assert len(_stored(client, created.json())) <= STORED_MAX_BYTES


def _large_png(side: int = 4096) -> bytes:
    image = Image.new("L", (side, side), 255)
    s = side / 280
    ImageDraw.Draw(image).line(
        [(70 * s, 60 * s), (210 * s, 60 * s), (120 * s, 230 * s)], fill=0, width=int(18 * s)
    )
    return png_bytes(image)


async def _large_and_small(app, token: str, large: bytes) -> tuple[list[float], list[int]]:  # type: ignore[no-untyped-def]
    """A large image, then small drawings while it is decoded: when each answer came."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", headers={SESSION_HEADER: token}
        ) as client:
            started = time.perf_counter()
            finished: list[float] = []
            statuses: list[int] = []

            async def send(image: bytes) -> None:
                response = await client.post(
                    "/api/predictions", files={"image": ("d.png", image, "image/png")}
                )
                statuses.append(response.status_code)
                finished.append(time.perf_counter() - started)

            big = asyncio.create_task(send(large))
            await asyncio.sleep(0.01)
            for _ in range(5):
                await send(drawing())
            small_done = finished[-1]
            await big
            return [small_done, finished[-1]], statuses


def test_a_large_image_does_not_stall_the_small_ones(
    settings: Settings, predictor: Predictor, client: TestClient
) -> None:
    token = client.headers[SESSION_HEADER]
    app = create_app(settings, predictor=predictor, run_maintenance=False)
    (small_done, large_done), statuses = asyncio.run(_large_and_small(app, token, _large_png()))
    assert statuses == [201] * 6
    assert small_done < large_done  # the five small answers came while the large was decoded
    page = client.get("/api/predictions").json()
    assert page["total"] == 6
    stored = Image.open(io.BytesIO(_stored(client, page["items"][-1])))
    assert max(stored.size) <= settings.stored_image_max_side


def test_large_images_over_the_budget_are_413(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(large_images, "QUEUE", -1)  # no large image fits the budget
    refused = post_drawing(client, _large_png(1100))
    assert refused.status_code == 413 and "busy" in refused.json()["detail"]
    assert refused.headers["retry-after"]  # busy now, not too large for ever
    assert post_drawing(client).status_code == 201  # small drawings are not in that budget
    over_the_limit = post_drawing(client, _large_png(5000))
    assert over_the_limit.status_code == 413 and "retry-after" not in over_the_limit.headers

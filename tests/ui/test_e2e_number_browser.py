"""In a real Chromium: a number written with the mouse on the Draw page's Number canvas is read
(the number shown, a box over each digit), confirmed, and found in History.

The strokes are a real pen "4" and "2" (digits/datasets/pen: samples 170 and 173 of `train`
writer aga/8855f89a10, 14 points a stroke), scaled to 100 px high into the 340x150 canvas; the
shipped model reads their drawing "42" at 99.9 % with brushes of 8 to 12 px.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest
from e2e import (
    ANSWER_TIMEOUT_MS,
    NUMBER_CANVAS,
    Stack,
    browsing,
    draw_with_mouse,
    polyline,
    shot,
)
from PIL import Image, ImageColor
from playwright.sync_api import Browser, Page, expect

from digits.ui import present

pytestmark = pytest.mark.browser

FORTY_TWO = [
    [(87, 52), (87, 51), (88, 51), (87, 52), (83, 64), (80, 74), (80, 77), (81, 78), (86, 79),
     (102, 78), (119, 76), (136, 75), (144, 75), (148, 75)],
    [(134, 25), (133, 26), (130, 30), (129, 34), (129, 45), (129, 52), (130, 66), (130, 74),
     (131, 89), (131, 95), (131, 109), (131, 119), (132, 123), (133, 125)],
    [(183, 46), (192, 41), (226, 28), (246, 27), (257, 31), (261, 40), (253, 62), (233, 83),
     (210, 103), (206, 111), (212, 118), (238, 125), (279, 125), (295, 123)],
]  # fmt: skip
# The stored strokes are the ends of the canvas's smoothed path segments (midpoints of the
# pointer's positions): within a few pixels of what the mouse drew.
STROKE_TOLERANCE = 4.0


def _stored(stack: Stack) -> tuple[str, str, list[list[list[float]]], bytes, list[tuple]]:
    with sqlite3.connect(stack.database) as db:
        numbers = db.execute("SELECT id, number, strokes, image_png FROM numbers").fetchall()
        assert len(numbers) == 1, numbers  # one drawing, however many strokes, is one number
        number_id, number, strokes, png = numbers[0]
        digits = db.execute(
            "SELECT digit, position, box, true_label FROM predictions WHERE number_id = ? "
            "ORDER BY position",
            (number_id,),
        ).fetchall()
    return number_id, number, json.loads(strokes), png, digits


def _check_strokes(stored: list[list[list[float]]], scale: float) -> None:
    """The strokes sent are the mouse's, in the image's pixels (``scale`` of the canvas's)."""
    assert len(stored) == len(FORTY_TWO)
    for sent, drawn in zip(stored, FORTY_TWO, strict=True):
        points = np.asarray(sent) / scale
        line = np.asarray(polyline(drawn))
        distance = np.linalg.norm(points[:, None] - line[None], axis=2).min(axis=1)
        assert distance.max() <= STROKE_TOLERANCE, (distance.max(), sent[:3], drawn[:3])
        ends = np.linalg.norm(points[[0, -1]] - line[[0, -1]], axis=1)
        assert ends.max() <= STROKE_TOLERANCE, ends  # the whole stroke, not a part of it


def _boxes_shown(png: bytes) -> int:
    """How many boxes side by side the shown drawing has: runs of columns holding BOX_COLOUR
    (the page gets the drawing as a JPEG: near that colour; the upright edges can be lost in
    the ink they touch, the top and bottom edges are not)."""
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    colour = np.array(ImageColor.getrgb(present.BOX_COLOUR))
    boxed = (np.abs(pixels - colour).sum(axis=2) < 90).sum(axis=0) >= 2
    return int(np.count_nonzero(np.diff(boxed.astype(int)) == 1) + boxed[0])


def _write_confirm_and_find(page: Page, stack: Stack) -> None:
    page.goto(stack.ui_url, wait_until="domcontentloaded")
    page.get_by_text("Write a whole number").click()
    page.get_by_text("Write a whole number (a year").wait_for(timeout=ANSWER_TIMEOUT_MS)
    draw_with_mouse(page, FORTY_TWO, NUMBER_CANVAS)
    read = page.get_by_role("img", name="Read number 42")
    expect(read).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    page.wait_for_timeout(500)
    shot(page, "number-read")

    number_id, number, strokes, png, digits = _stored(stack)
    width = Image.open(io.BytesIO(png)).width
    _check_strokes(strokes, width / NUMBER_CANVAS[0])
    assert number == "42" and [d[:2] for d in digits] == [(4, 0), (2, 1)]
    boxed = page.locator("[data-testid=stImage]").filter(has_text="Each digit the model found")
    src = boxed.locator("img").get_attribute("src")
    assert src is not None
    shown = httpx.get(httpx.URL(stack.ui_url).join(src), timeout=10)
    assert shown.status_code == 200
    assert _boxes_shown(shown.content) == len(digits)  # a box over each digit

    page.get_by_role("button", name="Yes, it is 42").click()
    page.get_by_text("Saved: it was 42, read right.").wait_for(timeout=ANSWER_TIMEOUT_MS)
    assert [d[3] for d in _stored(stack)[4]] == [4, 2]  # the number labelled its digits

    page.goto(f"{stack.ui_url}/history", wait_until="domcontentloaded")
    page.get_by_text("The latest 1 of 1 numbers.").wait_for(timeout=ANSWER_TIMEOUT_MS)
    page.wait_for_timeout(1000)
    shot(page, "number-history")
    with page.expect_download(timeout=ANSWER_TIMEOUT_MS) as download:
        page.get_by_role("button", name="Export CSV").click()
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    found = [
        (r["position"], r["digit"], r["true_label"], r["number"], r["true_number"])
        for r in rows
        if r["number_id"] and uuid.UUID(r["number_id"]) == uuid.UUID(number_id)
    ]
    assert found == [("0", "4", "4", "42", "42"), ("1", "2", "2", "42", "42")]


def test_write_a_number_confirm_it_and_find_it(browser: Browser, stack: Stack) -> None:
    # Twice the CSS pixels, as on most phones and laptops: the strokes must still come in the
    # sent image's pixels.
    desktop = {"viewport": {"width": 1280, "height": 900}, "device_scale_factor": 2}
    with browsing(browser, "number", **desktop) as page:
        _write_confirm_and_find(page, stack)

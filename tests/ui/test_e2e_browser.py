"""End to end in a real Chromium: draw on the real canvas, get an answer, correct it, find it.

The real API (`digits serve`, temporary SQLite) and the real UI (`digits ui`) run as
subprocesses; Playwright drives Debian's Chromium with the mouse on a desktop-sized page and
with touch events on a phone-sized one. Screenshots of every page go to test-artifacts/.
"""

from __future__ import annotations

import csv
import io
import itertools
import os
import re
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from support import CHROMIUM_ARGS, REPO_ROOT

from digits.api.testing import DIGITS, free_port
from digits.config import SHIPPED_WEIGHTS

pytestmark = pytest.mark.browser

ARTIFACTS = REPO_ROOT / "test-artifacts"
STARTUP_S = 90
ANSWER_TIMEOUT_MS = 30_000

# Strokes in canvas pixels (280x280): a "1" as one vertical line with a short flag, and a "7".
ONE = [[(150, 45), (128, 70)], [(150, 45), (150, 235)]]
SEVEN = [[(70, 60), (210, 60), (125, 235)]]
STRAY = [(40, 262), (240, 262)]
# An "H", three strokes: a letter nobody reads as a digit.
LETTER_H = [[(80, 50), (80, 230)], [(200, 50), (200, 230)], [(80, 140), (200, 140)]]


@dataclass(frozen=True)
class Stack:
    api_url: str
    ui_url: str
    database: Path
    shipped_weights: bool


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{url} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    pytest.fail(f"{url} did not come up in {STARTUP_S} s:\n{log.read_text()[-3000:]}")


def _random_checkpoint(path: Path) -> None:
    """Weights for when the shipped ones are not there yet: the flow is tested, not accuracy.
    They have the not-a-digit class, which a threshold of 0 then answers for every drawing."""
    import torch

    from digits import checkpoint
    from digits.model import NUM_CLASSES, DigitNet

    torch.manual_seed(0)
    args = {"num_classes": NUM_CLASSES}
    checkpoint.save(checkpoint.from_model(DigitNet(**args), args), path)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, chromium_path: str) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("e2e")
    database = work / "e2e.sqlite3"
    env = {
        **os.environ,
        "DIGITS_ENV": "test",
        "DIGITS_DATA_DIR": str(work),
        "DIGITS_DATABASE_URL": f"sqlite:///{database}",
        "DIGITS_LOG_JSON": "false",
    }
    # A trained checkpoint (the shipped one, or DIGITS_TEST_MODEL_PATH) must also read the
    # drawn digits right; random weights only prove the flow.
    trained = os.environ.get("DIGITS_TEST_MODEL_PATH")
    shipped = bool(trained) or SHIPPED_WEIGHTS.exists()
    if trained:
        env["DIGITS_MODEL_PATH"] = trained
    elif not shipped:
        _random_checkpoint(work / "random.pt")
        env["DIGITS_MODEL_PATH"] = str(work / "random.pt")
        env["DIGITS_NOT_A_DIGIT_THRESHOLD"] = "0"
    api_port, ui_port = free_port(), free_port()
    api_url, ui_url = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{ui_port}"
    env["DIGITS_API_URL"] = api_url

    processes: list[subprocess.Popen[bytes]] = []
    try:
        for name, args, health in [
            ("api", ["serve", "--host", "127.0.0.1", "--port", str(api_port)], f"{api_url}/readyz"),
            ("ui", ["ui", "--port", str(ui_port)], f"{ui_url}/_stcore/health"),
        ]:
            log = work / f"{name}.log"
            with log.open("wb") as out:
                process = subprocess.Popen(
                    [str(DIGITS), *args], env=env, stdout=out, stderr=subprocess.STDOUT
                )
            processes.append(process)
            _wait_until_up(health, process, log)
        yield Stack(api_url, ui_url, database, shipped)
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _shot(page: Page, name: str) -> None:
    """The whole page: Streamlit scrolls inside its own container, so grow the viewport."""
    ARTIFACTS.mkdir(exist_ok=True)
    size = page.viewport_size
    assert size is not None
    height = page.evaluate(
        "Math.max(...[...document.querySelectorAll('[data-testid=stMain], section')]"
        ".map(e => e.scrollHeight), document.body.scrollHeight)"
    )
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], int(height))})
    page.wait_for_timeout(500)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
    page.set_viewport_size(size)


def _canvas_origin(page: Page) -> tuple[float, float]:
    canvas = page.locator("canvas.upper-canvas")
    canvas.wait_for(timeout=ANSWER_TIMEOUT_MS)
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    assert box is not None and round(box["width"]) == round(box["height"]) == 280
    return box["x"], box["y"]


def _ink_at(page: Page, x: int, y: int) -> bool:
    """Whether the drawing layer is dark at canvas pixel (x, y) (it lives in a shadow root)."""
    red = page.locator("canvas.dc-canvas.lower-canvas").evaluate(
        "(canvas, [x, y]) => canvas.getContext('2d').getImageData(x, y, 1, 1).data[0]", [x, y]
    )
    return int(red) < 100


def _path(points: list[tuple[int, int]], steps: int = 8) -> list[tuple[float, float]]:
    """The polyline through `points`, as evenly spaced intermediate points."""
    out: list[tuple[float, float]] = [points[0]]
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        out += [
            (x0 + (x1 - x0) * i / steps, y0 + (y1 - y0) * i / steps) for i in range(1, steps + 1)
        ]
    return out


def _draw_with_mouse(page: Page, strokes: list[list[tuple[int, int]]]) -> None:
    x0, y0 = _canvas_origin(page)
    mouse = page.mouse
    for stroke in strokes:
        points = _path(stroke)
        mouse.move(x0 + points[0][0], y0 + points[0][1])
        mouse.down()
        for x, y in points[1:]:
            mouse.move(x0 + x, y0 + y, steps=2)
        mouse.up()
        page.wait_for_timeout(300)


def _draw_with_touch(page: Page, strokes: list[list[tuple[int, int]]]) -> None:
    x0, y0 = _canvas_origin(page)
    cdp = page.context.new_cdp_session(page)
    for stroke in strokes:
        points = _path(stroke)
        for kind, chunk in (
            ("touchStart", points[:1]),
            ("touchMove", points[1:]),
        ):
            for x, y in chunk:
                cdp.send(
                    "Input.dispatchTouchEvent",
                    {"type": kind, "touchPoints": [{"x": x0 + x, "y": y0 + y}]},
                )
        cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
        page.wait_for_timeout(300)
    cdp.detach()


def _draw_label_and_check(
    page: Page,
    stack: Stack,
    *,
    digit: int,
    strokes: list[list[tuple[int, int]]],
    touch: bool,
    name: str,
) -> None:
    page.goto(stack.ui_url, wait_until="domcontentloaded")
    _canvas_origin(page)
    _shot(page, f"{name}-draw-empty")
    feedback = page.get_by_text("Was it right?")
    if touch:
        _draw_with_touch(page, strokes)
    else:
        # A stray stroke, answered, then taken back with Undo: the answer is for the digit.
        _draw_with_mouse(page, [*strokes, STRAY])
        feedback.wait_for(timeout=ANSWER_TIMEOUT_MS)
        assert _ink_at(page, *STRAY[1])
        page.get_by_role("button", name="Undo stroke").click()
        deadline = time.monotonic() + ANSWER_TIMEOUT_MS / 1000
        while _ink_at(page, *STRAY[1]) and time.monotonic() < deadline:
            page.wait_for_timeout(200)
        assert not _ink_at(page, *STRAY[1]), "Undo did not take the last stroke away"
        assert _ink_at(page, *strokes[-1][-1]), "Undo took more than the last stroke"
    feedback.wait_for(timeout=ANSWER_TIMEOUT_MS)
    page.wait_for_timeout(1000)
    _shot(page, f"{name}-draw-answer")
    answered = page.get_by_role("img", name=f"Predicted digit {digit}")
    if stack.shipped_weights:
        assert answered.count() == 1, "the shipped model should read this clear digit"

    # The true digit, from the "No, the right digit is" / "Or pick the digit you drew" row.
    picker = page.get_by_role("radiogroup").last
    picker.get_by_role("radio", name=str(digit), exact=True).click()
    saved = page.get_by_text(f"Saved: a {digit}")
    saved.wait_for(timeout=ANSWER_TIMEOUT_MS)
    page.get_by_text("Your answer appears here.").wait_for()
    _shot(page, f"{name}-draw-saved")

    with sqlite3.connect(stack.database) as db:
        rows = db.execute(
            "SELECT digit, true_label, source, drawing_id, labelled_at FROM predictions "
            "WHERE true_label = ? ORDER BY created_at DESC",
            (digit,),
        ).fetchall()
    assert len(rows) == 1, rows  # one drawing, however many strokes, is one stored prediction
    predicted, true_label, source, drawing_id, labelled_at = rows[0]
    assert (true_label, source) == (digit, "canvas")
    assert drawing_id and labelled_at
    if stack.shipped_weights:
        assert predicted == digit

    page.goto(f"{stack.ui_url}/history", wait_until="domcontentloaded")
    page.get_by_text("Correct a label").wait_for(timeout=ANSWER_TIMEOUT_MS)
    # The newest prediction is preselected for correction, and it carries the label just given.
    chosen = page.get_by_role("combobox", name="Prediction (or click a row in the table)")
    expect(chosen).to_have_value(
        re.compile(f"read as {predicted}, labelled {digit}$"), timeout=ANSWER_TIMEOUT_MS
    )
    page.wait_for_timeout(1500)
    _shot(page, f"{name}-history")
    with page.expect_download(timeout=ANSWER_TIMEOUT_MS) as download:
        page.get_by_role("button", name="Export CSV").click()
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert [r["true_label"] for r in rows if r["drawing_id"]].count(str(digit)) == 1

    page.goto(f"{stack.ui_url}/statistics", wait_until="domcontentloaded")
    page.get_by_text("Accuracy from corrections").wait_for(timeout=ANSWER_TIMEOUT_MS)
    page.wait_for_timeout(2500)
    _shot(page, f"{name}-statistics")


def _run(page: Page, stack: Stack, *, name: str, **flow: Any) -> None:
    try:
        _draw_label_and_check(page, stack, name=name, **flow)
    except BaseException:
        _shot(page, f"{name}-failure")
        raise


def _digit_photo() -> bytes:
    """A dark "4" on light grey paper, as a JPEG: what a phone photo of a digit looks like."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (200, 240), (228, 226, 220))
    pen = ImageDraw.Draw(image)
    for line in [(130, 30, 130, 210), (130, 30, 50, 150), (50, 150, 170, 150)]:
        pen.line(line, fill=(30, 30, 40), width=16)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return out.getvalue()


def test_upload_a_photo_and_correct_it(browser: Browser, stack: Stack) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        page.goto(stack.ui_url, wait_until="domcontentloaded")
        page.get_by_role("tab", name="Upload an image").click()
        page.locator("input[type=file]").set_input_files(
            files=[{"name": "four.jpg", "mimeType": "image/jpeg", "buffer": _digit_photo()}]
        )
        page.get_by_text("Was it right?").wait_for(timeout=ANSWER_TIMEOUT_MS)
        page.wait_for_timeout(1000)
        _shot(page, "upload-answer")
        page.get_by_role("radiogroup").last.get_by_role("radio", name="4", exact=True).click()
        page.get_by_text("Saved: a 4").wait_for(timeout=ANSWER_TIMEOUT_MS)
        with sqlite3.connect(stack.database) as db:
            rows = db.execute(
                "SELECT source, drawing_id FROM predictions WHERE true_label = 4"
            ).fetchall()
        assert rows == [("upload", None)]
    except BaseException:
        _shot(page, "upload-failure")
        raise
    finally:
        context.close()


def test_desktop_mouse_draw_correct_and_find_it(browser: Browser, stack: Stack) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        _run(context.new_page(), stack, digit=1, strokes=ONE, touch=False, name="desktop")
    finally:
        context.close()


def test_phone_touch_draw_correct_and_find_it(browser: Browser, stack: Stack) -> None:
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True
    )
    try:
        _run(context.new_page(), stack, digit=7, strokes=SEVEN, touch=True, name="phone")
    finally:
        context.close()


def test_a_drawn_letter_is_not_a_digit(browser: Browser, stack: Stack) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        page.goto(stack.ui_url, wait_until="domcontentloaded")
        _canvas_origin(page)
        _draw_with_mouse(page, LETTER_H)
        page.get_by_text("This does not look like a digit.").wait_for(timeout=ANSWER_TIMEOUT_MS)
        expect(page.get_by_text("the best guess is")).to_be_visible()
        page.wait_for_timeout(1000)
        _shot(page, "letter-answer")
        page.get_by_role("button", name="Not a digit").click()
        page.get_by_text("Saved: not a digit").wait_for(timeout=ANSWER_TIMEOUT_MS)
        with sqlite3.connect(stack.database) as db:
            rows = db.execute(
                "SELECT status, true_label, source FROM predictions WHERE not_a_digit"
            ).fetchall()
        assert rows == [("not_a_digit", None, "canvas")]
    except BaseException:
        _shot(page, "letter-failure")
        raise
    finally:
        context.close()

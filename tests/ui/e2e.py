"""The running stack for the real-browser tests, and how they look at and draw on its pages.

The real API (`digits serve`, temporary SQLite, the shipped weights) and the real UI
(`digits ui`) run as subprocesses; Playwright drives Debian's Chromium. Screenshots go to
test-artifacts/.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page
from support import REPO_ROOT

from digits.api.testing import DIGITS, free_port
from digits.config import CANVAS_SIZE, SHIPPED_WEIGHTS
from digits.ui.views import number

ARTIFACTS = REPO_ROOT / "test-artifacts"
STARTUP_S = 90
ANSWER_TIMEOUT_MS = 30_000


@dataclass(frozen=True)
class Stack:
    api_url: str
    ui_url: str
    database: Path

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.database}"


def model_setting() -> dict[str, str]:
    """DIGITS_TEST_MODEL_PATH pins the served model; else the app serves its registry, which
    starts from the shipped weights. The tests assert what a trained model reads, so a missing
    one fails them instead of weakening them."""
    pinned = os.environ.get("DIGITS_TEST_MODEL_PATH")
    path = Path(pinned) if pinned else SHIPPED_WEIGHTS
    if not path.is_file():
        pytest.fail(f"no trained model for the browser tests at {path}", pytrace=False)
    return {"DIGITS_MODEL_PATH": pinned} if pinned else {}


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


@contextmanager
def running_stack(work: Path) -> Iterator[Stack]:
    database = work / "e2e.sqlite3"
    env = {
        **os.environ,
        "DIGITS_ENV": "test",
        "DIGITS_DATA_DIR": str(work),
        "DIGITS_DATABASE_URL": f"sqlite:///{database}",
        "DIGITS_LOG_JSON": "false",
        **model_setting(),
    }
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
        yield Stack(api_url, ui_url, database)
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def shot(page: Page, name: str) -> None:
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


# (width, height) in CSS pixels: the digit canvas, and the Number mode's.
DIGIT_CANVAS = (CANVAS_SIZE, CANVAS_SIZE)
NUMBER_CANVAS = (number.WIDTH, number.HEIGHT)


@contextmanager
def browsing(browser: Browser, name: str, **context: Any) -> Iterator[Page]:
    """A page in a new browser context (``context``: Playwright's options); a screenshot
    named ``name``-failure if the block fails."""
    opened = browser.new_context(**context)
    page = opened.new_page()
    try:
        yield page
    except BaseException:
        shot(page, f"{name}-failure")
        raise
    finally:
        opened.close()


def canvas_origin(page: Page, size: tuple[int, int] = DIGIT_CANVAS) -> tuple[float, float]:
    """The top left of the page's one drawing canvas, which must be ``size`` on the page."""
    canvas = page.locator("canvas.upper-canvas")
    canvas.wait_for(timeout=ANSWER_TIMEOUT_MS)
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    assert box is not None and (round(box["width"]), round(box["height"])) == size, box
    return box["x"], box["y"]


def ink_at(page: Page, x: int, y: int) -> bool:
    """Whether the drawing layer is dark at canvas pixel (x, y) (it lives in a shadow root)."""
    red = page.locator("canvas.dc-canvas.lower-canvas").evaluate(
        "(canvas, [x, y]) => canvas.getContext('2d').getImageData(x, y, 1, 1).data[0]", [x, y]
    )
    return int(red) < 100


def polyline(points: list[tuple[int, int]], steps: int = 8) -> list[tuple[float, float]]:
    """The polyline through `points`, as evenly spaced intermediate points."""
    out: list[tuple[float, float]] = [points[0]]
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        out += [
            (x0 + (x1 - x0) * i / steps, y0 + (y1 - y0) * i / steps) for i in range(1, steps + 1)
        ]
    return out


def draw_with_mouse(
    page: Page, strokes: list[list[tuple[int, int]]], size: tuple[int, int] = DIGIT_CANVAS
) -> None:
    x0, y0 = canvas_origin(page, size)
    mouse = page.mouse
    for stroke in strokes:
        points = polyline(stroke)
        mouse.move(x0 + points[0][0], y0 + points[0][1])
        mouse.down()
        for x, y in points[1:]:
            mouse.move(x0 + x, y0 + y, steps=2)
        mouse.up()
        page.wait_for_timeout(300)


def draw_with_touch(page: Page, strokes: list[list[tuple[int, int]]]) -> None:
    x0, y0 = canvas_origin(page)
    cdp = page.context.new_cdp_session(page)
    for stroke in strokes:
        points = polyline(stroke)
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

"""Regenerate drawings/canvas_7.png: a "7" drawn on a 280x280 canvas and encoded by Chromium.

This is the PNG the web UI sends: streamlit-drawable-canvas hands over the canvas's
``toDataURL("image/png")``, which Chromium encodes itself (8-bit RGBA, every row "Up"
filtered, its own zlib settings). The stroke follows a mouse drag: a point every few pixels,
the UI's default brush of 20 px, round caps and joins, black ink on a transparent canvas.

    .venv/bin/python benchmarks/make_canvas_drawing.py     # needs Playwright and /usr/bin/chromium
"""

from __future__ import annotations

import base64
import itertools
import os
from pathlib import Path

from playwright.sync_api import sync_playwright

OUT = Path(__file__).with_name("drawings") / "canvas_7.png"
CHROMIUM = os.environ.get("DIGITS_TEST_CHROMIUM", "/usr/bin/chromium")  # as the UI tests
CORNERS = [(70, 60), (210, 60), (120, 230)]
STEP = 4  # pixels between the pointer events of a drag
DRAW = """([points, width]) => {
  const canvas = document.getElementById("c");
  const pen = canvas.getContext("2d");
  pen.lineWidth = width; pen.lineCap = "round"; pen.lineJoin = "round"; pen.strokeStyle = "#000";
  pen.beginPath(); pen.moveTo(...points[0]);
  for (const point of points.slice(1)) pen.lineTo(...point);
  pen.stroke();
  return canvas.toDataURL("image/png");
}"""


def drag(corners: list[tuple[int, int]], step: int) -> list[tuple[float, float]]:
    points: list[tuple[float, float]] = [corners[0]]
    for (x0, y0), (x1, y1) in itertools.pairwise(corners):
        count = max(1, round(max(abs(x1 - x0), abs(y1 - y0)) / step))
        points += [
            (x0 + (x1 - x0) * k / count, y0 + (y1 - y0) * k / count) for k in range(1, count + 1)
        ]
    return points


def main() -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page()
        page.set_content('<canvas id="c" width="280" height="280"></canvas>')
        url = page.evaluate(DRAW, [drag(CORNERS, STEP), 20])
        browser.close()
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_bytes(base64.b64decode(url.split(",", 1)[1]))
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()

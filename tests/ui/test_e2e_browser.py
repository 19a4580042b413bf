"""End to end in a real Chromium: draw on the real canvas, get an answer, correct it, find it.

Playwright drives Chromium with the mouse on a desktop-sized page and with touch events on a
phone-sized one, against the running stack (e2e.py). Screenshots of every page go to
test-artifacts/.
"""

from __future__ import annotations

import csv
import io
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e import (
    ANSWER_TIMEOUT_MS,
    Stack,
    canvas_origin,
    draw_with_mouse,
    draw_with_touch,
    ink_at,
    shot,
)
from live_api import LETTER_H, SEVEN
from playwright.sync_api import Browser, Page, expect

from digits.ui import present
from digits.ui.views.stats import RECENT_LIMIT

pytestmark = pytest.mark.browser

# Strokes in canvas pixels (280x280): a "1" as one vertical line with a short flag.
ONE = [[(150, 45), (128, 70)], [(150, 45), (150, 235)]]
STRAY = [(40, 262), (240, 262)]


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
    canvas_origin(page)
    shot(page, f"{name}-draw-empty")
    feedback = page.get_by_text("Was it right?")
    if touch:
        draw_with_touch(page, strokes)
    else:
        # A stray stroke, answered, then taken back with Undo: the answer is for the digit.
        draw_with_mouse(page, [*strokes, STRAY])
        feedback.wait_for(timeout=ANSWER_TIMEOUT_MS)
        assert ink_at(page, *STRAY[1])
        page.get_by_role("button", name="Undo", exact=True).click()
        deadline = time.monotonic() + ANSWER_TIMEOUT_MS / 1000
        while ink_at(page, *STRAY[1]) and time.monotonic() < deadline:
            page.wait_for_timeout(200)
        assert not ink_at(page, *STRAY[1]), "Undo did not take the last stroke away"
        assert ink_at(page, *strokes[-1][-1]), "Undo took more than the last stroke"
    feedback.wait_for(timeout=ANSWER_TIMEOUT_MS)
    page.wait_for_timeout(1000)
    shot(page, f"{name}-draw-answer")
    answered = page.get_by_role("img", name=f"Predicted digit {digit}")
    assert answered.count() == 1, "the trained model should read this clear digit"
    # In view where the pen lifted, with no scrolling: on a phone too.
    box, view = answered.bounding_box(), page.viewport_size
    assert box is not None and view is not None
    assert box["y"] >= 0 and box["y"] + box["height"] <= view["height"], (box, view)
    expect(page.get_by_text(re.compile(r"^The model is .* it is an? \d "))).to_be_in_viewport()

    # The true digit, from the "No, the right digit is" / "Or pick the digit you drew" row.
    picker = page.get_by_role("radiogroup").last
    picker.get_by_role("radio", name=str(digit), exact=True).click()
    saved = page.get_by_text(f"Saved: a {digit}")
    saved.wait_for(timeout=ANSWER_TIMEOUT_MS)
    page.get_by_text("Your answer appears here.").wait_for()
    shot(page, f"{name}-draw-saved")

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
    assert predicted == digit

    page.goto(f"{stack.ui_url}/history", wait_until="domcontentloaded")
    page.get_by_text("Correct a label").wait_for(timeout=ANSWER_TIMEOUT_MS)
    # The newest prediction is preselected for correction, and it carries the label just given.
    chosen = page.get_by_role("combobox", name="Prediction (or click a row in the table)")
    expect(chosen).to_have_value(
        re.compile(f"read as {predicted}, labelled {digit}$"), timeout=ANSWER_TIMEOUT_MS
    )
    page.wait_for_timeout(1500)
    shot(page, f"{name}-history")
    with page.expect_download(timeout=ANSWER_TIMEOUT_MS) as download:
        page.get_by_role("button", name="Export CSV").click()
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert [r["true_label"] for r in rows if r["drawing_id"]].count(str(digit)) == 1

    page.goto(f"{stack.ui_url}/statistics", wait_until="domcontentloaded")
    page.get_by_text("Accuracy from corrections").wait_for(timeout=ANSWER_TIMEOUT_MS)
    page.wait_for_timeout(2500)
    shot(page, f"{name}-statistics")


def _run(page: Page, stack: Stack, *, name: str, **flow: Any) -> None:
    try:
        _draw_label_and_check(page, stack, name=name, **flow)
    except BaseException:
        shot(page, f"{name}-failure")
        raise


# A "4" and an "H" as pen lines (x0, y0, x1, y1) on a 200x240 photo.
FOUR_LINES = [(130, 30, 130, 210), (130, 30, 50, 150), (50, 150, 170, 150)]
H_LINES = [(50, 40, 50, 200), (150, 40, 150, 200), (50, 120, 150, 120)]


def _photo(lines: list[tuple[int, int, int, int]]) -> bytes:
    """Dark strokes on light grey paper, as a JPEG: what a phone photo of a digit looks like."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (200, 240), (228, 226, 220))
    pen = ImageDraw.Draw(image)
    for line in lines:
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
            files=[{"name": "four.jpg", "mimeType": "image/jpeg", "buffer": _photo(FOUR_LINES)}]
        )
        page.get_by_text("Was it right?").wait_for(timeout=ANSWER_TIMEOUT_MS)
        page.wait_for_timeout(1000)
        shot(page, "upload-answer")
        with sqlite3.connect(stack.database) as db:
            rows = db.execute(
                "SELECT id, digit, status FROM predictions WHERE source = 'upload'"
            ).fetchall()
        assert len(rows) == 1, rows
        prediction_id, predicted, status = rows[0]
        assert (predicted, status) == (4, "ok"), "the trained model should read this photo"
        # The answer the page shows is the one stored for this upload.
        expect(
            page.get_by_role("img", name=re.compile(r"^Predicted digit \d$"))
        ).to_have_accessible_name("Predicted digit 4")
        expect(page.get_by_text(re.compile(r"^The model is .* it is an? \d "))).to_contain_text(
            " it is a 4 ("
        )
        page.get_by_role("radiogroup").last.get_by_role("radio", name="4", exact=True).click()
        page.get_by_text("Saved: a 4, as the model read it").wait_for(timeout=ANSWER_TIMEOUT_MS)
        with sqlite3.connect(stack.database) as db:
            rows = db.execute(
                "SELECT id, source, drawing_id FROM predictions WHERE true_label = 4 "
                "AND source != 'api'"
            ).fetchall()
        assert rows == [(prediction_id, "upload", None)]
    except BaseException:
        shot(page, "upload-failure")
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


def test_each_browser_sees_its_own_drawings_and_keeps_them_over_a_reload(
    browser: Browser, stack: Stack
) -> None:
    """One API session per person and device: kept in a cookie, so a reload (or a phone waking
    a sleeping tab) resumes it, and another browser is somebody else."""
    first = browser.new_context(viewport={"width": 1280, "height": 900})
    second = browser.new_context(viewport={"width": 1280, "height": 900})
    page = first.new_page()
    try:
        page.goto(stack.ui_url, wait_until="domcontentloaded")
        draw_with_mouse(page, SEVEN)
        page.get_by_text("Was it right?").wait_for(timeout=ANSWER_TIMEOUT_MS)
        mine = page.get_by_text("Showing 1-1 of 1 predictions.")
        page.goto(f"{stack.ui_url}/history", wait_until="domcontentloaded")
        mine.wait_for(timeout=ANSWER_TIMEOUT_MS)
        page.reload(wait_until="domcontentloaded")
        mine.wait_for(timeout=ANSWER_TIMEOUT_MS)
        shot(page, "session-reloaded-history")

        other = second.new_page()
        other.goto(f"{stack.ui_url}/history", wait_until="domcontentloaded")
        other.get_by_text("No predictions match these filters yet.").wait_for(
            timeout=ANSWER_TIMEOUT_MS
        )
        shot(other, "session-other-browser-history")
        with sqlite3.connect(stack.database) as db:
            sessions = db.execute("SELECT COUNT(DISTINCT id) FROM sessions").fetchone()[0]
        assert sessions >= 2
    except BaseException:
        shot(page, "session-failure")
        raise
    finally:
        first.close()
        second.close()


def test_a_drawn_letter_is_not_a_digit(browser: Browser, stack: Stack) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        page.goto(stack.ui_url, wait_until="domcontentloaded")
        canvas_origin(page)
        draw_with_mouse(page, LETTER_H)
        page.get_by_text("This does not look like a digit.").wait_for(timeout=ANSWER_TIMEOUT_MS)
        expect(page.get_by_text("the best guess is")).to_be_visible()
        page.wait_for_timeout(1000)
        shot(page, "letter-answer")
        page.get_by_role("button", name="Not a digit").click()
        page.get_by_text("Saved: not a digit").wait_for(timeout=ANSWER_TIMEOUT_MS)
        with sqlite3.connect(stack.database) as db:
            rows = db.execute(
                "SELECT status, true_label, source FROM predictions "
                "WHERE not_a_digit AND source != 'api'"
            ).fetchall()
        assert rows == [("not_a_digit", None, "canvas")]
    except BaseException:
        shot(page, "letter-failure")
        raise
    finally:
        context.close()


def _metric(page: Page, label: str) -> tuple[str, str]:
    """The value an st.metric shows, and the text of its help tooltip."""
    metric = page.get_by_test_id("stMetric").filter(
        has=page.get_by_test_id("stMetricLabel").get_by_text(label, exact=True)
    )
    value = metric.get_by_test_id("stMetricValue").inner_text().strip()
    page.get_by_role("button", name=f"Help for {label}").hover()
    tooltip = page.get_by_test_id("stTooltipContent").filter(visible=True)
    tooltip.wait_for(timeout=ANSWER_TIMEOUT_MS)
    help_text = tooltip.inner_text().strip()
    page.mouse.move(0, 0)
    tooltip.wait_for(state="hidden", timeout=ANSWER_TIMEOUT_MS)
    return value, help_text


def test_statistics_page_shows_what_the_api_counts(browser: Browser, stack: Stack) -> None:
    """Predictions and labels sent through the API of the running stack, then the Statistics
    page in Chromium. Other tests in this module share the database, so what this one sent is
    checked as the change in GET /api/stats, and the page against GET /api/stats itself."""
    api = httpx.Client(base_url=stack.api_url, timeout=ANSWER_TIMEOUT_MS / 1000)
    session = api.post("/api/sessions").raise_for_status().json()
    api.headers["X-Session-Token"] = session["session_token"]
    before = api.get("/api/stats").raise_for_status().json()
    answers = []
    for name, image in [
        ("four.jpg", _photo(FOUR_LINES)),
        ("four.jpg", _photo(FOUR_LINES)),
        ("four.jpg", _photo(FOUR_LINES)),
        ("letter.jpg", _photo(H_LINES)),
    ]:
        response = api.post("/api/predictions", files={"image": (name, image, "image/jpeg")})
        answers.append(response.raise_for_status().json())
    assert [(a["digit"], a["status"]) for a in answers[:3]] == [(4, "ok")] * 3
    assert answers[3]["status"] == "not_a_digit"
    # Right, corrected to another digit, said not to be a digit; the letter stays unlabelled.
    labels: list[dict[str, Any]] = [{"true_label": 4}, {"true_label": 9}, {"not_a_digit": True}]
    for answer, label in zip(answers, labels, strict=False):
        api.patch(f"/api/predictions/{answer['id']}", json=label).raise_for_status()
    after = api.get("/api/stats").raise_for_status().json()
    api.close()

    read_as = [a["digit"] for a in answers]
    assert after["total"] == before["total"] + 4
    assert after["labelled"] == before["labelled"] + 2
    assert after["correct"] == before["correct"] + (read_as[0] == 4) + (read_as[1] == 9)
    assert after["accuracy"] == pytest.approx(after["correct"] / after["labelled"])
    assert after["not_a_digit_labels"] == before["not_a_digit_labels"] + 1
    for status in ("uncertain", "not_a_digit"):
        sent = sum(a["status"] == status for a in answers)
        assert after[status] == before[status] + sent, status
    confusion = [row[:] for row in before["confusion_matrix"]]
    confusion[4][read_as[0]] += 1
    confusion[9][read_as[1]] += 1
    assert after["confusion_matrix"] == confusion

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    # The browser resumes the API client's session (the UI keeps it in this cookie), so the
    # page's "your latest predictions" are the four sent above.
    context.add_cookies(
        [{"name": "digits_session", "value": session["session_token"], "url": stack.ui_url}]
    )
    page = context.new_page()
    try:
        page.goto(f"{stack.ui_url}/statistics", wait_until="domcontentloaded")
        page.get_by_text("Accuracy from corrections").wait_for(timeout=ANSWER_TIMEOUT_MS)
        page.wait_for_timeout(2500)
        shot(page, "statistics-counts")
        assert _metric(page, "Predictions") == (
            f"{after['total']:,}",
            f"{after['uncertain']:,} uncertain, {after['not_a_digit']:,} not a digit",
        )
        assert _metric(page, "Labelled by people") == (
            f"{after['labelled']:,}",
            f"Marked correct or corrected; {after['not_a_digit_labels']:,} more said not a digit",
        )
        accuracy, _ = _metric(page, "Accuracy")
        assert accuracy == present.percent(after["accuracy"])
        mean_confidence = page.get_by_test_id("stMetric").filter(has_text="Mean confidence")
        expect(mean_confidence.get_by_test_id("stMetricValue")).to_have_text(
            present.percent(after["mean_confidence"])
        )
        per_digit = ", ".join(
            f"{d}: {present.percent(a)}"
            for d, a in sorted(after["per_digit_accuracy"].items())
            if a is not None
        )
        chart = f'[role="graphics-document"][aria-label="Accuracy per true digit: {per_digit}"]'
        expect(page.locator(chart)).to_have_count(1)
        # Each filled cell of the confusion matrix, as the chart labels it for screen readers.
        for true, row in enumerate(after["confusion_matrix"]):
            for predicted, count in enumerate(row):
                if count:
                    cell = f"Model's answer: {predicted}; True digit: {true}; Count: {count};"
                    expect(page.locator(f'[aria-label^="{cell}"]')).to_have_count(1)
        shown = min(len(answers), RECENT_LIMIT)
        expect(page.get_by_text(f"Confidence of your latest predictions ({shown})")).to_be_visible()
    except BaseException:
        shot(page, "statistics-failure")
        raise
    finally:
        context.close()

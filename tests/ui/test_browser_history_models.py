"""History (filter, page, label) and the Models page in a real Chromium, against the running
stack (e2e.py). Each page is opened by its own address first, as a bookmark would open it."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from e2e import ANSWER_TIMEOUT_MS, Stack, shot
from live_api import LiveApi, promote_a_retraining, start_clock
from playwright.sync_api import Browser, Page, expect

from digits import checkpoint as ckpt
from digits.config import SHIPPED_WEIGHTS
from digits.db.session import Database
from digits.loop.registry import Registry

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def session(stack: Stack) -> dict[str, str]:
    """One person's API session: the rows below are theirs, and the browser resumes it."""
    return dict(httpx.post(f"{stack.api_url}/api/sessions", timeout=30).raise_for_status().json())


@pytest.fixture(scope="module")
def rows(stack: Stack, session: dict[str, str]) -> Iterator[LiveApi]:
    """Writes rows straight into the stack's database (the API reads them from there)."""
    database = Database(stack.database_url)
    owner = uuid.UUID(session["session_id"])
    yield LiveApi(None, None, None, database, start_clock(), owner)  # type: ignore[arg-type]
    database.dispose()


@pytest.fixture
def page(browser: Browser, stack: Stack, session: dict[str, str]) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    # The cookie the UI keeps its session in: this browser is the person the rows belong to.
    context.add_cookies(
        [{"name": "digits_session", "value": session["session_token"], "url": stack.ui_url}]
    )
    page = context.new_page()
    yield page
    context.close()


def caption(page: Page, text: str) -> None:
    expect(page.get_by_text(text, exact=True)).to_be_visible(timeout=ANSWER_TIMEOUT_MS)


def choose(page: Page, box: str, option: str) -> None:
    """Pick in a selectbox as a person types into it: its list shows a few options at a time."""
    combobox = page.get_by_role("combobox", name=box)
    combobox.click()
    combobox.press_sequentially(option)
    page.get_by_role("option", name=option, exact=True).click()


def table_text(page: Page, index: int) -> list[str]:
    """The header and cell texts of the index-th table's rendered rows (its accessible copy)."""
    cells = page.get_by_test_id("stDataFrame").nth(index).locator("th, td")
    expect(cells).not_to_have_count(0, timeout=ANSWER_TIMEOUT_MS)
    return [(c or "").strip() for c in cells.all_text_contents()]


def predicted_column(page: Page, rows: int) -> list[str]:
    """The Predicted cells of the table's accessible copy, once it has ``rows`` rows."""
    table = page.get_by_test_id("stDataFrame")
    expect(table.locator("tbody tr")).to_have_count(rows, timeout=ANSWER_TIMEOUT_MS)
    cells = table.locator('tbody td[aria-colindex="2"]')
    return [(c or "").strip() for c in cells.all_text_contents()]


def test_history_filters_pages_and_labels(page: Page, stack: Stack, rows: LiveApi) -> None:
    served = ckpt.read(SHIPPED_WEIGHTS).version
    # Read as 0, 1, 2, 0, ... a minute apart.
    ids = [rows.add(i % 3, model_version=served) for i in range(25)]
    try:
        page.goto(f"{stack.ui_url}/history", wait_until="domcontentloaded")
        caption(page, "Showing 1-20 of 25 predictions.")
        shot(page, "history-all")

        page.get_by_role("button", name="Page 2").click()
        caption(page, "Showing 21-25 of 25 predictions.")
        expect(page.get_by_test_id("stDataFrame").locator("tbody tr")).to_have_count(5)

        choose(page, "Predicted digit", "1")  # back to page 1, eight drawings read as 1
        caption(page, "Showing 1-8 of 8 predictions.")
        assert predicted_column(page, 8) == ["1"] * 8
        shot(page, "history-digit-1")

        # The newest drawing read as 1 is chosen for correction: it was a 7.
        newest_one = ids[22]
        chosen = page.get_by_role("combobox", name="Prediction (or click a row in the table)")
        expect(chosen).to_have_value(re.compile(r"read as 1, no label$"))
        choose(page, "True digit", "7")
        page.get_by_role("button", name="Save label").click()
        caption(page, "Saved: that drawing is a 7; the model was wrong (it read 1).")
        assert (newest_one, 7, False) in rows.labels()

        choose(page, "Show", "Wrong only")
        caption(page, "Showing 1-1 of 1 predictions.")
        assert predicted_column(page, 1) == ["1"]
        shot(page, "history-wrong-only")
    except BaseException:
        shot(page, "history-failure")
        raise


def test_models_page_shows_a_promotion_and_accuracy_over_time(
    page: Page, stack: Stack, rows: LiveApi, tmp_path_factory: pytest.TempPathFactory
) -> None:
    shipped = ckpt.load(SHIPPED_WEIGHTS)
    start = start_clock()
    registry = Registry(rows.database)
    folder = tmp_path_factory.mktemp("child")
    child = promote_a_retraining(registry, shipped, folder, at=start + timedelta(hours=2))
    for hour, (version, right) in enumerate([(shipped.version, 4), (shipped.version, 5)]):
        rows.clock = start + timedelta(hours=hour)
        for i in range(10):
            rows.add(3, true_label=3 if i < right else 5, model_version=version, minutes=5)
    rows.clock = start + timedelta(hours=2)
    for i in range(10):
        rows.add(3, true_label=3 if i < 9 else 5, model_version=child, minutes=5)
    try:
        page.goto(f"{stack.ui_url}/models", wait_until="domcontentloaded")
        active = page.get_by_test_id("stMetric").filter(has_text="Active model")
        # The API follows the registry's promotion within seconds; reload until it serves it.
        for _ in range(20):
            if active.get_by_test_id("stMetricValue").inner_text().strip() == child:
                break
            page.wait_for_timeout(1000)
            page.reload(wait_until="domcontentloaded")
            active.wait_for(timeout=ANSWER_TIMEOUT_MS)
        expect(active.get_by_test_id("stMetricValue")).to_have_text(child)
        origin = page.get_by_test_id("stMetric").filter(has_text="Origin")
        expect(origin.get_by_test_id("stMetricValue")).to_have_text("retrain")
        chart = page.locator(
            '[role="graphics-document"][aria-label="Accuracy per model version over time, '
            'with promotions and rollbacks marked"]'
        )
        expect(chart).to_have_count(1)
        versions, activations = (table_text(page, i) for i in range(2))
        assert {child, shipped.version, "Sessions, out of fold", "4 / 40"} <= set(versions)
        assert "promote" in activations
        page.wait_for_timeout(1500)
        shot(page, "models")
    except BaseException:
        shot(page, "models-failure")
        raise

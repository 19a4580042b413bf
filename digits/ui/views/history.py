"""Every stored prediction, newest first: filter, page through, correct a label, export CSV."""

from __future__ import annotations

import base64
import hashlib
import math
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd
import streamlit as st

from digits.schemas import (
    NUM_DIGITS,
    HistoryFilter,
    NumberFilter,
    NumberRecord,
    Outcome,
    PredictionRecord,
    Status,
)
from digits.ui import present
from digits.ui.client import ApiClient, ApiError
from digits.ui.session import flash, get_client, operator_view, show_error, show_flash

PAGE_SIZES = (10, 20, 50)
EXPORT_BATCH = 100
EXPORT_MAX_ROWS = 50_000
NUMBERS_SHOWN = 20
# Each choice: (outcome, the user's "not a digit" label).
SHOW_OPTIONS: dict[str, tuple[Outcome | None, bool | None]] = {
    "All predictions": (None, None),
    "Wrong only": ("wrong", None),
    "Unlabelled only": ("unlabelled", None),
    "Correct only": ("correct", None),
    "Labelled not a digit": (None, True),
}
ANSWER_OPTIONS: dict[str, Status | None] = {
    "Any": None,
    "ok": "ok",
    "uncertain": "uncertain",
    "not a digit": "not_a_digit",
}
PAGE_KEY = "history_page"
FIX_KEY = "history_fix_id"
NOT_A_DIGIT_OPTION = NUM_DIGITS  # after the ten digits in the label choice


def render() -> None:
    st.title("History")
    show_flash()
    _operator_view()
    client = get_client()
    _predictions(client)
    _numbers(client)


def _predictions(client: ApiClient) -> None:
    filters, size = _filters()
    page_no = max(1, int(st.session_state.get(PAGE_KEY, 1)))
    try:
        page = client.list_predictions(
            filters.model_copy(update={"limit": size, "offset": (page_no - 1) * size})
        )
    except ApiError as err:
        show_error(f"The history could not be loaded. {err}")
        return
    pages = max(1, math.ceil(page.total / size))
    if page_no > pages:
        # Fewer rows than before (new filter, or rows removed): go to the last page there is.
        st.session_state[PAGE_KEY] = pages
        st.rerun()
    if page.total == 0:
        st.info(
            "No predictions match these filters yet. Draw a digit on the Draw page, "
            "or change the filters.",
            icon=":material/search_off:",
        )
        _export_button(client, filters)  # the numbers' digits may still be there
        return

    view = f"{page_no}_{filters}_{size}"
    first = (page_no - 1) * size + 1
    st.caption(f"Showing {first}-{first + len(page.items) - 1} of {page.total} predictions.")
    zone = present.local_zone(st.context.timezone)
    table = st.dataframe(
        _table(client, page.items, zone),
        hide_index=True,
        on_select="rerun",
        selection_mode="single-row",
        key=f"history_table_{view}",
        column_config=_columns(zone.key),
        row_height=56,
    )
    st.pagination(pages, key=PAGE_KEY)
    _correction(page.items, list(table.selection.rows), zone)
    _export_button(client, filters)


def _export_button(client: ApiClient, filters: HistoryFilter) -> None:
    st.download_button(
        "Export CSV",
        data=lambda: _export(client, filters),
        file_name="digits-history.csv",
        mime="text/csv",
        icon=":material/download:",
        on_click="ignore",
        help="All predictions matching the filters, not only this page, then every number's digits",
    )


def _operator_view() -> None:
    """This device's drawings, or with the admin token every session's: the operator's view."""
    if operator_view("shows and corrects every session's drawings"):
        st.info("Operator view: every session's drawings.", icon=":material/visibility:")


def _to_first_page() -> None:
    st.session_state[PAGE_KEY] = 1


def _filters() -> tuple[HistoryFilter, int]:
    digit_col, answer_col, show_col, size_col = st.columns(4)
    digit = digit_col.selectbox(
        "Predicted digit",
        [None, *range(10)],
        format_func=lambda d: "Any" if d is None else str(d),
        key="history_digit",
        on_change=_to_first_page,
    )
    answer = answer_col.selectbox(
        "Answer", list(ANSWER_OPTIONS), key="history_status", on_change=_to_first_page
    )
    show = show_col.selectbox(
        "Show", list(SHOW_OPTIONS), key="history_show", on_change=_to_first_page
    )
    size = size_col.selectbox(
        "Rows per page", PAGE_SIZES, index=1, key="history_size", on_change=_to_first_page
    )
    outcome, not_a_digit = SHOW_OPTIONS[show]
    chosen = HistoryFilter(
        digit=digit, outcome=outcome, not_a_digit=not_a_digit, status=ANSWER_OPTIONS[answer]
    )
    return chosen, int(size)


@st.cache_data(show_spinner=False, max_entries=1000)
def _thumbnail(
    _client: ApiClient, record_id: str, created_at: str, *, number: bool = False
) -> str | None:
    # Keyed by time too: an unlabelled drawing predicted again keeps its id, not its image.
    try:
        png = _client.number_png(record_id) if number else _client.image_png(record_id)
    except ApiError:
        return None
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _table(
    client: ApiClient, items: Sequence[PredictionRecord], zone: present.ZoneInfo
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "Drawing": [_thumbnail(client, str(r.id), r.created_at.isoformat()) for r in items],
            "Predicted": [r.digit for r in items],
            "Answer": [present.status_words(r.status) for r in items],
            "True label": [present.label_words(r) for r in items],
            "Outcome": [present.outcome_words(r) for r in items],
            "Learned": [present.learned_from_words(r) for r in items],
            "Confidence": [r.confidence for r in items],
            "Time": [present.local_time(r.created_at, zone) for r in items],
            "Model": [r.model_version for r in items],
            "Source": [r.source for r in items],
        }
    )


def _columns(zone_name: str) -> dict[str, Any]:
    return {
        "Drawing": st.column_config.ImageColumn("Drawing", width="small"),
        "Predicted": st.column_config.NumberColumn("Predicted", format="%d", width="small"),
        "True label": st.column_config.TextColumn("True label", width="small"),
        "Confidence": st.column_config.ProgressColumn(
            "Confidence", min_value=0.0, max_value=1.0, format="percent"
        ),
        "Time": st.column_config.TextColumn(f"Time ({zone_name})"),
        "Learned": st.column_config.TextColumn(
            "Learned",
            help="Answers your earlier labelled drawings changed, and which of them (ids)",
        ),
    }


def _correction(
    items: Sequence[PredictionRecord], selected_rows: list[int], zone: present.ZoneInfo
) -> None:
    st.subheader("Correct a label")
    by_id = {str(r.id): r for r in items}
    # A new widget for each set of rows shown: one kept across them showed, in the browser, a
    # choice from rows no longer there.
    fix_key = f"{FIX_KEY}_{_digest(by_id)}"
    # A row clicked in the table chooses the prediction below (before that widget exists).
    if selected_rows and selected_rows[0] < len(items):
        picked = str(items[selected_rows[0]].id)
        if st.session_state.get("history_last_pick") != picked:
            st.session_state["history_last_pick"] = picked
            st.session_state[fix_key] = picked
    choice_col, label_col, save_col = st.columns([3, 2, 1], vertical_alignment="bottom")
    chosen = choice_col.selectbox(
        "Prediction (or click a row in the table)",
        list(by_id),
        key=fix_key,
        format_func=lambda i: _describe(by_id[i], zone),
    )
    record = by_id[chosen]
    current = NOT_A_DIGIT_OPTION if record.not_a_digit else record.true_label
    label = label_col.selectbox(
        "True digit",
        range(NOT_A_DIGIT_OPTION + 1),
        index=record.digit if current is None else current,
        format_func=lambda d: "Not a digit" if d == NOT_A_DIGIT_OPTION else str(d),
        key=f"history_label_{chosen}",
    )
    save_col.button(
        "Save label",
        key="history_save",
        type="primary",
        on_click=_save,
        args=(record.id, None if label == NOT_A_DIGIT_OPTION else int(label), record.digit),
    )
    error = st.session_state.pop("history_error", None)
    if error:
        show_error(error)


def _digest(ids: Iterable[str]) -> str:
    return hashlib.sha256("".join(ids).encode()).hexdigest()[:16]


def _describe(record: PredictionRecord, zone: present.ZoneInfo) -> str:
    label = present.label_words(record)
    label = f"labelled {label}" if label else "no label"
    return f"{present.local_time(record.created_at, zone)}: read as {record.digit}, {label}"


def _save(prediction_id: uuid.UUID, true_label: int | None, predicted: int) -> None:
    try:
        get_client().label(prediction_id, true_label)
    except ApiError as err:
        st.session_state["history_error"] = f"The label was not saved. {err}"
        return
    if true_label is None:
        flash(f"Saved: that drawing is not a digit (the model read {predicted}).")
        return
    verdict = "correct" if true_label == predicted else f"wrong (it read {predicted})"
    flash(f"Saved: that drawing is {present.a_digit(true_label)}; the model was {verdict}.")


def _export(client: ApiClient, filters: HistoryFilter) -> str:
    """All matching rows as CSV, fetched in batches when the button is clicked."""
    records: list[PredictionRecord] = []
    while len(records) < EXPORT_MAX_ROWS:
        batch = client.list_predictions(
            filters.model_copy(update={"limit": EXPORT_BATCH, "offset": len(records)})
        )
        records.extend(batch.items)
        if not batch.items or len(records) >= batch.total:
            break
    numbers: list[NumberRecord] = []
    while len(records) + len(numbers) < EXPORT_MAX_ROWS:
        page = client.list_numbers(NumberFilter(limit=EXPORT_BATCH, offset=len(numbers)))
        numbers.extend(page.items)
        if not page.items or len(numbers) >= page.total:
            break
    return present.records_csv(records, numbers)


def _numbers(client: ApiClient) -> None:
    """The latest whole numbers, beside the single digits above."""
    st.subheader("Numbers")
    try:
        page = client.list_numbers(NumberFilter(limit=NUMBERS_SHOWN))
    except ApiError as err:
        show_error(f"The numbers could not be loaded. {err}")
        return
    if not page.items:
        st.caption("No numbers yet: write one in the Draw page's Number mode.")
        return
    zone = present.local_zone(st.context.timezone)
    st.caption(f"The latest {len(page.items)} of {page.total} numbers.")
    st.dataframe(
        pd.DataFrame(
            {
                "Drawing": [
                    _thumbnail(client, str(n.id), n.created_at.isoformat(), number=True)
                    for n in page.items
                ],
                "Read": [n.number for n in page.items],
                "Answer": [present.number_status_words(n.status) for n in page.items],
                "True number": [
                    "not a number" if n.not_a_number else n.true_number or "" for n in page.items
                ],
                "Confidence": [n.confidence for n in page.items],
                "Time": [present.local_time(n.created_at, zone) for n in page.items],
            }
        ),
        hide_index=True,
        column_config={
            "Drawing": st.column_config.ImageColumn("Drawing", width="medium"),
            "Confidence": st.column_config.ProgressColumn(
                "Confidence", min_value=0.0, max_value=1.0, format="percent"
            ),
            "Time": st.column_config.TextColumn(f"Time ({zone.key})"),
        },
        row_height=56,
        key="history_numbers",
    )

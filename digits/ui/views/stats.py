"""How well the model does on what people draw here, from their corrections: charts first.
The totals are everyone's; the latest predictions are this device's session's own."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from digits.schemas import HistoryFilter, PredictionRecord, Stats
from digits.ui import charts, present
from digits.ui.client import ApiClient, ApiError
from digits.ui.session import get_client, show_error

RECENT_LIMIT = 1000
BATCH = 100


def render() -> None:
    st.title("Statistics")
    client = get_client()
    try:
        stats = client.stats()
        recent = _recent(client)
    except ApiError as err:
        show_error(f"The statistics could not be loaded. {err}")
        return
    if stats.total == 0:
        st.info(
            "No predictions yet: draw a few digits on the Draw page and come back.",
            icon=":material/bar_chart:",
        )
        return
    _headline(stats)
    _accuracy(stats)
    st.subheader("How sure the model is")
    hist_col, rel_col = st.columns(2, gap="large")
    with hist_col:
        st.markdown(f"**Confidence of your latest predictions** ({len(recent)})")
        st.altair_chart(
            charts.confidence_histogram([r.confidence for r in recent]),
            width="stretch",
            alt="Histogram of the confidence of your recent predictions",
        )
    with rel_col:
        st.markdown("**Reliability: stated confidence against accuracy**")
        if stats.labelled:
            st.altair_chart(
                charts.reliability(stats.reliability),
                width="stretch",
                alt="Reliability diagram: accuracy of labelled answers per confidence band",
            )
            st.caption("On the dashed diagonal, a 90% answer is right 9 times in 10.")
        else:
            st.caption("Appears once some predictions are labelled.")
    st.subheader("Your predictions over time")
    if not recent:
        st.caption("Appears once you have drawn on this device.")
        return
    span = max(r.created_at for r in recent) - min(r.created_at for r in recent)
    unit = "hours" if span.days < 3 else "days"
    st.altair_chart(
        charts.over_time([r.created_at for r in recent], unit=unit),
        width="stretch",
        alt=f"Bar chart of predictions per {unit[:-1]}",
    )
    st.caption(f"Your latest {len(recent)} predictions, per {unit[:-1]} (UTC).")


def _recent(client: ApiClient) -> list[PredictionRecord]:
    records: list[PredictionRecord] = []
    while len(records) < RECENT_LIMIT:
        page = client.list_predictions(HistoryFilter(limit=BATCH, offset=len(records)))
        records.extend(page.items)
        if not page.items or len(records) >= page.total:
            break
    return records


def _headline(stats: Stats) -> None:
    total_col, labelled_col, accuracy_col, confidence_col = st.columns(4)
    total_col.metric(
        "Predictions",
        f"{stats.total:,}",
        help=f"{stats.uncertain:,} uncertain, {stats.not_a_digit:,} not a digit",
    )
    labelled_col.metric(
        "Labelled by people",
        f"{stats.labelled:,}",
        help=f"Marked correct or corrected; {stats.not_a_digit_labels:,} more said not a digit",
    )
    accuracy_col.metric(
        "Accuracy",
        "-" if stats.accuracy is None else present.percent(stats.accuracy),
        help="Share of labelled predictions the model got right",
    )
    confidence_col.metric(
        "Mean confidence",
        "-" if stats.mean_confidence is None else present.percent(stats.mean_confidence),
    )
    if stats.numbers:
        numbers_col, number_accuracy_col, _, _ = st.columns(4)
        numbers_col.metric(
            "Numbers read",
            f"{stats.numbers:,}",
            help="Whole numbers written in the Draw page's Number mode (or sent to the API)",
        )
        number_accuracy_col.metric(
            "Whole-number accuracy",
            "-" if stats.number_accuracy is None else present.percent(stats.number_accuracy),
            help=f"Of the {stats.numbers_labelled:,} numbers whose true number people gave, "
            "the share read right in every digit",
        )


def _accuracy(stats: Stats) -> None:
    if not stats.labelled:
        st.info(
            "Accuracy needs labels: after each answer on the Draw page, say whether it was "
            "right. Corrections also appear in History.",
            icon=":material/fact_check:",
        )
        return
    st.subheader("Accuracy from corrections")
    digit_col, matrix_col = st.columns(2, gap="large")
    with digit_col:
        st.markdown("**Per true digit**")
        labelled = [sum(row) for row in stats.confusion_matrix]
        st.altair_chart(
            charts.per_digit_accuracy(stats.per_digit_accuracy, labelled),
            width="stretch",
            alt="Accuracy per true digit: "
            + ", ".join(
                f"{d}: {present.percent(a)}"
                for d, a in sorted(stats.per_digit_accuracy.items())
                if a is not None
            ),
        )
        if len(stats.per_model_version) > 1:
            st.markdown("**Per model version**")
            st.dataframe(
                pd.DataFrame(
                    [
                        {
                            "Model": v.model_version,
                            "Labelled": v.labelled,
                            "Accuracy": v.accuracy,
                        }
                        for v in stats.per_model_version
                    ]
                ),
                hide_index=True,
                column_config={
                    "Accuracy": st.column_config.ProgressColumn(
                        "Accuracy", min_value=0.0, max_value=1.0, format="percent"
                    )
                },
            )
    with matrix_col:
        st.markdown("**Confusion matrix** (rows: what was drawn; columns: the model's answer)")
        st.altair_chart(
            charts.confusion(stats.confusion_matrix),
            width="stretch",
            alt="Confusion matrix heatmap of true digit against the model's answer",
        )

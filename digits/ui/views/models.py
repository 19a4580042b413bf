"""Which model answers, where it came from, and how each version did on what people drew."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from digits.schemas import ModelAccuracy, ModelRegistry
from digits.ui import present
from digits.ui.charts import ACCENT, MUTED
from digits.ui.client import ApiClient, ApiError
from digits.ui.session import get_client, operator_view, show_error


def render() -> None:
    st.title("Models")
    client = get_client()
    try:
        registry = client.models()
        accuracy = client.model_accuracy()
    except ApiError as err:
        show_error(f"The model registry could not be loaded. {err}")
        return
    _active(registry)
    st.subheader("Accuracy from corrections, per model version")
    periods = sorted({p.start for p in accuracy.points})
    if len(periods) > 1:
        st.altair_chart(
            accuracy_chart(accuracy, registry),
            width="stretch",
            alt="Accuracy per model version over time, with promotions and rollbacks marked",
        )
        st.caption(
            f"Share of labelled predictions each version got right, per {accuracy.bucket} of "
            "the prediction (UTC). Vertical rules: a version became active."
        )
    elif periods:
        # One period is one point per version: a line over time would show nothing.
        st.altair_chart(
            accuracy_bars(accuracy),
            width="stretch",
            alt="Accuracy per model version: "
            + ", ".join(
                f"{p.model_version}: {present.percent(p.accuracy)} of {p.labelled}"
                for p in accuracy.points
            ),
        )
        st.caption(
            f"Share of labelled predictions each version got right. They were all made in the "
            f"{accuracy.bucket} from {periods[0]:%b %d %H:%M} UTC; the chart over time appears "
            f"once they span more than one {accuracy.bucket}."
        )
    else:
        st.info("Appears once some predictions are labelled.", icon=":material/fact_check:")
    _versions(registry)
    if operator_view("asks the trainer for a retraining and shows its progress"):
        _retraining(client)


def _retraining(client: ApiClient) -> None:
    """The operator's "Retrain now", and the latest job's progress and report."""
    st.subheader("Retraining")
    if st.button("Retrain now", icon=":material/model_training:"):
        try:
            queued = client.request_retraining()
        except ApiError as err:
            show_error(f"The retraining could not be queued. {err}")
        else:
            st.toast(f"Retraining {queued.job_id} queued for the trainer.")
    _latest_job(client)


@st.fragment(run_every=3)
def _latest_job(client: ApiClient) -> None:
    """The latest job's progress bar and report, refreshed every few seconds."""
    try:
        recent = client.retraining_jobs().jobs
    except ApiError as err:
        show_error(f"The retraining jobs could not be loaded. {err}")
        return
    if not recent:
        st.caption("No retraining yet. `digits trainer` runs the jobs queued here.")
        return
    job = recent[0]
    st.progress(
        job.progress,
        text=f"Latest job ({job.origin}): {job.state}, {present.percent(job.progress)}",
    )
    if job.error:
        show_error(f"The retraining failed: {job.error}")
    if job.report:
        with st.expander("Its report", icon=":material/summarize:"):
            st.json(job.report)
    if job.state == "queued":
        st.caption("Waiting for `digits trainer` to take it.")


def _active(registry: ModelRegistry) -> None:
    active = next((m for m in registry.models if m.active), None)
    version_col, origin_col, mnist_col, since_col = st.columns(4)
    version_col.metric("Active model", registry.serving)
    if registry.active is not None and registry.active != registry.serving:
        st.warning(
            f"The registry's active model is {registry.active}; this API process still serves "
            f"{registry.serving} (it switches within seconds, or DIGITS_MODEL_PATH pins it).",
            icon=":material/sync:",
        )
    if active is None:
        return
    origin_col.metric("Origin", active.origin, help=f"parent: {active.parent or 'none'}")
    mnist = active.metrics.get("mnist_accuracy")
    mnist_col.metric("MNIST test accuracy", present.percent(mnist) if mnist else "-")
    activated = [e.at for e in registry.events if e.version == active.version]
    since_col.metric("Active since", f"{max(activated):%b %d %H:%M} UTC" if activated else "-")
    if registry.card:
        with st.expander("Model card", icon=":material/description:"):
            st.markdown(registry.card)


def accuracy_chart(accuracy: ModelAccuracy, registry: ModelRegistry) -> alt.LayerChart:
    points = pd.DataFrame(
        [
            {
                "start": p.start,
                "version": p.model_version,
                "accuracy": p.accuracy,
                "labelled": p.labelled,
            }
            for p in accuracy.points
        ]
    )
    events = pd.DataFrame(
        [{"at": e.at, "what": f"{e.action} {e.version}"} for e in registry.events]
    )
    lines = (
        alt.Chart(points, height=260)
        .mark_line(point=True)
        .encode(
            x=alt.X("start:T", title="Time (UTC)"),
            y=alt.Y(
                "accuracy:Q",
                title="Accuracy",
                scale=alt.Scale(domain=[0, 1]),
                axis=alt.Axis(format="%"),
            ),
            color=alt.Color("version:N", title="Model version"),
            tooltip=[
                "version:N",
                alt.Tooltip("start:T", title="from", format="%b %d %H:%M"),
                alt.Tooltip("accuracy:Q", format=".1%"),
                "labelled:Q",
            ],
        )
    )
    rules = (
        alt.Chart(events)
        .mark_rule(color=MUTED, strokeDash=[4, 3])
        .encode(x="at:T", tooltip=["what:N", alt.Tooltip("at:T", format="%b %d %H:%M")])
    )
    labels = (
        alt.Chart(events)
        .mark_text(align="left", dx=3, dy=-110, color=ACCENT, fontSize=11)
        .encode(x="at:T", text="what:N")
    )
    return lines + rules + labels


def accuracy_bars(accuracy: ModelAccuracy) -> alt.LayerChart:
    """One bar per model version, labelled with its accuracy and how many labels it rests on."""
    frame = pd.DataFrame(
        [
            {
                "version": p.model_version,
                "accuracy": p.accuracy,
                "text": f"{present.percent(p.accuracy)} of {p.labelled}",
            }
            for p in accuracy.points
        ]
    )
    base = alt.Chart(frame, height=200).encode(
        x=alt.X("version:N", title="Model version", sort=None, axis=alt.Axis(labelAngle=0)),
        y=alt.Y(
            "accuracy:Q",
            title="Accuracy",
            scale=alt.Scale(domain=[0, 1]),
            axis=alt.Axis(format="%"),
        ),
        tooltip=["version:N", alt.Tooltip("accuracy:Q", format=".1%"), "text:N"],
    )
    bars = base.mark_bar(color=ACCENT, size=48)
    labels = base.mark_text(baseline="bottom", dy=-3, color="#111827").encode(text="text:N")
    return (bars + labels).properties(padding={"top": 16})


def _versions(registry: ModelRegistry) -> None:
    st.subheader("Versions")
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "Active": "active" if m.active else "",
                    "Version": m.version,
                    "Origin": m.origin,
                    "Parent": m.parent or "",
                    "Trained": m.created_at,
                    "MNIST accuracy": m.metrics.get("mnist_accuracy"),
                    "Sessions, out of fold": m.metrics.get("heldout_accuracy"),
                    "Judged on (sessions / samples)": (
                        f"{m.metrics['heldout_sessions']} / {m.metrics['heldout_samples']}"
                        if "heldout_sessions" in m.metrics
                        else ""
                    ),
                    "Corrections trained on": m.data.get("corrections_train"),
                    "Sessions left out": m.data.get("sessions_excluded"),
                }
                for m in reversed(registry.models)
            ]
        ),
        hide_index=True,
        column_config={
            "MNIST accuracy": st.column_config.NumberColumn(format="percent"),
            "Sessions, out of fold": st.column_config.NumberColumn(format="percent"),
            "Trained": st.column_config.DatetimeColumn(format="MMM D HH:mm"),
        },
    )
    _folds(registry)
    st.markdown("**Activations**")
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "When": e.at,
                    "What": e.action,
                    "Version": e.version,
                    "Previous": e.previous or "",
                    "Why": e.reason,
                }
                for e in reversed(registry.events)
            ]
        ),
        hide_index=True,
        column_config={"When": st.column_config.DatetimeColumn(format="MMM D HH:mm:ss")},
    )
    st.caption(
        "`digits retrain` proposes a new version from the corrections and promotes it only when "
        "it beats the active one; `digits models promote VERSION` and `digits models rollback` "
        "switch by hand. The API follows within seconds, without a restart."
    )


def _folds(registry: ModelRegistry) -> None:
    """Each retraining's folds: the evidence its decision pooled, one fold at a time."""
    rows = [
        {
            "Version": m.version,
            "Fold": fold["fold"] + 1,
            "Sessions": fold["sessions"],
            "Samples": fold["samples"],
            "Active accuracy": fold["active_accuracy"],
            "Fold candidate accuracy": fold["candidate_accuracy"],
            "Change (pp)": fold["difference"] * 100,
        }
        for m in reversed(registry.models)
        for fold in m.data.get("folds", [])
    ]
    if not rows:
        return
    st.markdown("**Retraining folds**")
    st.dataframe(
        pd.DataFrame(rows),
        hide_index=True,
        column_config={
            "Active accuracy": st.column_config.NumberColumn(format="percent"),
            "Fold candidate accuracy": st.column_config.NumberColumn(format="percent"),
            "Change (pp)": st.column_config.NumberColumn(format="%+.2f"),
        },
    )
    st.caption(
        "Each fold's sessions are read by a candidate fine-tuned on every other fold; the "
        "decision pools all folds, and the version itself is fine-tuned on every session."
    )

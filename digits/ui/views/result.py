"""The answer panel shared by drawing and upload: digit, confidence, bars, input, feedback."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from digits.schemas import PredictionOut
from digits.ui import charts, present
from digits.ui.client import ApiError
from digits.ui.session import flash, get_client


@dataclass(frozen=True)
class Shown:
    """A prediction as the page keeps it: the answer and the 28x28 image the model read."""

    prediction: PredictionOut
    model_input: bytes | None
    input_error: str | None = None
    like_image: bytes | None = None  # the earlier drawing an adapted answer learned from


def show_answer(shown: Shown) -> None:
    prediction = shown.prediction
    if prediction.status == "uncertain":
        st.warning(present.uncertain_explanation(prediction), icon=":material/help:")
    elif prediction.status == "not_a_digit":
        st.warning(present.not_a_digit_explanation(prediction), icon=":material/block:")
    else:
        row = headline_row(str(prediction.digit), f"Predicted digit {prediction.digit}")
        words = row.container()
        words.markdown(f"**{present.headline(prediction)}**")
        words.caption(
            "Confidence is calibrated: answers given at 90% are right about 9 times in 10."
        )


def headline_row(answer: str, label: str, *, size_rem: float = 4.5) -> DeltaGenerator:
    """The answer as the page's headline: a big numeral, with its words for screen readers
    (``label``), in a row whose rest sits beside it on every screen (columns would stack on a
    phone). Returns the row, for the words."""
    row = st.container(horizontal=True, vertical_alignment="center", gap="medium", wrap=False)
    row.markdown(
        f'<div role="img" aria-label="{label}" '
        f'style="font-size:{size_rem}rem;font-weight:700;line-height:1">{answer}</div>',
        unsafe_allow_html=True,
        width="content",
    )
    return row


def show_learned(shown: Shown) -> None:
    """For an answer the session's memory changed: which earlier drawing it learned from."""
    if not shown.prediction.adapted:
        return
    row = st.container(horizontal=True, vertical_alignment="center", gap="small", wrap=False)
    if shown.like_image is not None:
        row.image(shown.like_image, width=56)
    row.markdown(f":material/school: {present.learned_words(shown.prediction)}", width="content")


def show_details(shown: Shown) -> None:
    """The probability of each digit, and the 28x28 image the model read."""
    prediction = shown.prediction
    bars_col, input_col = st.columns([3, 1], vertical_alignment="bottom")
    bars_col.altair_chart(
        charts.probabilities(prediction.probabilities, prediction.digit),
        width="stretch",
        alt="Probability of each digit: "
        + ", ".join(f"{d}: {present.percent(p)}" for d, p in enumerate(prediction.probabilities)),
    )
    if shown.model_input is not None:
        input_col.image(shown.model_input, caption="What the model saw (28x28)", width=112)
    elif shown.input_error:
        input_col.caption(f"The model's 28x28 input could not be loaded. {shown.input_error}")


def show_feedback(
    prefix: str, prediction: PredictionOut, on_saved: Callable[[], None], widget_round: int
) -> None:
    """One click for "correct", the true digit, or "not a digit"; `on_saved` readies the next
    input."""
    st.markdown("**Was it right?**")
    sure = prediction.status == "ok"
    refused = prediction.status == "not_a_digit"
    named = present.a_digit(prediction.digit)
    yes_label = f"Yes, it is {named}" if sure else f"It is {named}"
    st.button(
        yes_label,
        key=f"{prefix}_yes_{widget_round}",
        type="secondary" if refused else "primary",
        icon=":material/check:",
        on_click=_save_label,
        args=(prefix, prediction.id, prediction.digit, prediction.digit, on_saved),
    )
    fix_key = f"{prefix}_fix_{widget_round}"
    st.pills(
        "No, the right digit is" if sure else "Or pick the right digit",
        options=list(range(10)),
        key=fix_key,
        wrap=True,  # onto a second row on a phone, instead of scrolling sideways
        on_change=_save_choice,
        args=(prefix, fix_key, prediction.id, prediction.digit, on_saved),
    )
    st.button(
        "Not a digit",
        key=f"{prefix}_not_a_digit_{widget_round}",
        type="primary" if refused else "secondary",
        icon=":material/block:",
        on_click=_save_label,
        args=(prefix, prediction.id, prediction.digit, None, on_saved),
    )


def error_key(prefix: str) -> str:
    return f"{prefix}_error"


def _save_choice(
    prefix: str,
    key: str,
    prediction_id: uuid.UUID,
    predicted: int,
    on_saved: Callable[[], None],
) -> None:
    chosen = st.session_state.get(key)
    if chosen is not None:
        _save_label(prefix, prediction_id, predicted, int(chosen), on_saved)


def _save_label(
    prefix: str,
    prediction_id: uuid.UUID,
    predicted: int,
    true_label: int | None,
    on_saved: Callable[[], None],
) -> None:
    try:
        get_client().label(prediction_id, true_label)
    except ApiError as err:
        st.session_state[error_key(prefix)] = f"Your answer was not saved. {err}"
        return
    flash(present.saved_message(predicted, true_label))
    on_saved()

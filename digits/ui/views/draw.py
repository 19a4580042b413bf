"""Draw (or upload) a digit, or write a whole number (digits.ui.views.number); the answer
appears when a stroke ends; say whether it was right."""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import streamlit as st

from digits.config import BRUSH_RANGE, CANVAS_SIZE, DEFAULT_BRUSH
from digits.schemas import Source
from digits.ui import canvas, present
from digits.ui.client import ApiClient, ApiError
from digits.ui.session import TOKEN_KEY, flash, get_client, show_error, show_flash
from digits.ui.views import number
from digits.ui.views.result import (
    Shown,
    error_key,
    show_answer,
    show_details,
    show_feedback,
    show_learned,
)

UPLOAD_TYPES = ["png", "jpg", "jpeg"]

# session_state keys, per flow ("draw" / "upload"): f"{flow}_{name}"
ROUND = "round"  # bumps to give the canvas / uploader / feedback widgets fresh keys
SENT = "sent"  # digest of the input last sent, so reruns do not resend it
SHOWN = "shown"  # the Shown answer for that input
EMPTY = "empty"  # the service said the input holds no digit
NUMBER_MODE = "draw_number_mode"
SUMMARY = "session_summary"  # the session's SessionSummary, fetched again after each change


def render() -> None:
    st.title("Write a number" if st.session_state.get(NUMBER_MODE) else "Draw a digit")
    show_flash()
    draw_tab, upload_tab = st.tabs(["Draw", "Upload an image"])
    with draw_tab:
        _draw()
    with upload_tab:
        _upload()
    _session_panel()


def _state(flow: str, name: str, default: Any = None) -> Any:
    return st.session_state.get(f"{flow}_{name}", default)


def _set(flow: str, name: str, value: Any) -> None:
    st.session_state[f"{flow}_{name}"] = value


def new_drawing() -> None:
    """A fresh canvas (new widget key) and a new drawing id; the old answer is dropped."""
    _next_round("draw")
    st.session_state["draw_id"] = str(uuid.uuid4())


def new_upload() -> None:
    _next_round("upload")


def _session_panel() -> None:
    """How much this session sent and taught, and a way to make it forget everything."""
    client = get_client()
    summary = st.session_state.get(SUMMARY)
    if summary is None:
        try:
            summary = st.session_state[SUMMARY] = client.session_summary()
        except ApiError:
            return  # the page works without it; the next run asks again
    if not summary.drawings:
        return
    row = st.container(horizontal=True, vertical_alignment="center", gap="small")
    row.caption(present.session_words(summary.drawings, summary.learned_from), width="content")
    with row.popover("Forget my drawings", icon=":material/delete:"):
        st.markdown(
            "Delete every drawing and label of this session, and what it learned from them? "
            "This cannot be undone."
        )
        st.button(
            "Yes, forget them",
            key="forget_session",
            type="primary",
            on_click=_forget,
            args=(client, summary.session_id),
        )


def _forget(client: ApiClient, session_id: uuid.UUID) -> None:
    try:
        client.delete_session(session_id)
    except ApiError as err:
        st.session_state[error_key("draw")] = f"Your drawings were not forgotten. {err}"
        return
    for name in (TOKEN_KEY, SUMMARY):  # the next run starts a new session
        st.session_state.pop(name, None)
    new_drawing()
    new_upload()
    flash("Your drawings were forgotten. This is a new session.")


def _next_round(flow: str) -> None:
    _set(flow, ROUND, _state(flow, ROUND, 0) + 1)
    st.session_state.pop(SUMMARY, None)
    for name in (SENT, SHOWN, EMPTY):
        st.session_state.pop(f"{flow}_{name}", None)
    st.session_state.pop(error_key(flow), None)


def _draw() -> None:
    # The switch sits below the canvas and its answer, so that on a phone it pushes neither
    # out of view; its state is known before it is drawn.
    if st.session_state.get(NUMBER_MODE, False):
        number.render()
    else:
        _digit()
    st.toggle(
        "Write a whole number",
        key=NUMBER_MODE,
        help="A wider canvas that reads every digit of a number, such as 2026",
    )


def _digit() -> None:
    if "draw_id" not in st.session_state:
        st.session_state["draw_id"] = str(uuid.uuid4())
    round_ = _state("draw", ROUND, 0)
    canvas_col, answer_col = st.columns([2, 3], gap="large")
    with canvas_col, st.container(width=CANVAS_SIZE + 50):
        st.caption(
            "Draw one digit (0-9) with the mouse or a finger; the answer comes when you lift. "
            "Undo and start again are above the canvas."
        )
        brush = st.slider(
            "Brush size",
            *BRUSH_RANGE,
            value=DEFAULT_BRUSH,
            key="draw_brush",
            help="Stroke width in canvas pixels",
        )
        drawing = canvas.freehand(
            width=CANVAS_SIZE,
            height=CANVAS_SIZE,
            stroke_width=brush,
            key=f"draw_canvas_{round_}",
        )

    objects = canvas.strokes(drawing)
    digest = canvas.fingerprint(objects) if objects else None
    if digest is not None and digest != _state("draw", SENT):
        image = drawing.image_bytes
        if image is None:
            _set("draw", SHOWN, None)
            _set("draw", EMPTY, True)
        else:
            _predict("draw", image, digest=digest, source="canvas")
    elif digest is None:
        if _state("draw", SENT) is not None:
            # Emptied (the canvas's reset, or undoing every stroke): what comes next is a new
            # drawing, stored as its own prediction.
            st.session_state["draw_id"] = str(uuid.uuid4())
        for name in (SENT, SHOWN, EMPTY):
            st.session_state.pop(f"draw_{name}", None)

    with answer_col:
        _show("draw", on_saved=new_drawing, idle="Your answer appears here.")


def _upload() -> None:
    round_ = _state("upload", ROUND, 0)
    file = st.file_uploader(
        "A photo or scan of one digit (PNG or JPEG)",
        type=UPLOAD_TYPES,
        key=f"upload_file_{round_}",
    )
    if file is None:
        _show("upload", on_saved=new_upload, idle="Choose an image to read the digit in it.")
        return
    data = file.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    if digest != _state("upload", SENT):
        _predict(
            "upload",
            data,
            digest=digest,
            source="upload",
            filename=file.name,
            content_type=file.type or "image/png",
        )
    image_col, answer_col = st.columns([1, 2], gap="large")
    image_col.image(data, caption="Your image", width=160)
    with answer_col:
        _show("upload", on_saved=new_upload, idle="")


def _predict(
    flow: str,
    image: bytes,
    *,
    digest: str,
    source: Source,
    filename: str = "drawing.png",
    content_type: str = "image/png",
) -> None:
    """Send the input once; keep the answer (or why there is none) for the reruns to show."""
    client = get_client()
    _set(flow, SENT, digest)
    _set(flow, SHOWN, None)
    _set(flow, EMPTY, False)
    st.session_state.pop(error_key(flow), None)
    drawing_id = st.session_state.get("draw_id") if flow == "draw" else None
    try:
        with st.spinner("Reading the digit..."):
            prediction = client.predict(
                image,
                source=source,
                drawing_id=drawing_id,
                filename=filename,
                content_type=content_type,
            )
    except ApiError as err:
        if err.kind == "empty":
            _set(flow, EMPTY, True)
        else:
            st.session_state[error_key(flow)] = f"{err} Then press Try again."
            # Unsent: the next run (Try again, or any click) sends the input again.
            st.session_state.pop(f"{flow}_{SENT}", None)
        return
    st.session_state.pop(SUMMARY, None)
    try:
        shown = Shown(prediction, client.input_png(prediction.id))
    except ApiError as err:
        shown = Shown(prediction, None, input_error=str(err))
    # Without the thumbnail (its drawing may have been removed) the words still say it.
    with contextlib.suppress(ApiError):
        if prediction.like:
            shown = replace(shown, like_image=client.image_png(prediction.like[0]))
    _set(flow, SHOWN, shown)


def _show(flow: str, *, on_saved: Callable[[], None], idle: str) -> None:
    error = st.session_state.get(error_key(flow))
    if error:
        show_error(error)
        st.button("Try again", key=f"{flow}_retry", icon=":material/refresh:")
    shown: Shown | None = _state(flow, SHOWN)
    if _state(flow, EMPTY):
        st.info(
            "Nothing to read: this drawing is empty (tiny or very faint strokes count as "
            "empty). Draw a digit (0-9) on the canvas."
            if flow == "draw"
            else "Nothing to read: no digit was found in this image. Try a photo of one dark "
            "digit on light paper that fills most of the picture.",
            icon=":material/draw:",
        )
    elif shown is not None:
        # Answer, then the question, then the detail: on a phone the first two are in view.
        show_answer(shown)
        show_learned(shown)
        show_feedback(flow, shown.prediction, on_saved, _state(flow, ROUND, 0))
        show_details(shown)
    elif idle and not error:
        st.caption(idle)

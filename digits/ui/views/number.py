"""The Draw page's Number mode: write a whole number on a wide canvas (it fits a phone held
upright), see each digit the model found framed on the drawing with its probabilities, and
confirm the number or type the right one."""

from __future__ import annotations

import io
import uuid
from typing import Any

import streamlit as st
from PIL import Image

from digits.config import BRUSH_RANGE
from digits.schemas import NumberOut
from digits.ui import canvas, charts, present
from digits.ui.client import ApiError
from digits.ui.session import flash, get_client, show_error
from digits.ui.views.result import headline_row

# Wide enough for a number, narrow enough for a phone held upright (390 px, less margins).
WIDTH, HEIGHT = 340, 150
BRUSH = 10  # the digit canvas's 18 px brush, scaled to this canvas's height
KEY = "number_"  # session_state keys: number_round, number_sent, number_shown, ...


def _get(name: str, default: Any = None) -> Any:
    return st.session_state.get(KEY + name, default)


def _set(name: str, value: Any) -> None:
    st.session_state[KEY + name] = value


def new_number() -> None:
    """A fresh canvas and drawing id; the old answer is dropped."""
    _set("round", _get("round", 0) + 1)
    _set("drawing_id", str(uuid.uuid4()))
    for name in ("sent", "shown", "image", "empty", "error"):
        st.session_state.pop(KEY + name, None)


def strokes(objects: list[dict[str, Any]], scale: float) -> list[list[list[float]]]:
    """The canvas's freehand paths (fabric.js commands such as ["Q", x1, y1, x2, y2]) as the
    points each command ends on, in the image's pixels."""
    result = []
    for obj in objects:
        points = [
            [float(command[-2]) * scale, float(command[-1]) * scale]
            for command in obj.get("path") or []
            if len(command) >= 3
        ]
        if points:
            result.append(points)
    return result


def render() -> None:

    if _get("drawing_id") is None:
        _set("drawing_id", str(uuid.uuid4()))
    st.caption(
        "Write a whole number (a year, a price, a room) with the mouse or a finger; the answer "
        "comes when you lift."
    )
    brush = st.slider(
        "Brush size", BRUSH_RANGE[0] // 2, BRUSH_RANGE[1] // 2, BRUSH, key=KEY + "brush"
    )
    drawing = canvas.freehand(
        width=WIDTH, height=HEIGHT, stroke_width=brush, key=f"number_canvas_{_get('round', 0)}"
    )
    objects = canvas.strokes(drawing)
    digest = canvas.fingerprint(objects)
    if objects and digest != _get("sent"):
        _read(drawing.image_bytes, objects, digest)
    elif not objects and _get("sent") is not None:
        new_number()
    _show()


def _read(image: bytes | None, objects: list[dict[str, Any]], digest: str) -> None:
    _set("sent", digest)
    for name in ("shown", "empty", "error"):
        st.session_state.pop(KEY + name, None)
    if image is None:
        _set("empty", True)
        return
    scale = Image.open(io.BytesIO(image)).width / WIDTH  # the image may be at the screen's scale
    try:
        with st.spinner("Reading the number..."):
            answer = get_client().read_number(
                image, strokes=strokes(objects, scale), drawing_id=_get("drawing_id")
            )
    except ApiError as err:
        if err.kind == "empty":
            _set("empty", True)
        else:
            _set("error", str(err))
            st.session_state.pop(KEY + "sent", None)  # sent again on the next run
        return
    _set("shown", answer)
    _set("image", image)


def _show() -> None:
    if _get("error"):
        show_error(_get("error"))
    if _get("empty"):
        st.info("Nothing to read yet: write a number on the canvas.", icon=":material/draw:")
        return
    answer: NumberOut | None = _get("shown")
    if answer is None:
        st.caption("Your number appears here.")
        return
    row = headline_row(answer.number, f"Read number {answer.number}", size_rem=3.5)
    row.markdown(
        f"**{present.number_status_words(answer.status).capitalize()}**, "
        f"{present.percent(answer.confidence)} that the whole number is right"
    )
    learned = present.learned_digits_words(answer.digits)
    if learned:
        st.caption(f"{learned}. Learned from your corrections.")
    _feedback(answer)
    st.image(
        present.boxed(_get("image"), [d.box for d in answer.digits]),
        caption="Each digit the model found, numbered from the left",
        width=560,  # the drawing's own scale on a desktop; a phone's width on a phone
    )
    with st.expander("Each digit's probabilities"):
        for k, digit in enumerate(answer.digits, start=1):
            st.altair_chart(
                charts.probabilities(digit.probabilities, digit.digit).properties(
                    title=f"Digit {k}: {digit.digit} ({present.percent(digit.confidence)})",
                    height=120,
                ),
                width="stretch",
            )


def _feedback(answer: NumberOut) -> None:
    st.markdown("**Is that the number you wrote?**")
    yes_col, no_col = st.columns(2)
    yes_col.button(
        f"Yes, it is {answer.number}",
        key=f"{KEY}yes_{answer.id}",
        type="primary",
        on_click=_save,
        args=(answer, answer.number),
    )
    no_col.button(
        "It is not a number",
        key=f"{KEY}none_{answer.id}",
        on_click=_save,
        args=(answer, None),
    )
    with st.form(key=f"{KEY}fix_{answer.id}", border=False):
        typed = st.text_input(
            "Or type the right number",
            max_chars=12,
            placeholder="e.g. 2026",
            key=f"{KEY}typed_{answer.id}",
        )
        if st.form_submit_button("Save the number", key=f"{KEY}save_{answer.id}"):
            if typed.isdigit() and typed.isascii():
                _save(answer, typed)
                st.rerun()
            else:
                show_error("Type the number with the digits 0-9 only (at most 12).")


def _save(answer: NumberOut, true_number: str | None) -> None:
    try:
        get_client().label_number(answer.id, true_number)
    except ApiError as err:
        _set("error", f"The answer was not saved. {err}")
        return
    if true_number is None:
        flash("Saved: that drawing is not a number.")
    elif true_number == answer.number:
        flash(f"Saved: it was {true_number}, read right.")
    else:
        flash(f"Saved: it was {true_number} (the model read {answer.number}).")
    new_number()

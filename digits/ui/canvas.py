"""The drawable canvas (streamlit-drawable-canvas) that the Draw page's views share."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Protocol

INK = "#000000"
PAPER = "#FFFFFF"


class Drawing(Protocol):
    """What the page reads from the canvas (streamlit_drawable_canvas.CanvasResult)."""

    json_data: dict[str, Any] | None

    @property
    def image_bytes(self) -> bytes | None: ...


def draw(**kwargs: Any) -> Drawing:
    # Imported on use: the component registers itself with a running Streamlit server.
    from streamlit_drawable_canvas import st_canvas

    result: Drawing = st_canvas(**kwargs)
    return result


def freehand(*, width: int, height: int, stroke_width: int, key: str) -> Drawing:
    """Black ink on white paper, drawn by hand; the drawing is sent after every stroke (the
    canvas brings its own undo, redo and reset)."""
    return draw(
        stroke_width=stroke_width,
        stroke_color=INK,
        background_color=PAPER,
        update_streamlit=True,
        height=height,
        width=width,
        drawing_mode="freedraw",
        return_image_data=True,
        key=key,
    )


def strokes(drawing: Drawing) -> list[dict[str, Any]]:
    """The canvas's objects: one per stroke, in drawing order."""
    return list((drawing.json_data or {}).get("objects") or [])


def fingerprint(objects: list[dict[str, Any]]) -> str:
    """Names the drawing: the same strokes give the same fingerprint, so it is sent once."""
    return hashlib.sha256(json.dumps(objects, sort_keys=True).encode()).hexdigest()

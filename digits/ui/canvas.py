"""The drawable canvas (streamlit-drawable-canvas) that the Draw page's views share."""

from __future__ import annotations

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

"""The Draw page under AppTest against the real API: a stand-in canvas (the component needs a
browser) sends real drawings, the shipped model reads them, and the answers are stored."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from live_api import FORTY_TWO, LETTER_H, SEVEN, LiveApi, MakeApi, canvas_png
from PIL import Image
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from digits import checkpoint as ckpt
from digits.config import SHIPPED_WEIGHTS
from digits.db.models import NumberRow
from digits.predict import Predictor
from digits.ui import canvas as canvas_component
from digits.ui import present
from digits.ui.client import ApiClient
from digits.ui.views import number

BLANK = canvas_png([])


class FakeCanvas:
    """Stands in for st_canvas: the test adds strokes and says what the canvas image shows."""

    def __init__(self) -> None:
        self.objects: list[dict[str, Any]] = []
        self.image = canvas_png(SEVEN)
        self.calls: list[dict[str, Any]] = []

    def stroke(self) -> None:
        self.objects.append({"type": "path", "path": [["M", 10 * len(self.objects), 5]]})

    def __call__(self, **kwargs: Any) -> SimpleNamespace:
        self.calls.append(kwargs)
        return SimpleNamespace(json_data={"objects": list(self.objects)}, image_bytes=self.image)

    @property
    def key(self) -> str:
        return str(self.calls[-1]["key"])


def _page() -> None:
    # AppTest runs this function's source alone: it imports what it uses.
    from digits.ui.views import draw

    draw.render()


@pytest.fixture
def canvas(monkeypatch: pytest.MonkeyPatch) -> FakeCanvas:
    fake_canvas = FakeCanvas()
    monkeypatch.setattr(canvas_component, "draw", fake_canvas)
    return fake_canvas


def start(api: LiveApi) -> AppTest:
    at = AppTest.from_function(_page, default_timeout=30)
    at.session_state["api_client"] = api.client
    return at.run()


@pytest.fixture
def app(api: LiveApi, canvas: FakeCanvas) -> AppTest:
    return start(api)


def answer_markdown(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if "Predicted digit" in m.value]


def test_blank_canvas_sends_nothing_and_invites_drawing(app: AppTest, api: LiveApi) -> None:
    assert not app.exception
    assert api.posts == 0
    assert any("answer appears here" in c.value for c in app.caption)
    assert app.slider(key="draw_brush").label == "Brush size"
    assert not app.button  # undo and reset are the canvas's own, not a second set


def test_a_stroke_is_predicted_once_with_the_drawing_id(
    app: AppTest, api: LiveApi, canvas: FakeCanvas
) -> None:
    canvas.stroke()
    app.run()

    assert api.posts == 1
    [row] = api.rows()
    assert (row.source, row.digit, row.status) == ("canvas", 7, "ok")
    assert str(row.drawing_id) == app.session_state["draw_id"]
    assert row.session_id == api.session_id  # the browser's session
    assert len(answer_markdown(app)) == 1
    assert ">7</div>" in answer_markdown(app)[0]
    headline = f"very sure it is a 7 ({present.percent(row.confidence)})"
    assert any(headline in m.value for m in app.markdown)
    assert len(app.get("vega_lite_chart")) == 1
    assert len(app.get("image")) == 1  # the 28x28 the model read

    app.run()  # a rerun with the same drawing (a slider moved, say) does not resend it
    assert api.posts == 1

    canvas.stroke()
    app.run()
    assert api.posts == 2
    assert [r.id for r in api.rows()] == [row.id]  # the same drawing is one stored prediction


def test_correct_click_saves_label_and_readies_a_new_canvas(
    app: AppTest, api: LiveApi, canvas: FakeCanvas
) -> None:
    canvas.stroke()
    app.run()
    first_key, first_drawing = canvas.key, app.session_state["draw_id"]
    prediction_id = str(api.rows()[0].id)

    yes = next(b for b in app.button if b.label == "Yes, it is a 7")
    canvas.objects = []  # the new canvas starts blank
    yes.click().run()

    assert api.labels() == [(prediction_id, 7, False)]
    assert [s.value for s in app.success] == [
        "Saved: a 7, as the model read it. Draw the next digit."
    ]
    assert canvas.key != first_key
    assert app.session_state["draw_id"] != first_drawing
    assert answer_markdown(app) == []


def test_picking_the_true_digit_records_a_correction(
    app: AppTest, api: LiveApi, canvas: FakeCanvas
) -> None:
    canvas.stroke()
    app.run()
    picker = app.get("button_group")[0]
    assert picker.label == "No, the right digit is"
    canvas.objects = []
    picker.set_value(1).run()

    assert api.labels() == [(str(api.rows()[0].id), 1, False)]
    assert "Saved: a 1 (the model read 7)" in app.success[0].value


def test_failed_label_keeps_the_drawing_and_says_why(
    app: AppTest, api: LiveApi, canvas: FakeCanvas, tmp_path: Path
) -> None:
    canvas.stroke()
    app.run()
    key = canvas.key
    with api.storage_down(tmp_path):
        next(b for b in app.button if b.label.startswith("Yes")).click().run()

    assert not app.exception
    assert "Your answer was not saved" in app.error[0].value
    assert "failed (503)" in app.error[0].value
    assert canvas.key == key
    assert api.labels() == []


def test_uncertain_answer_is_explained_not_shown_as_a_digit(
    make_api: MakeApi, canvas: FakeCanvas
) -> None:
    # Nothing is certain enough for a threshold of 1: the answer is uncertain, with its guess.
    strict = Predictor(ckpt.read(SHIPPED_WEIGHTS), uncertain_threshold=1.0, source=SHIPPED_WEIGHTS)
    with make_api(strict) as api:
        at = start(api)
        canvas.stroke()
        at.run()
        [row] = api.rows()

    assert row.status == "uncertain"
    assert answer_markdown(at) == []
    warning = at.warning[0].value
    assert "cannot tell" in warning
    assert f"best guess is 7 ({present.percent(row.confidence)})" in warning
    assert any(b.label == "It is a 7" for b in at.button)
    assert at.get("button_group")[0].label == "Or pick the right digit"


def test_blank_drawing_is_explained(app: AppTest, api: LiveApi, canvas: FakeCanvas) -> None:
    canvas.image = BLANK
    canvas.stroke()
    app.run()

    assert api.posts == 1
    assert api.rows() == []
    assert "this drawing is empty" in app.info[0].value
    assert answer_markdown(app) == []


def _timing_out(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("no answer", request=request)


@contextmanager
def _client(api: LiveApi, at: AppTest, client: ApiClient) -> Iterator[None]:
    at.session_state["api_client"] = client
    yield
    at.session_state["api_client"] = api.client


@pytest.mark.parametrize("failure", ["unreachable", "timeout", "storage down"])
def test_service_failures_become_messages_with_what_to_do(
    app: AppTest, api: LiveApi, canvas: FakeCanvas, tmp_path: Path, failure: str
) -> None:
    outage: AbstractContextManager[None] = {
        "unreachable": lambda: _client(api, app, ApiClient("http://127.0.0.1:9")),
        "timeout": lambda: _client(
            api, app, ApiClient("http://x", transport=httpx.MockTransport(_timing_out))
        ),
        "storage down": lambda: api.storage_down(tmp_path),
    }[failure]()
    words = {
        "unreachable": "cannot be reached",
        "timeout": "did not answer",
        "storage down": "failed (503)",
    }[failure]
    with outage:
        canvas.stroke()
        app.run()

    assert not app.exception
    message = app.error[0].value
    assert words in message
    assert "press Try again" in message

    app.button(key="draw_retry").click().run()
    assert not app.error
    assert len(answer_markdown(app)) == 1
    assert len(api.rows()) == 1


def test_an_undone_stroke_is_the_same_drawing_read_again(
    app: AppTest, api: LiveApi, canvas: FakeCanvas
) -> None:
    canvas.stroke()
    canvas.stroke()
    app.run()
    canvas.objects.pop()  # the canvas's undo sends the drawing without its last stroke
    app.run()
    assert api.posts == 2
    assert len(api.rows()) == 1


def test_an_emptied_canvas_starts_a_new_drawing(
    app: AppTest, api: LiveApi, canvas: FakeCanvas
) -> None:
    canvas.stroke()
    app.run()
    first = app.session_state["draw_id"]
    canvas.objects = []  # the canvas's reset
    app.run()
    assert app.session_state["draw_id"] != first
    canvas.stroke()
    app.run()
    assert {str(r.drawing_id) for r in api.rows()} == {first, app.session_state["draw_id"]}


def test_brush_size_reaches_the_canvas(app: AppTest, canvas: FakeCanvas) -> None:
    app.slider(key="draw_brush").set_value(30).run()
    assert canvas.calls[-1]["stroke_width"] == 30
    assert canvas.calls[-1]["width"] == canvas.calls[-1]["height"] == 280


def test_upload_goes_through_the_same_flow(app: AppTest, api: LiveApi) -> None:
    photo = io.BytesIO()
    Image.open(io.BytesIO(canvas_png(SEVEN))).convert("RGB").save(photo, format="JPEG")
    app.get("file_uploader")[0].upload("seven.jpg", photo.getvalue(), "image/jpeg")
    app.run()

    assert api.posts == 1
    [row] = api.rows()
    assert (row.source, row.drawing_id, row.digit) == ("upload", None, 7)
    assert len(answer_markdown(app)) == 1

    next(b for b in app.button if b.key and b.key.startswith("upload_yes")).click().run()
    assert api.labels() == [(str(row.id), 7, False)]
    assert app.success


def test_not_a_digit_answer_says_so_and_offers_the_not_a_digit_button(
    app: AppTest, api: LiveApi, canvas: FakeCanvas
) -> None:
    canvas.image = canvas_png(LETTER_H)
    canvas.stroke()
    app.run()
    [row] = api.rows()

    assert row.status == "not_a_digit"
    assert answer_markdown(app) == []
    warning = app.warning[0].value
    assert "does not look like a digit" in warning
    assert f"best guess is {row.digit} ({present.percent(row.confidence)})" in warning
    # The ten digit choices stay, with "Not a digit" beside them.
    assert any(b.label == f"It is {present.a_digit(row.digit)}" for b in app.button)
    assert app.get("button_group")[0].label == "Or pick the right digit"
    canvas.objects = []
    next(b for b in app.button if b.label == "Not a digit").click().run()

    assert api.labels() == [(str(row.id), None, True)]
    assert f"Saved: not a digit (the model read {row.digit})" in app.success[0].value


def test_not_a_digit_button_is_offered_for_a_confident_answer_too(
    app: AppTest, api: LiveApi, canvas: FakeCanvas
) -> None:
    canvas.stroke()
    app.run()
    assert not app.warning
    canvas.objects = []
    next(b for b in app.button if b.label == "Not a digit").click().run()
    assert api.labels() == [(str(api.rows()[0].id), None, True)]
    assert str(uuid.UUID(app.session_state["draw_id"])) != str(api.rows()[0].drawing_id)


def _write(canvas: FakeCanvas, strokes: list[list[tuple[int, int]]]) -> None:
    canvas.image = canvas_png(strokes, (number.WIDTH, number.HEIGHT), width=number.BRUSH)
    canvas.objects = [
        {"type": "path", "path": [["M", *s[0]], *(["L", *p] for p in s[1:])]} for s in strokes
    ]


def test_number_mode_reads_a_whole_number_and_takes_its_confirmation(
    app: AppTest, api: LiveApi, canvas: FakeCanvas
) -> None:
    app.toggle(key="draw_number_mode").set_value(True).run()
    assert (canvas.calls[-1]["width"], canvas.calls[-1]["height"]) == (340, 150)
    assert canvas.calls[-1]["width"] <= 390 - 2 * 16  # a phone held upright, less its margins
    _write(canvas, FORTY_TWO)
    app.run()
    assert not app.exception
    assert any('aria-label="Read number 42"' in m.value for m in app.markdown)
    assert len(app.get("image")) == 1  # the drawing, boxed
    assert len(app.get("vega_lite_chart")) == 2  # each digit's probabilities
    with api.database.read() as session:
        [stored] = session.scalars(select(NumberRow)).all()
        assert (
            stored.number == "42"
            and str(stored.drawing_id) == app.session_state["number_drawing_id"]
        )
        assert len(stored.strokes or []) == 3
    canvas.objects = []  # the fresh canvas that comes after an answer
    app.button(key=f"number_yes_{stored.id}").click().run()
    assert not app.exception
    with api.database.read() as session:
        labelled = session.get(NumberRow, stored.id)
        assert labelled is not None and labelled.true_number == "42"
        assert [d.true_label for d in labelled.digits] == [4, 2]


def test_number_mode_takes_a_typed_number(app: AppTest, api: LiveApi, canvas: FakeCanvas) -> None:
    app.toggle(key="draw_number_mode").set_value(True).run()
    _write(canvas, FORTY_TWO)
    app.run()
    with api.database.read() as session:
        [stored] = session.scalars(select(NumberRow)).all()
    app.text_input(key=f"number_typed_{stored.id}").input("427")
    app.button(key=f"number_save_{stored.id}").click().run()
    with api.database.read() as session:
        stored = session.get(NumberRow, stored.id)
        assert stored is not None and stored.true_number == "427"
        assert [d.true_label for d in stored.digits] == [None, None]  # another length

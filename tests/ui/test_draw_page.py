"""The Draw page under AppTest: a fake canvas and a fake API client, real page logic."""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest
from ui_fakes import FakeClient, png

from digits.ui.client import ApiError
from digits.ui.pages import draw


class FakeCanvas:
    """Stands in for st_canvas: strokes are added by the test, calls are recorded."""

    def __init__(self) -> None:
        self.objects: list[dict[str, Any]] = []
        self.image = png(280, 255)
        self.calls: list[dict[str, Any]] = []

    def stroke(self) -> None:
        self.objects.append({"type": "path", "path": [["M", 10 * len(self.objects), 5]]})

    def __call__(self, **kwargs: Any) -> SimpleNamespace:
        self.calls.append(kwargs)
        return SimpleNamespace(json_data={"objects": list(self.objects)}, image_bytes=self.image)

    @property
    def key(self) -> str:
        return str(self.calls[-1]["key"])


@pytest.fixture
def fake() -> FakeClient:
    return FakeClient()


def _page() -> None:
    from digits.ui.pages import draw

    draw.render()


@pytest.fixture
def canvas(monkeypatch: pytest.MonkeyPatch) -> FakeCanvas:
    fake_canvas = FakeCanvas()
    monkeypatch.setattr(draw, "canvas", fake_canvas)
    return fake_canvas


@pytest.fixture
def app(fake: FakeClient, canvas: FakeCanvas) -> AppTest:
    at = AppTest.from_function(_page, default_timeout=30)
    at.session_state["api_client"] = fake
    return at.run()


def answer_markdown(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if "Predicted digit" in m.value]


def test_blank_canvas_sends_nothing_and_invites_drawing(app: AppTest, fake: FakeClient) -> None:
    assert not app.exception
    assert fake.posts == []
    assert any("answer appears here" in c.value for c in app.caption)
    assert app.slider(key="draw_brush").label == "Brush size"
    assert {b.label for b in app.button} >= {"Predict", "Undo stroke", "Clear"}


def test_a_stroke_is_predicted_once_with_the_drawing_id(
    app: AppTest, fake: FakeClient, canvas: FakeCanvas
) -> None:
    canvas.stroke()
    app.run()

    assert len(fake.posts) == 1
    post = fake.posts[0]
    assert post["source"] == "canvas"
    assert post["image"] == canvas.image
    assert uuid.UUID(post["drawing_id"]) == uuid.UUID(app.session_state["draw_id"])
    assert answer_markdown(app) == [answer_markdown(app)[0]]
    assert ">7</div>" in answer_markdown(app)[0]
    assert any("very sure it is a 7 (95%)" in m.value for m in app.markdown)
    assert len(app.get("vega_lite_chart")) == 1
    assert len(app.get("image")) == 1

    app.run()  # a rerun with the same drawing (a slider moved, say) does not resend it
    assert len(fake.posts) == 1

    canvas.stroke()
    app.run()
    assert len(fake.posts) == 2
    assert fake.posts[1]["drawing_id"] == post["drawing_id"]
    assert len(fake.records) == 1  # the same drawing is one stored prediction


def test_predict_button_resends_the_current_drawing(
    app: AppTest, fake: FakeClient, canvas: FakeCanvas
) -> None:
    canvas.stroke()
    app.run()
    app.button(key="draw_predict").click().run()
    assert len(fake.posts) == 2


def test_correct_click_saves_label_and_readies_a_new_canvas(
    app: AppTest, fake: FakeClient, canvas: FakeCanvas
) -> None:
    canvas.stroke()
    app.run()
    first_key, first_drawing = canvas.key, app.session_state["draw_id"]
    prediction_id = str(fake.records[0].id)

    yes = next(b for b in app.button if b.label == "Yes, it is a 7")
    canvas.objects = []  # the new canvas starts blank
    yes.click().run()

    assert fake.labels == [(prediction_id, 7)]
    assert [s.value for s in app.success] == [
        "Saved: a 7, as the model read it. Draw the next digit."
    ]
    assert canvas.key != first_key
    assert app.session_state["draw_id"] != first_drawing
    assert answer_markdown(app) == []


def test_picking_the_true_digit_records_a_correction(
    app: AppTest, fake: FakeClient, canvas: FakeCanvas
) -> None:
    canvas.stroke()
    app.run()
    picker = app.get("button_group")[0]
    assert picker.label == "No, the right digit is"
    canvas.objects = []
    picker.set_value(1).run()

    assert fake.labels == [(str(fake.records[0].id), 1)]
    assert "Saved: a 1 (the model read 7)" in app.success[0].value


def test_failed_label_keeps_the_drawing_and_says_why(
    app: AppTest, fake: FakeClient, canvas: FakeCanvas
) -> None:
    canvas.stroke()
    app.run()
    key = canvas.key
    fake.fail = ApiError("The prediction service failed (503): database down.", kind="server")
    next(b for b in app.button if b.label.startswith("Yes")).click().run()

    assert not app.exception
    assert "Your answer was not saved" in app.error[0].value
    assert "database down" in app.error[0].value
    assert canvas.key == key


def test_uncertain_answer_is_explained_not_shown_as_a_digit(
    app: AppTest, fake: FakeClient, canvas: FakeCanvas
) -> None:
    fake.next_digit, fake.next_confidence = 4, 0.41
    canvas.stroke()
    app.run()

    assert answer_markdown(app) == []
    warning = app.warning[0].value
    assert "cannot tell" in warning
    assert "best guess is 4 (41%)" in warning
    assert any(b.label == "It is a 4" for b in app.button)
    assert app.get("button_group")[0].label == "Or pick the right digit"


def test_blank_drawing_is_explained(app: AppTest, fake: FakeClient, canvas: FakeCanvas) -> None:
    canvas.image = b"blank"
    canvas.stroke()
    app.run()

    assert len(fake.posts) == 1
    assert "this drawing is empty" in app.info[0].value
    assert answer_markdown(app) == []


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (
            ApiError("The prediction service at http://x cannot be reached.", kind="unreachable"),
            "cannot be reached",
        ),
        (
            ApiError("The prediction service did not answer within 10 s.", kind="timeout"),
            "did not answer",
        ),
        (
            ApiError("The prediction service failed (500): boom.", kind="server", status_code=500),
            "failed (500)",
        ),
    ],
)
def test_service_failures_become_messages_with_what_to_do(
    app: AppTest, fake: FakeClient, canvas: FakeCanvas, error: ApiError, words: str
) -> None:
    fake.fail = error
    canvas.stroke()
    app.run()

    assert not app.exception
    message = app.error[0].value
    assert words in message
    assert "press Predict" in message

    fake.fail = None
    app.button(key="draw_predict").click().run()
    assert not app.error
    assert len(answer_markdown(app)) == 1


def test_clear_starts_a_new_drawing(app: AppTest, fake: FakeClient, canvas: FakeCanvas) -> None:
    canvas.stroke()
    app.run()
    key, drawing = canvas.key, app.session_state["draw_id"]
    canvas.objects = []
    app.button(key="draw_clear").click().run()

    assert canvas.key != key
    assert app.session_state["draw_id"] != drawing
    assert answer_markdown(app) == []


def test_undo_reloads_the_canvas_without_the_last_stroke(
    app: AppTest, fake: FakeClient, canvas: FakeCanvas
) -> None:
    canvas.stroke()
    canvas.stroke()
    app.run()
    kept = canvas.objects[0]
    app.button(key="draw_undo").click().run()

    initial = canvas.calls[-1]["initial_drawing"]
    assert initial["objects"] == [kept]
    assert len(fake.posts) == 1  # the old drawing is not sent again
    canvas.objects = [kept]  # the canvas reloads and sends the shorter drawing
    app.run()
    assert len(fake.posts) == 2


def test_an_emptied_canvas_starts_a_new_drawing(
    app: AppTest, fake: FakeClient, canvas: FakeCanvas
) -> None:
    canvas.stroke()
    app.run()
    first = app.session_state["draw_id"]
    canvas.objects = []  # the canvas toolbar's reset
    app.run()
    assert app.session_state["draw_id"] != first
    canvas.stroke()
    app.run()
    assert fake.posts[-1]["drawing_id"] == app.session_state["draw_id"]
    assert len(fake.records) == 2


def test_brush_size_reaches_the_canvas(app: AppTest, canvas: FakeCanvas) -> None:
    app.slider(key="draw_brush").set_value(30).run()
    assert canvas.calls[-1]["stroke_width"] == 30
    assert canvas.calls[-1]["width"] == canvas.calls[-1]["height"] == 280


def test_upload_goes_through_the_same_flow(app: AppTest, fake: FakeClient) -> None:
    photo = png(64, 200)
    app.get("file_uploader")[0].upload("three.jpg", photo, "image/jpeg")
    app.run()

    assert len(fake.posts) == 1
    post = fake.posts[0]
    assert (post["source"], post["drawing_id"], post["filename"]) == ("upload", None, "three.jpg")
    assert post["content_type"] == "image/jpeg"
    assert post["image"] == photo
    assert len(answer_markdown(app)) == 1

    next(b for b in app.button if b.key and b.key.startswith("upload_yes")).click().run()
    assert fake.labels == [(str(fake.records[0].id), 7)]
    assert app.success


def test_not_a_digit_answer_says_so_and_offers_the_not_a_digit_button(
    app: AppTest, fake: FakeClient, canvas: FakeCanvas
) -> None:
    fake.next_digit, fake.next_confidence, fake.next_status = 4, 0.62, "not_a_digit"
    canvas.stroke()
    app.run()

    assert answer_markdown(app) == []
    warning = app.warning[0].value
    assert "does not look like a digit" in warning
    assert "best guess is 4 (62%)" in warning
    # The ten digit choices stay, with "Not a digit" beside them.
    assert any(b.label == "It is a 4" for b in app.button)
    assert app.get("button_group")[0].label == "Or pick the right digit"
    canvas.objects = []
    next(b for b in app.button if b.label == "Not a digit").click().run()

    assert fake.labels == [(str(fake.records[0].id), None)]
    assert fake.records[0].not_a_digit and fake.records[0].true_label is None
    assert "Saved: not a digit (the model read 4)" in app.success[0].value


def test_not_a_digit_button_is_offered_for_a_confident_answer_too(
    app: AppTest, fake: FakeClient, canvas: FakeCanvas
) -> None:
    canvas.stroke()
    app.run()
    assert not app.warning
    canvas.objects = []
    next(b for b in app.button if b.label == "Not a digit").click().run()
    assert fake.labels == [(str(fake.records[0].id), None)]

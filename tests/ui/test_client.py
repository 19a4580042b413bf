"""The UI's HTTP client against a mock transport: requests it sends, answers it parses, errors."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

from digits.ui.client import ApiClient, ApiError, HistoryFilter

PRED_ID = "3f2b8c1e-8d1a-4a57-9f0e-2b1c7e8a9d10"
SINCE = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
DRAWING_ID = "0c4d6f1a-1111-4b2c-8a3e-123456789abc"


def prediction(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "id": PRED_ID,
        "digit": 7,
        "confidence": 0.93,
        "probabilities": [0.0, 0.01, 0.0, 0.02, 0.0, 0.0, 0.0, 0.93, 0.02, 0.02],
        "status": "ok",
        "model_version": "v1",
        "created_at": "2026-11-28T01:02:03.000004+00:00",
    }
    body.update(overrides)
    return body


def record(**overrides: object) -> dict[str, object]:
    body = prediction(source="canvas", drawing_id=DRAWING_ID, true_label=None, labelled_at=None)
    body.update(overrides)
    return body


def client_for(handler: Callable[[httpx.Request], httpx.Response]) -> ApiClient:
    return ApiClient("http://api.test/", timeout_s=2.5, transport=httpx.MockTransport(handler))


def test_predict_sends_multipart_image_source_and_drawing_id() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json=prediction())

    result = client_for(handler).predict(b"\x89PNG-bytes", source="canvas", drawing_id=DRAWING_ID)

    request = seen[0]
    assert (request.method, request.url.path) == ("POST", "/api/predictions")
    assert request.headers["content-type"].startswith("multipart/form-data")
    body = request.content
    assert b'name="image"; filename="drawing.png"' in body
    assert b"\x89PNG-bytes" in body
    assert b'name="source"\r\n\r\ncanvas' in body
    assert f'name="drawing_id"\r\n\r\n{DRAWING_ID}'.encode() in body
    assert result.id == uuid.UUID(PRED_ID)
    assert result.digit == 7
    assert result.status == "ok"
    assert len(result.probabilities) == 10
    assert result.created_at.utcoffset() is not None


def test_predict_without_drawing_id_omits_the_field() -> None:
    bodies: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content)
        return httpx.Response(201, json=prediction())

    client_for(handler).predict(
        b"jpeg", source="upload", filename="photo.jpg", content_type="image/jpeg"
    )
    assert b"drawing_id" not in bodies[0]
    assert b'filename="photo.jpg"' in bodies[0]
    assert b"Content-Type: image/jpeg" in bodies[0]


def test_label_patches_true_label_and_returns_the_record() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert (request.method, request.url.path) == ("PATCH", f"/api/predictions/{PRED_ID}")
        assert json.loads(request.content) == {"true_label": 1}
        return httpx.Response(
            200, json=record(true_label=1, labelled_at="2026-11-28T01:03:00.000000+00:00")
        )

    result = client_for(handler).label(PRED_ID, 1)
    assert result.true_label == 1
    assert result.source == "canvas"


def test_list_predictions_passes_only_given_filters() -> None:
    queries: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        queries.append(dict(request.url.params))
        return httpx.Response(200, json={"items": [record()], "total": 41})

    client = client_for(handler)
    page = client.list_predictions(HistoryFilter(limit=20, offset=40, digit=3, outcome="wrong"))
    client.list_predictions(HistoryFilter(not_a_digit=False, since=SINCE))

    assert queries[0] == {"limit": "20", "offset": "40", "digit": "3", "outcome": "wrong"}
    # What the server's HistoryFilter reads back: booleans and times as it parses them.
    assert queries[1] == {"not_a_digit": "false", "since": "2026-01-02T03:04:05Z"}
    assert page.total == 41
    assert page.items[0].drawing_id == uuid.UUID(DRAWING_ID)


def test_images_and_health() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/healthz":
            return httpx.Response(200, json={"status": "ok"})
        kind = request.url.path.rsplit("/", 1)[-1]
        return httpx.Response(200, content=kind.encode(), headers={"content-type": "image/png"})

    client = client_for(handler)
    assert client.image_png(PRED_ID) == b"image"
    assert client.input_png(PRED_ID) == b"input"
    assert client.health() is True


def test_blank_drawing_is_an_empty_error_not_a_digit() -> None:
    client = client_for(
        lambda _: httpx.Response(422, json={"detail": "the image is empty: nothing was drawn"})
    )
    with pytest.raises(ApiError) as info:
        client.predict(b"png")
    assert info.value.kind == "empty"
    assert info.value.status_code == 422
    assert "empty" in str(info.value)


def test_unreachable_service_says_where_and_what_to_do() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused", request=request)

    client = client_for(handler)
    with pytest.raises(ApiError) as info:
        client.stats()
    assert info.value.kind == "unreachable"
    message = str(info.value)
    assert "http://api.test" in message
    assert "digits serve" in message
    assert "DIGITS_API_URL" in message
    assert client.health() is False


def test_slow_service_is_a_timeout_error_with_the_limit() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with pytest.raises(ApiError) as info:
        client_for(handler).list_predictions()
    assert info.value.kind == "timeout"
    assert "2.5 s" in str(info.value)


@pytest.mark.parametrize(
    ("status", "body", "kind", "words"),
    [
        (404, {"detail": "no prediction with that id"}, "not_found", "no such record"),
        (413, {"detail": "the image is 3000000 bytes"}, "rejected", "3000000 bytes"),
        (
            422,
            {"detail": [{"loc": ["body", "true_label"], "msg": "less than or equal to 9"}]},
            "rejected",
            "less than or equal to 9",
        ),
        (503, {"detail": "database unavailable"}, "server", "database unavailable"),
    ],
)
def test_error_statuses_carry_the_apis_detail(
    status: int, body: dict[str, object], kind: str, words: str
) -> None:
    client = client_for(lambda _: httpx.Response(status, json=body))
    with pytest.raises(ApiError) as info:
        client.label(PRED_ID, 9)
    assert info.value.kind == kind
    assert info.value.status_code == status
    assert words in str(info.value)
    assert "Traceback" not in str(info.value)


def test_non_json_error_page_still_gives_a_message() -> None:
    client = client_for(lambda _: httpx.Response(502, text="<html>Bad Gateway</html>"))
    with pytest.raises(ApiError) as info:
        client.stats()
    assert info.value.kind == "server"
    assert "502" in str(info.value)


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="not json"),
        httpx.Response(200, json=[1, 2]),
        httpx.Response(201, json={"id": PRED_ID, "digit": 12}),
    ],
)
def test_malformed_success_answers_are_api_errors(response: httpx.Response) -> None:
    with pytest.raises(ApiError) as info:
        client_for(lambda _: response).predict(b"png")
    assert info.value.kind == "invalid"
    assert "does not understand" in str(info.value)


def test_a_session_view_sends_its_token_and_the_operator_view_the_admin_token() -> None:
    seen: list[httpx.Request] = []
    token = "payload.signature"

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/api/sessions":
            return httpx.Response(201, json={"session_id": PRED_ID, "session_token": token})
        if request.headers.get("x-session-token") != token:
            return httpx.Response(401, json={"detail": "send the X-Session-Token header"})
        return httpx.Response(200, json={"items": [], "total": 0})

    shared = client_for(handler)
    created = shared.create_session()
    assert created.session_token == token
    assert shared.with_credentials(session_token="expired.token").session_is_valid() is False
    mine = shared.with_credentials(session_token=token)
    assert mine.session_is_valid() is True
    operator = shared.with_credentials(session_token=token, admin_token="admin-secret")
    operator.list_predictions()
    assert seen[-1].headers["authorization"] == "Bearer admin-secret"
    assert "x-session-token" not in seen[0].headers  # the shared client itself carries none

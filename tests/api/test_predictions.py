"""POST/PATCH/GET /api/predictions against each database: the contract the UI relies on."""

from __future__ import annotations

import base64
import io
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from api_helpers import MakeClient, blank, drawing, png_bytes, post_drawing
from fastapi.testclient import TestClient
from PIL import Image

from digits import checkpoint as ckpt
from digits.predict import Predictor

POST_FIELDS = {
    "id",
    "digit",
    "confidence",
    "probabilities",
    "status",
    "model_version",
    "created_at",
    "adapted",
    "like",
}
RECORD_FIELDS = POST_FIELDS | {
    "source",
    "drawing_id",
    "session_id",
    "true_label",
    "not_a_digit",
    "labelled_at",
}


def _utc(value: str) -> datetime:
    assert value.endswith("+00:00"), value
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset() == timedelta(0)
    return parsed


def test_multipart_post_is_stored_and_readable(client: TestClient) -> None:
    before = datetime.now(UTC)
    response = post_drawing(client, source="canvas")
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == POST_FIELDS
    assert 0 <= body["digit"] <= 9 and len(body["probabilities"]) == 10
    assert body["probabilities"][body["digit"]] == pytest.approx(body["confidence"])
    assert sum(body["probabilities"]) == pytest.approx(1.0, abs=1e-4)
    assert body["status"] == "ok"
    assert before - timedelta(seconds=1) <= _utc(body["created_at"]) <= datetime.now(UTC)
    assert response.headers["location"] == f"/api/predictions/{body['id']}"

    stored = client.get(f"/api/predictions/{body['id']}")
    assert stored.status_code == 200
    record = stored.json()
    assert set(record) == RECORD_FIELDS
    assert {k: record[k] for k in POST_FIELDS} == body  # same time string on both databases
    assert record["source"] == "canvas" and record["true_label"] is None


def test_json_base64_and_data_url(client: TestClient) -> None:
    encoded = base64.b64encode(drawing()).decode()
    for image in (encoded, f"data:image/png;base64,{encoded}"):
        response = client.post("/api/predictions", json={"image": image, "source": "api"})
        assert response.status_code == 201, response.text
    drawing_id = str(uuid.uuid4())
    response = client.post("/api/predictions", json={"image": encoded, "drawing_id": drawing_id})
    assert (
        client.get(f"/api/predictions/{response.json()['id']}").json()["drawing_id"] == drawing_id
    )
    assert client.get("/api/predictions").json()["total"] == 3


def test_jpeg_and_raw_png_bodies(client: TestClient) -> None:
    rgb = Image.open(io.BytesIO(drawing(mode="RGB")))
    jpeg = png_bytes(rgb, "JPEG")
    response = client.post("/api/predictions", files={"image": ("d.jpg", jpeg, "image/jpeg")})
    assert response.status_code == 201
    raw = client.post(
        "/api/predictions?source=upload", content=drawing(), headers={"content-type": "image/png"}
    )
    assert raw.status_code == 201
    assert client.get(f"/api/predictions/{raw.json()['id']}").json()["source"] == "upload"


def test_blank_drawing_is_422_saying_empty(client: TestClient) -> None:
    response = post_drawing(client, blank())
    assert response.status_code == 422
    assert "empty" in response.json()["detail"]
    assert client.get("/api/predictions").json()["total"] == 0


@pytest.mark.parametrize(
    ("kwargs", "statuses"),
    [
        ({"files": {"image": ("x.png", b"not an image at all", "image/png")}}, {415, 422}),
        ({"files": {"image": ("x.png", drawing()[:300], "image/png")}}, {415, 422}),
        ({"files": {"image": ("x.png", b"", "image/png")}}, {415, 422}),
        ({"data": {"source": "canvas"}}, {415}),  # URL-encoded: the form is multipart
        ({"files": {"drawing": ("x.png", drawing(), "image/png")}}, {422}),  # no "image"
        ({"json": {"image": "!!!not base64!!!"}}, {415, 422}),
        ({"json": {"image": 12}}, {422}),
        ({"json": {"nothing": "here"}}, {422}),
        ({"json": [1, 2, 3]}, {422}),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, {422}),
        ({"content": b"hello", "headers": {"content-type": "text/plain"}}, {415}),
        ({"files": {"image": ("x.png", drawing(), "image/png")}, "data": {"source": "fax"}}, {422}),
        (
            {"files": {"image": ("x.png", drawing(), "image/png")}, "data": {"drawing_id": "7"}},
            {422},
        ),
    ],
)
def test_bad_submissions_are_4xx_with_detail(
    client: TestClient, kwargs: dict[str, object], statuses: set[int]
) -> None:
    response = client.post("/api/predictions", **kwargs)  # type: ignore[arg-type]
    assert response.status_code in statuses, response.text
    assert "detail" in response.json()


def test_body_limit_applies_before_parsing_also_when_chunked(make_client: MakeClient) -> None:
    with make_client(max_body_bytes=20_000) as client:
        big = drawing() + b"\0" * 30_000
        response = client.post("/api/predictions", files={"image": ("d.png", big, "image/png")})
        assert response.status_code == 413
        assert "limit" in response.json()["detail"]

        def chunks():  # no Content-Length: Transfer-Encoding: chunked
            for _ in range(10):
                yield b"x" * 4096

        chunked = client.post(
            "/api/predictions", content=chunks(), headers={"content-type": "image/png"}
        )
        assert chunked.status_code == 413
        assert post_drawing(client).status_code == 201


def test_pixel_limit(make_client: MakeClient) -> None:
    with make_client(max_pixels=100 * 100) as client:
        response = post_drawing(client, drawing(280))
        assert response.status_code in {413, 422}
        assert "pixels" in response.json()["detail"]


def test_low_confidence_is_uncertain_with_best_guess(
    make_client: MakeClient, checkpoint_path
) -> None:
    strict = Predictor(ckpt.read(checkpoint_path), uncertain_threshold=1.0)
    with make_client(predictor_override=strict) as client:
        body = post_drawing(client).json()
        assert body["status"] == "uncertain"
        assert body["digit"] == max(range(10), key=lambda d: body["probabilities"][d])


def test_same_drawing_replaces_until_corrected(client: TestClient) -> None:
    drawing_id = str(uuid.uuid4())
    first = post_drawing(client, drawing(), drawing_id=drawing_id, source="canvas").json()
    second = post_drawing(client, drawing(300), drawing_id=drawing_id, source="canvas").json()
    assert second["id"] == first["id"]
    assert second["created_at"] >= first["created_at"]
    assert client.get("/api/predictions").json()["total"] == 1

    assert (
        client.patch(f"/api/predictions/{first['id']}", json={"true_label": 7}).status_code == 200
    )
    third = post_drawing(client, drawing_id=drawing_id, source="canvas").json()
    assert third["id"] != first["id"]  # a corrected prediction is history, never overwritten
    assert client.get("/api/predictions").json()["total"] == 2
    assert client.get(f"/api/predictions/{first['id']}").json()["true_label"] == 7


def test_correction_records_and_changes_the_label(client: TestClient) -> None:
    created = post_drawing(client).json()
    url = f"/api/predictions/{created['id']}"
    first = client.patch(url, json={"true_label": 3})
    assert first.status_code == 200
    record = first.json()
    assert set(record) == RECORD_FIELDS
    assert record["true_label"] == 3 and record["id"] == created["id"]
    labelled_at = _utc(record["labelled_at"])
    changed = client.patch(url, json={"true_label": 5}).json()
    assert changed["true_label"] == 5 and _utc(changed["labelled_at"]) >= labelled_at
    assert client.get(url).json()["true_label"] == 5


@pytest.mark.parametrize(
    "payload",
    [
        {"true_label": 10},
        {"true_label": -1},
        {"true_label": "x"},
        {},
        {"true_label": 1.5},
        # Labels are strict integers: true would be stored as 1.
        {"true_label": True},
        {"true_label": False},
        {"true_label": "1"},
    ],
)
def test_bad_correction_is_422(client: TestClient, payload: dict[str, object]) -> None:
    created = post_drawing(client).json()
    assert client.patch(f"/api/predictions/{created['id']}", json=payload).status_code == 422


def test_unknown_ids_are_404(client: TestClient) -> None:
    unknown = uuid.uuid4()
    for response in (
        client.patch(f"/api/predictions/{unknown}", json={"true_label": 1}),
        client.get(f"/api/predictions/{unknown}"),
        client.get(f"/api/predictions/{unknown}/image"),
        client.get(f"/api/predictions/{unknown}/input"),
    ):
        assert response.status_code == 404
        assert "detail" in response.json()
    assert client.get("/api/predictions/not-a-uuid").status_code == 422


def test_stored_images(client: TestClient) -> None:
    created = post_drawing(client, drawing(1000)).json()
    image = client.get(f"/api/predictions/{created['id']}/image")
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert max(Image.open(io.BytesIO(image.content)).size) <= 560  # size-capped
    model_input = client.get(f"/api/predictions/{created['id']}/input")
    assert model_input.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(model_input.content)).size == (28, 28)

    small = drawing(280)
    created = post_drawing(client, small).json()
    assert client.get(f"/api/predictions/{created['id']}/image").content == small


@pytest.mark.parametrize("raw", [b'{"true_label": Infinity}', b'{"true_label": NaN}', b"\xff\xfe"])
def test_non_json_numbers_and_bytes_are_422_not_500(client: TestClient, raw: bytes) -> None:
    created = post_drawing(client).json()
    response = client.patch(
        f"/api/predictions/{created['id']}",
        content=raw,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422 and "detail" in response.json()


def test_decompression_bomb_is_refused_before_decoding(client: TestClient) -> None:
    bomb = png_bytes(Image.new("1", (5000, 5000), 1))  # a few KB on the wire, 25 Mpx decoded
    assert len(bomb) < 100_000
    response = post_drawing(client, bomb)
    assert response.status_code == 413
    assert "pixels" in response.json()["detail"]


@pytest.mark.parametrize("value", [str(uuid.uuid4()), "not-a-uuid"])
def test_session_id_as_form_field_json_field_or_query_parameter_is_422(
    client: TestClient, value: str
) -> None:
    """The session is the X-Session-Token header; a client-chosen id could claim another's."""
    encoded = base64.b64encode(drawing()).decode()
    sent = [
        client.post(
            "/api/predictions",
            files={"image": ("d.png", drawing(), "image/png")},
            data={"session_id": value},
        ),
        client.post("/api/predictions", json={"image": encoded, "session_id": value}),
        client.post(
            "/api/predictions",
            params={"session_id": value},
            content=drawing(),
            headers={"content-type": "image/png"},
        ),
        client.post(
            "/api/predictions",
            params={"session_id": value},
            files={"image": ("d.png", drawing(), "image/png")},
        ),
    ]
    assert [r.status_code for r in sent] == [422] * 4
    assert all("X-Session-Token" in r.text for r in sent)
    assert client.get("/api/predictions").json()["total"] == 0


def test_history_session_filter_takes_a_uuid(client: TestClient) -> None:
    assert client.get("/api/predictions", params={"session_id": "x"}).status_code == 422

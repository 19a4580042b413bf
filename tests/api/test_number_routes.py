"""POST /api/numbers and the rest of /api/numbers, on both databases: what is stored (the number
and each digit as a prediction row), who may see and change it, what is refused, corrections,
and the outage, session deletion and purge paths numbers share with predictions."""

from __future__ import annotations

import base64
import io
import json
import uuid
from pathlib import Path

import numpy as np
import pytest
from api_helpers import (
    SESSION_HEADER,
    MakeClient,
    bars,
    blank,
    new_session,
    png_bytes,
    post_drawing,
    post_number,
    session_of,
    unreachable,
)
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select

from digits.api.store import PredictionStore
from digits.config import SHIPPED_WEIGHTS
from digits.data import pen
from digits.db.models import NumberRow, PredictionRow
from digits.predict import Predictor
from digits.synth import pen_numbers

ADMIN = "a" * 40


def _digit_rows(client: TestClient, number_id: str) -> list[PredictionRow]:
    store: PredictionStore = client.app.state.store  # type: ignore[attr-defined]
    with store.database.read() as session:
        rows = session.scalars(
            select(PredictionRow)
            .where(PredictionRow.number_id == uuid.UUID(number_id))
            .order_by(PredictionRow.position)
        ).all()
        session.expunge_all()
        return list(rows)


def _count(client: TestClient, model: type) -> int:
    store: PredictionStore = client.app.state.store  # type: ignore[attr-defined]
    with store.database.read() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_a_number_is_stored_with_each_digit_as_a_prediction_row(client: TestClient) -> None:
    response = post_number(client, bars(3), source="canvas")
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {
        "id", "number", "confidence", "status", "digits", "model_version", "created_at"
    }  # fmt: skip
    assert response.headers["Location"] == f"/api/numbers/{body['id']}"
    assert len(body["number"]) == len(body["digits"]) == 3
    assert body["status"] in {"ok", "uncertain", "not_a_number"}
    assert 0.0 <= body["confidence"] <= 1.0
    lefts = []
    for entry in body["digits"]:
        fields = {"id", "digit", "confidence", "probabilities", "status", "box", "adapted", "like"}
        assert set(entry) == fields
        assert (entry["adapted"], entry["like"]) == (False, [])  # the session labelled nothing
        assert len(entry["probabilities"]) == 10
        assert sum(entry["probabilities"]) == pytest.approx(1.0, abs=1e-5)
        x0, y0, x1, y1 = entry["box"]
        assert 0 <= x0 < x1 <= 80 + 120 * 3 and 0 <= y0 < y1 <= 280
        lefts.append(x0)
    assert lefts == sorted(lefts)
    assert body["number"] == "".join(str(d["digit"]) for d in body["digits"])

    rows = _digit_rows(client, body["id"])
    assert [str(r.id) for r in rows] == [d["id"] for d in body["digits"]]
    assert [r.position for r in rows] == [0, 1, 2]
    assert [r.box for r in rows] == [d["box"] for d in body["digits"]]
    assert all(r.session_id == session_of(client) and r.source == "canvas" for r in rows)
    assert all(r.input_png.startswith(b"\x89PNG") for r in rows)

    # GET /api/predictions lists what was posted there only; the digits show under their number
    assert client.get("/api/predictions").json() == {"items": [], "total": 0}
    single = post_drawing(client).json()
    assert [r["id"] for r in client.get("/api/predictions").json()["items"]] == [single["id"]]
    digit = client.get(f"/api/predictions/{rows[0].id}")
    assert digit.status_code == 200 and digit.json()["digit"] == body["digits"][0]["digit"]

    listed = client.get("/api/numbers").json()
    assert listed["total"] == 1 and listed["items"][0]["id"] == body["id"]
    record = client.get(f"/api/numbers/{body['id']}").json()
    assert {k: record[k] for k in body} == body
    assert record["source"] == "canvas" and record["true_number"] is None
    assert record["session_id"] == str(session_of(client))
    image = client.get(f"/api/numbers/{body['id']}/image")
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(image.content)).size == (440, 280)


def test_every_kind_of_body_and_strokes(client: TestClient) -> None:
    image = bars(2)
    strokes = [[[60, 50], [64, 230]], [[180, 50], [184, 230]]]
    as_json = client.post(
        "/api/numbers",
        json={"image": base64.b64encode(image).decode(), "strokes": strokes, "source": "api"},
    )
    assert as_json.status_code == 201, as_json.text
    as_form = post_number(client, image, strokes=json.dumps(strokes))
    assert as_form.status_code == 201, as_form.text
    raw = client.post(
        "/api/numbers?source=upload", content=image, headers={"Content-Type": "image/png"}
    )
    assert raw.status_code == 201, raw.text
    rgba = Image.open(io.BytesIO(image))
    paper = Image.new("RGB", rgba.size, "white")
    paper.paste(rgba, mask=rgba)
    jpeg = png_bytes(paper, "JPEG")
    raw_jpeg = client.post("/api/numbers", content=jpeg, headers={"Content-Type": "image/jpeg"})
    assert raw_jpeg.status_code == 201, raw_jpeg.text
    store: PredictionStore = client.app.state.store  # type: ignore[attr-defined]
    with store.database.read() as session:
        kept = session.get(NumberRow, uuid.UUID(as_form.json()["id"]))
        assert kept is not None and kept.strokes == strokes
    other = client.post("/api/numbers", content=b"x", headers={"Content-Type": "text/plain"})
    assert other.status_code == 415


@pytest.mark.parametrize(
    "strokes",
    [
        [[[1, 1]]] * 65,  # 65 strokes
        [[[i, i] for i in range(2049)]] * 2,  # 4,098 points
        "not json",
        [[["a", 1]]],
        [[[1, 2, 3]]],
        {"a": 1},
    ],
)
def test_strokes_past_the_limits_or_malformed_are_422(client: TestClient, strokes: object) -> None:
    text = strokes if isinstance(strokes, str) else json.dumps(strokes)
    response = post_number(client, bars(2), strokes=text)
    assert response.status_code == 422, response.text
    if not isinstance(strokes, str):
        body = {"image": base64.b64encode(bars(2)).decode(), "strokes": strokes}
        assert client.post("/api/numbers", json=body).status_code == 422
    assert _count(client, NumberRow) == 0


def test_refused_drawings_and_fields(make_client: MakeClient) -> None:
    with make_client(max_number_digits=3) as client:
        too_many = post_number(client, bars(4))
        assert too_many.status_code == 422 and "at most 3 digits" in too_many.json()["detail"]
        empty = post_number(client, blank())
        assert empty.status_code == 422 and empty.json()["detail"].startswith("empty drawing")
        assert post_number(client, bars(2), source="fax").status_code == 422
        assert post_number(client, bars(2), session_id=str(uuid.uuid4())).status_code == 422
        assert post_number(client, b"not an image").status_code == 415
        assert _count(client, NumberRow) == _count(client, PredictionRow) == 0
        for bad in ("limit=0", "limit=501", "offset=-1", "status=maybe", "outcome=x", "since=1"):
            assert client.get(f"/api/numbers?{bad}").status_code == 422, bad


def test_the_default_limit_is_twelve_digits(client: TestClient) -> None:
    assert post_number(client, bars(12)).status_code == 201
    assert post_number(client, bars(13)).status_code == 422


def test_numbers_are_their_sessions_own(make_client: MakeClient) -> None:
    with make_client(session=False, admin_token=ADMIN) as client:
        first = post_number(client)  # no token: a new session, as for POST /api/predictions
        assert first.status_code == 201
        token = first.json()["session_token"]
        mine = {SESSION_HEADER: token}
        number_id = first.json()["id"]
        for path in (f"/api/numbers/{number_id}", f"/api/numbers/{number_id}/image"):
            assert client.get(path, headers=mine).status_code == 200
            assert client.get(path).status_code == 401
        assert client.get("/api/numbers").status_code == 401
        with_token = client.post(
            "/api/numbers",
            files={"image": ("n.png", bars(2), "image/png")},
            headers=mine,
        )
        assert with_token.status_code == 201 and "session_token" not in with_token.json()

        other = {SESSION_HEADER: new_session(client)}
        for path in (f"/api/numbers/{number_id}", f"/api/numbers/{number_id}/image"):
            response = client.get(path, headers=other)
            assert response.status_code == 404 and "detail" in response.json()
        patched = client.patch(
            f"/api/numbers/{number_id}", json={"true_number": "123"}, headers=other
        )
        assert patched.status_code == 404
        assert client.get("/api/numbers", headers=other).json()["total"] == 0
        assert client.get("/api/numbers", headers=mine).json()["total"] == 2
        admin = {"Authorization": f"Bearer {ADMIN}"}
        assert client.get("/api/numbers", headers=admin).json()["total"] == 2
        assert client.get(f"/api/numbers/{number_id}", headers=admin).status_code == 200
        assert client.get(f"/api/numbers/{uuid.uuid4()}", headers=mine).status_code == 404


def test_patch_labels_the_digits_only_with_a_number_of_their_count(client: TestClient) -> None:
    number = post_number(client, bars(3)).json()
    url = f"/api/numbers/{number['id']}"
    same = client.patch(url, json={"true_number": "407"})
    assert same.status_code == 200
    assert same.json()["true_number"] == "407" and same.json()["not_a_number"] is False
    assert same.json()["labelled_at"] is not None
    assert [r.true_label for r in _digit_rows(client, number["id"])] == [4, 0, 7]
    digit_id = number["digits"][1]["id"]
    assert client.get(f"/api/predictions/{digit_id}").json()["true_label"] == 0

    longer = client.patch(url, json={"true_number": "4071"})
    assert longer.status_code == 200 and longer.json()["true_number"] == "4071"
    rows = _digit_rows(client, number["id"])
    assert [r.true_label for r in rows] == [None] * 3  # withdrawn: they would contradict it
    assert all(r.first_labelled_at is not None for r in rows)  # counted once, still

    nothing = client.patch(url, json={"not_a_number": True})
    assert nothing.status_code == 200
    assert nothing.json()["not_a_number"] is True and nothing.json()["true_number"] is None
    assert [r.true_label for r in _digit_rows(client, number["id"])] == [None] * 3
    assert [r.not_a_digit for r in _digit_rows(client, number["id"])] == [False] * 3

    for bad in (
        {"true_number": "40a"},
        {"true_number": ""},
        {"true_number": "1" * 13},
        {"true_number": 407},
        {"not_a_number": False},
        {"true_number": "407", "not_a_number": True},
        {},
    ):
        assert client.patch(url, json=bad).status_code == 422, bad
    assert (
        client.patch(f"/api/numbers/{uuid.uuid4()}", json={"true_number": "1"}).status_code == 404
    )


def test_history_filters_and_the_same_drawing(client: TestClient) -> None:
    drawing_id = str(uuid.uuid4())
    first = post_number(client, bars(2), drawing_id=drawing_id).json()
    again = post_number(client, bars(3), drawing_id=drawing_id).json()
    assert again["id"] == first["id"] and len(again["digits"]) == 3  # the drawing grew
    assert _count(client, NumberRow) == 1 and _count(client, PredictionRow) == 3
    client.patch(f"/api/numbers/{first['id']}", json={"true_number": again["number"]})
    after = post_number(client, bars(3), drawing_id=drawing_id).json()
    assert after["id"] != first["id"]  # a corrected number is kept; the new reading is its own
    wrong = post_number(client, bars(2)).json()
    wrong_label = "99" if wrong["number"] != "99" else "98"
    client.patch(f"/api/numbers/{wrong['id']}", json={"true_number": wrong_label})
    gone = post_number(client, bars(1)).json()
    client.patch(f"/api/numbers/{gone['id']}", json={"not_a_number": True})

    def ids(query: str) -> set[str]:
        page = client.get(f"/api/numbers?{query}").json()
        return {item["id"] for item in page["items"]}

    assert ids("outcome=correct") == {first["id"]}
    assert ids("outcome=wrong") == {wrong["id"]}
    assert ids("outcome=labelled") == {first["id"], wrong["id"], gone["id"]}
    assert ids("outcome=unlabelled") == {after["id"]}
    assert ids(f"status={again['status']}") >= {first["id"]}
    assert ids("limit=1") == {gone["id"]}  # newest first
    assert ids("until=2000-01-01T00:00:00%2B00:00") == set()
    assert len(ids("since=2000-01-01T00:00:00%2B00:00")) == 4

    stats = client.get("/api/stats").json()
    assert stats["numbers"] == 4 and stats["numbers_labelled"] == 2
    assert stats["numbers_correct"] == 1 and stats["number_accuracy"] == 0.5
    assert stats["total"] == _count(client, PredictionRow)  # the digits count as predictions


def test_numbers_survive_an_outage(client: TestClient, backend: str, tmp_path: Path) -> None:
    store: PredictionStore = client.app.state.store  # type: ignore[attr-defined]
    healthy = store.database
    before = post_number(client, bars(2)).json()
    store.database = unreachable(backend, tmp_path)

    made = post_number(client, bars(3))
    assert made.status_code == 201
    number = made.json()
    drawing_id = str(uuid.uuid4())
    open_ = post_number(client, bars(1), drawing_id=drawing_id).json()
    grown = post_number(client, bars(2), drawing_id=drawing_id).json()
    assert grown["id"] == open_["id"]
    spooled = client.get(f"/api/numbers/{number['id']}")
    assert spooled.status_code == 503 and "spool" in spooled.json()["detail"]
    assert client.get(f"/api/numbers/{number['id']}/image").status_code == 503
    labelled = client.patch(f"/api/numbers/{number['id']}", json={"true_number": "123"})
    assert labelled.status_code == 200 and labelled.json()["true_number"] == "123"
    old = client.patch(f"/api/numbers/{before['id']}", json={"not_a_number": True})
    assert old.status_code == 200
    unknown = client.patch(f"/api/numbers/{uuid.uuid4()}", json={"true_number": "1"})
    assert unknown.status_code == 503
    assert client.get("/api/numbers").status_code == 503

    store.database = healthy
    assert store.replay() == store.replay() + 5  # the second replay finds nothing left
    record = client.get(f"/api/numbers/{number['id']}").json()
    assert record["true_number"] == "123" and record["digits"] == number["digits"]
    assert [r.true_label for r in _digit_rows(client, number["id"])] == [1, 2, 3]
    assert len(client.get(f"/api/numbers/{open_['id']}").json()["digits"]) == 2
    assert client.get(f"/api/numbers/{before['id']}").json()["not_a_number"] is True
    assert _count(client, NumberRow) == 3 and _count(client, PredictionRow) == 2 + 3 + 2
    metrics = client.get("/metrics").text
    assert 'digits_numbers_total{status="' in metrics
    assert 'digits_spooled_writes_total{kind="number"} 3.0' in metrics


def test_deleting_a_session_purging_and_deleting_all_cover_numbers(
    make_client: MakeClient,
) -> None:
    with make_client(admin_token=ADMIN) as client:
        admin = {"Authorization": f"Bearer {ADMIN}"}
        other = {SESSION_HEADER: new_session(client)}
        theirs = client.post(
            "/api/numbers", files={"image": ("n.png", bars(2), "image/png")}, headers=other
        ).json()
        mine = post_number(client, bars(3)).json()
        me = session_of(client)
        assert client.delete(f"/api/sessions/{me}").status_code == 204
        assert _count(client, NumberRow) == 1 and _count(client, PredictionRow) == 2
        assert client.get(f"/api/numbers/{mine['id']}", headers=admin).status_code == 404
        assert client.get(f"/api/numbers/{theirs['id']}", headers=other).status_code == 200

        purged = client.post("/api/admin/purge-images", headers=admin)
        assert purged.status_code == 200 and purged.json()["purged"] == 1
        image = client.get(f"/api/numbers/{theirs['id']}/image", headers=other)
        assert image.status_code == 404 and "retention" in image.json()["detail"]
        deleted = client.delete("/api/predictions", headers=admin)
        assert deleted.json()["deleted"] == 3  # the number and its two digits
        assert _count(client, NumberRow) == _count(client, PredictionRow) == 0


@pytest.fixture(scope="module")
def pen_number() -> pen_numbers.NumberDrawing:
    """A `validation` writer's "number" with normal gaps, whose digits the shipped model reads
    right one by one."""
    predictor = Predictor.from_checkpoint(SHIPPED_WEIGHTS)
    writers = pen_numbers.eligible_writers("validation")
    rng = np.random.default_rng(28)
    for own in writers.values():
        chosen = [own[int(i)] for i in rng.choice(len(own), size=4, replace=False)]
        if all(predictor.predict(pen.draw(s.strokes, rng)).digit == s.digit for s in chosen):
            return pen_numbers.compose(chosen, rng, "normal")
    raise AssertionError("no writer's digits were read right alone")


def test_the_shipped_model_reads_a_written_number(
    make_client: MakeClient, pen_number: pen_numbers.NumberDrawing
) -> None:
    shipped = Predictor.from_checkpoint(SHIPPED_WEIGHTS)
    image = png_bytes(Image.fromarray(pen_number.image))
    strokes = [s.tolist() for s in pen_number.strokes]
    with make_client(predictor_override=shipped) as client:
        body = {"image": base64.b64encode(image).decode(), "strokes": strokes}
        answer = client.post("/api/numbers", json=body).json()
        assert answer["number"] == pen_number.label
        for entry, box in zip(answer["digits"], pen_number.boxes, strict=True):
            x0, _, x1, _ = entry["box"]
            assert min(x1, box[2]) - max(x0, box[0]) > 0.5 * (box[2] - box[0])
        without = client.post("/api/numbers", json={"image": body["image"]}).json()
        assert without["number"] == pen_number.label  # an upload has no strokes

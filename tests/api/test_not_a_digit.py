"""The not_a_digit answer and the user's "not a digit" label, through the API and into the
database of each backend: records, filters, statistics, metrics, the spool and retraining data."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from api_helpers import MakeClient, drawing, post_drawing, unreachable
from fastapi.testclient import TestClient

from digits import checkpoint as ckpt
from digits.api.store import PredictionStore
from digits.db import queries
from digits.model import NUM_CLASSES, DigitNet
from digits.predict import Predictor


@pytest.fixture(scope="module")
def rejecting(tmp_path_factory: pytest.TempPathFactory) -> Predictor:
    """A small 11-class network whose threshold 0 answers every drawing not_a_digit."""
    torch.manual_seed(0)
    args = {"width": 8, "num_classes": NUM_CLASSES}
    path = tmp_path_factory.mktemp("model") / "rejecting.pt"
    ckpt.save(ckpt.from_model(DigitNet(**args), args), path)
    return Predictor(ckpt.read(path), uncertain_threshold=0.0, not_a_digit_threshold=0.0)


@pytest.fixture
def refusing(make_client: MakeClient, rejecting: Predictor) -> Iterator[TestClient]:
    with make_client(predictor_override=rejecting) as client:
        yield client


def _ids(client: TestClient, **params: object) -> set[str]:
    response = client.get("/api/predictions", params=params)
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["total"] == len(page["items"])
    return {item["id"] for item in page["items"]}


def test_not_a_digit_answer_is_stored_filtered_counted_and_measured(
    refusing: TestClient,
) -> None:
    answer = post_drawing(refusing).json()
    assert answer["status"] == "not_a_digit"
    # The best guess still comes with it: a digit and ten probabilities summing to 1.
    assert 0 <= answer["digit"] <= 9
    assert sum(answer["probabilities"]) == pytest.approx(1.0)
    record = refusing.get(f"/api/predictions/{answer['id']}").json()
    assert record["status"] == "not_a_digit" and record["not_a_digit"] is False

    assert _ids(refusing, status="not_a_digit") == {answer["id"]}
    assert _ids(refusing, status="ok") == set()
    assert _ids(refusing, status="uncertain") == set()
    assert refusing.get("/api/predictions", params={"status": "maybe"}).status_code == 422

    stats = refusing.get("/api/stats").json()
    assert (stats["total"], stats["not_a_digit"], stats["uncertain"]) == (1, 1, 0)
    metrics = refusing.get("/metrics").text
    assert f'digits_predictions_total{{digit="{answer["digit"]}",status="not_a_digit"}} 1.0' in (
        metrics
    )


def test_status_filter_separates_answers(client: TestClient) -> None:
    made = [post_drawing(client, drawing(200 + 20 * i)).json() for i in range(2)]
    assert {m["status"] for m in made} == {"ok"}
    assert _ids(client, status="ok") == {m["id"] for m in made}
    assert _ids(client, status="not_a_digit") == set()
    assert client.get("/api/stats").json()["not_a_digit"] == 0


def test_user_says_not_a_digit_then_takes_it_back(client: TestClient) -> None:
    made = [post_drawing(client, drawing(200 + 20 * i)).json() for i in range(3)]
    first, second, third = (m["id"] for m in made)
    said = client.patch(f"/api/predictions/{first}", json={"not_a_digit": True})
    assert said.status_code == 200, said.text
    assert said.json()["not_a_digit"] is True and said.json()["true_label"] is None
    assert said.json()["labelled_at"] is not None
    stored = client.get(f"/api/predictions/{first}").json()
    assert stored["not_a_digit"] is True and stored["true_label"] is None
    client.patch(f"/api/predictions/{second}", json={"true_label": made[1]["digit"]})

    assert _ids(client, not_a_digit=True) == {first}
    assert _ids(client, not_a_digit=False) == {second, third}
    assert _ids(client, outcome="labelled") == {first, second}
    assert _ids(client, outcome="unlabelled") == {third}
    stats = client.get("/api/stats").json()
    # Accuracy stays a digit matter; the "not a digit" labels are counted beside it.
    assert (stats["labelled"], stats["correct"], stats["not_a_digit_labels"]) == (1, 1, 1)

    back = client.patch(f"/api/predictions/{first}", json={"true_label": 3})
    assert back.status_code == 200
    assert back.json()["true_label"] == 3 and back.json()["not_a_digit"] is False
    assert _ids(client, not_a_digit=True) == set()
    assert client.get("/api/stats").json()["not_a_digit_labels"] == 0


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"true_label": 3, "not_a_digit": True},
        {"not_a_digit": False},
        {"not_a_digit": "yes"},
        {"true_label": None},
        {"true_label": 10},
    ],
)
def test_a_correction_is_a_digit_or_not_a_digit(client: TestClient, body: dict) -> None:
    made = post_drawing(client).json()
    response = client.patch(f"/api/predictions/{made['id']}", json=body)
    assert response.status_code == 422
    assert client.get(f"/api/predictions/{made['id']}").json()["labelled_at"] is None


def test_a_drawing_called_not_a_digit_is_not_replaced(client: TestClient) -> None:
    drawing_id = str(uuid.uuid4())
    first = post_drawing(client, drawing_id=drawing_id).json()
    client.patch(f"/api/predictions/{first['id']}", json={"not_a_digit": True})
    again = post_drawing(client, drawing(240), drawing_id=drawing_id).json()
    assert again["id"] != first["id"]
    assert client.get(f"/api/predictions/{first['id']}").json()["not_a_digit"] is True


def test_not_a_digit_label_survives_the_spool(
    client: TestClient, backend: str, tmp_path: Path
) -> None:
    store: PredictionStore = client.app.state.store  # type: ignore[attr-defined]
    healthy = store.database
    made = post_drawing(client).json()
    store.database = unreachable(backend, tmp_path)
    said = client.patch(f"/api/predictions/{made['id']}", json={"not_a_digit": True})
    assert said.status_code == 200
    assert said.json()["not_a_digit"] is True and said.json()["true_label"] is None
    store.database.dispose()
    store.database = healthy
    assert store.replay() == 1
    stored = client.get(f"/api/predictions/{made['id']}").json()
    assert stored["not_a_digit"] is True and stored["true_label"] is None


def test_retraining_data_marks_not_a_digit_labels(client: TestClient) -> None:
    made = [post_drawing(client, drawing(200 + 20 * i)).json() for i in range(3)]
    client.patch(f"/api/predictions/{made[0]['id']}", json={"true_label": 4})
    client.patch(f"/api/predictions/{made[1]['id']}", json={"not_a_digit": True})
    store: PredictionStore = client.app.state.store  # type: ignore[attr-defined]
    with store.database.read() as session:
        rows = queries.corrections(session)
    assert [(str(r.id), r.true_label, r.not_a_digit) for r in rows] == [
        (made[0]["id"], 4, False),
        (made[1]["id"], None, True),
    ]
    assert all(r.input_png.startswith(b"\x89PNG") for r in rows)

"""History, statistics, model info, health, metrics, security headers and admin operations."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from api_helpers import MakeClient, drawing, post_drawing
from fastapi.testclient import TestClient
from sqlalchemy import update

from digits import preprocess
from digits.api.app import _apply_retention
from digits.db import crud
from digits.db.models import PredictionRow


def _make(client: TestClient, n: int) -> list[dict]:
    return [post_drawing(client, drawing(200 + 20 * i)).json() for i in range(n)]


def test_list_is_newest_first_and_paginated(client: TestClient) -> None:
    made = _make(client, 5)
    page = client.get("/api/predictions", params={"limit": 2, "offset": 0}).json()
    assert page["total"] == 5
    assert [item["id"] for item in page["items"]] == [made[4]["id"], made[3]["id"]]
    rest = client.get("/api/predictions", params={"limit": 10, "offset": 2}).json()
    assert [item["id"] for item in rest["items"]] == [m["id"] for m in reversed(made[:3])]
    assert client.get("/api/predictions", params={"limit": 0}).status_code == 422
    assert client.get("/api/predictions", params={"limit": 10_000}).status_code == 422
    assert client.get("/api/predictions", params={"limit": 500}).status_code == 200
    assert client.get("/api/predictions", params={"offset": 1_000_000}).status_code == 200
    for offset in (-1, 1_000_001, 9223372036854775808):  # the last was a 500 (bigint overflow)
        assert client.get("/api/predictions", params={"offset": offset}).status_code == 422


# A real 28x28 input: a label teaches the row's session from it (digits.api.memory).
BLANK_INPUT = preprocess.input_to_png(np.zeros((28, 28), np.float32))


def _insert(client: TestClient, rows: list[tuple[int, str, uuid.UUID | None]]) -> list[str]:
    """Predictions of chosen digits (digit, status, session), a second apart, oldest first."""
    store = client.app.state.store  # type: ignore[attr-defined]
    start = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    ids = []
    with store.database.write() as session:
        for i, (digit, status, session_id) in enumerate(rows):
            row = PredictionRow(
                id=uuid.uuid4(), created_at=start + timedelta(seconds=i), digit=digit,
                confidence=0.9, probabilities=[0.1] * 10, status=status, source="api",
                drawing_id=None, session_id=session_id, model_version="v", image_png=None,
                input_png=BLANK_INPUT, latency_ms=1.0,
            )  # fmt: skip
            ids.append(str(crud.record_prediction(session, row=row)))
    return ids


ADMIN = "an-admin-token-of-at-least-32-characters"


@pytest.fixture
def admin_client(make_client: MakeClient) -> Iterator[TestClient]:
    """The operator's view: every session's predictions."""
    with make_client(admin_token=ADMIN) as client:
        client.headers["Authorization"] = f"Bearer {ADMIN}"
        yield client


def test_filters(admin_client: TestClient) -> None:
    client = admin_client
    mine = uuid.uuid4()
    made = _insert(
        client,
        [(3, "ok", mine), (3, "uncertain", None), (5, "ok", mine), (7, "not_a_digit", None),
         (8, "ok", None)],
    )  # fmt: skip
    client.patch(f"/api/predictions/{made[0]}", json={"true_label": 3})
    client.patch(f"/api/predictions/{made[2]}", json={"true_label": 6})
    client.patch(f"/api/predictions/{made[3]}", json={"not_a_digit": True})

    def ids(**params: object) -> set[int]:
        page = client.get("/api/predictions", params=params).json()
        assert page["total"] == len(page["items"])
        return {made.index(item["id"]) for item in page["items"]}

    assert ids() == {0, 1, 2, 3, 4}
    assert ids(digit=3) == {0, 1}
    assert ids(digit=5) == {2}
    assert ids(digit=0) == set()
    assert ids(true_label=6) == {2}
    assert ids(outcome="correct") == {0}
    assert ids(outcome="wrong") == {2}
    assert ids(outcome="unlabelled") == {1, 4}
    assert ids(outcome="labelled") == {0, 2, 3}
    assert ids(not_a_digit="true") == {3}
    assert ids(not_a_digit="false") == {0, 1, 2, 4}
    assert ids(status="uncertain") == {1}
    assert ids(status="not_a_digit") == {3}
    assert ids(session_id=str(mine)) == {0, 2}
    assert ids(digit=3, outcome="unlabelled") == {1}
    assert ids(since="2026-03-01T12:00:02+00:00") == {2, 3, 4}
    assert ids(until="2026-03-01T12:00:02Z") == {0, 1}
    assert ids(since="2026-03-01T13:00:01+01:00", until="2026-03-01T12:00:03+00:00") == {1, 2}


@pytest.mark.parametrize(
    "params",
    [
        {"since": "2026-01-01T00:00:00"},  # no offset
        {"until": "0.5"},  # a number is no date
        {"since": "1767225600"},
        {"outcome": "maybe"},
        {"digit": 11},
        {"status": "fine"},
        {"not_a_digit": "perhaps"},
        {"session_id": "not-a-uuid"},
        {"limit": 0},
        {"limit": 501},
        {"offset": -1},
        {"offset": 1_000_001},
    ],
)
def test_filters_refuse_bad_values(client: TestClient, params: dict[str, object]) -> None:
    response = client.get("/api/predictions", params=params)
    assert response.status_code == 422
    assert [error["loc"][-1] for error in response.json()["detail"]] == list(params)


def test_stats(client: TestClient) -> None:
    empty = client.get("/api/stats").json()
    assert empty["total"] == 0 and empty["accuracy"] is None
    made = _make(client, 3)
    first, second = made[0], made[1]
    client.patch(f"/api/predictions/{first['id']}", json={"true_label": first["digit"]})
    other = (second["digit"] + 1) % 10
    client.patch(f"/api/predictions/{second['id']}", json={"true_label": other})
    stats = client.get("/api/stats").json()
    assert (stats["total"], stats["labelled"], stats["correct"]) == (3, 2, 1)
    assert stats["accuracy"] == 0.5
    assert stats["mean_confidence"] == pytest.approx(sum(m["confidence"] for m in made) / 3)
    matrix = stats["confusion_matrix"]
    assert matrix[first["digit"]][first["digit"]] >= 1
    assert matrix[other][second["digit"]] == 1
    assert sum(map(sum, matrix)) == 2
    assert stats["per_model_version"] == [
        {"model_version": first["model_version"], "labelled": 2, "accuracy": 0.5}
    ]
    assert len(stats["reliability"]) == 10
    assert sum(b["count"] for b in stats["reliability"]) == 2
    assert stats["per_digit_accuracy"][str(other)] == 0.0


def test_model_info(client: TestClient) -> None:
    body = client.get("/api/model").json()
    assert body["version"] == post_drawing(client).json()["model_version"]
    assert body["temperature"] > 0 and isinstance(body["metrics"], dict)


def test_health_readiness_and_metrics(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ok" and body["spool_depth"] == 0
    assert {name: c["status"] for name, c in body["checks"].items()} == {
        "model": "ok",
        "database": "ok",
        "spool": "ok",
    }
    created = post_drawing(client).json()
    client.patch(f"/api/predictions/{created['id']}", json={"true_label": 1})
    post_drawing(client, b"junk")
    text = client.get("/metrics").text
    assert f'digits_predictions_total{{digit="{created["digit"]}",status="ok"}} 1.0' in text
    assert "digits_corrections_total 1.0" in text
    assert 'digits_http_errors_total{status="415"} 1.0' in text
    assert "digits_http_request_duration_seconds_bucket" in text
    assert "digits_db_errors_total 0.0" in text
    assert "digits_spool_depth 0.0" in text


def test_security_headers_and_request_id(client: TestClient) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["referrer-policy"] == "no-referrer"
    generated = client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
    assert len(generated.headers["x-request-id"]) == 32


def test_trusted_hosts_and_cors(make_client: MakeClient) -> None:
    with make_client(trusted_hosts=["testserver"], cors_origins=["http://ui.example"]) as client:
        assert client.get("/healthz").status_code == 200
        refused = client.get("/healthz", headers={"host": "evil.example"})
        assert refused.status_code == 400 and "Host" in refused.json()["detail"]
        # Two Host headers, the good one last: the check and the app could read different ones.
        twice = client.get("/healthz", headers=[("host", "evil.example"), ("host", "testserver")])
        assert twice.status_code == 400
        preflight = client.options(
            "/api/predictions",
            headers={
                "Origin": "http://ui.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "x-session-token",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "http://ui.example"
        assert "x-session-token" in preflight.headers["access-control-allow-headers"].lower()
        other = client.get("/healthz", headers={"Origin": "http://other.example"})
        assert "access-control-allow-origin" not in other.headers


def test_admin_operations_need_the_token(make_client: MakeClient) -> None:
    with make_client() as client:
        assert client.delete("/api/predictions").status_code == 403  # no token configured
    with make_client(admin_token="s3cret-token") as client:
        created = post_drawing(client).json()
        client.patch(f"/api/predictions/{created['id']}", json={"true_label": 4})
        missing = client.post("/api/admin/purge-images")
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        wrong = {"Authorization": "Bearer nope"}
        assert client.post("/api/admin/purge-images", headers=wrong).status_code == 403
        assert client.delete("/api/predictions", headers=wrong).status_code == 403
        good = {"Authorization": "Bearer s3cret-token"}
        assert client.post("/api/admin/purge-images", headers=good).json() == {"purged": 1}
        assert client.get(f"/api/predictions/{created['id']}/image").status_code == 404
        assert client.get(f"/api/predictions/{created['id']}/input").status_code == 200
        assert client.get(f"/api/predictions/{created['id']}").json()["true_label"] == 4
        assert client.delete("/api/predictions", headers=good).json() == {"deleted": 1}
        assert client.get("/api/predictions").json()["total"] == 0


def test_retention_drops_old_drawings_only(client: TestClient) -> None:
    old, new = post_drawing(client).json(), post_drawing(client).json()
    client.patch(f"/api/predictions/{old['id']}", json={"true_label": 2})
    store = client.app.state.store  # type: ignore[attr-defined]
    with store.database.write() as session:
        session.execute(
            update(PredictionRow)
            .where(PredictionRow.id == uuid.UUID(old["id"]))
            .values(created_at=datetime.now(UTC) - timedelta(days=40))
        )
    _apply_retention(store, 30)
    assert client.get(f"/api/predictions/{old['id']}/image").status_code == 404
    assert client.get(f"/api/predictions/{old['id']}/input").status_code == 200
    assert client.get(f"/api/predictions/{old['id']}").json()["true_label"] == 2
    assert client.get(f"/api/predictions/{new['id']}/image").status_code == 200


def test_openapi_documents_both_request_bodies(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/api/predictions"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/json"} <= set(body)
    assert client.get("/docs").status_code == 200

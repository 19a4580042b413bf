"""Every log line is one JSON object, and every line logged while serving a request carries
that request's id (the one echoed in ``X-Request-ID``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from api_helpers import post_drawing
from fastapi.testclient import TestClient

from digits.api.store import PredictionStore
from digits.db.session import Database
from digits.logs import configure_logging


def test_lines_are_json_with_the_request_id(
    client: TestClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store: PredictionStore = client.app.state.store  # type: ignore[attr-defined]
    store.database = Database(f"sqlite:///{tmp_path / 'gone' / 'x.sqlite3'}")  # forces a warning
    configure_logging("INFO")  # bind the handler to the stderr this test captures
    capsys.readouterr()
    response = post_drawing(client)
    assert response.status_code == 201
    request_id = response.headers["x-request-id"]
    records = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.strip()]
    ours = [r for r in records if r["logger"].startswith("digits")]
    assert {r["logger"] for r in ours} >= {"digits.api.store", "digits.access"}
    assert all(r["request_id"] == request_id for r in ours)
    access = next(r for r in ours if r["logger"] == "digits.access")
    assert access["status"] == 201 and access["route"] == "/api/predictions"
    assert access["duration_ms"] > 0

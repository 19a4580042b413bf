"""Every log line is one JSON object, and every line logged while serving a request carries
that request's id (the one echoed in ``X-Request-ID``)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from api_helpers import MakeClient, post_drawing
from fastapi.testclient import TestClient

from digits.api.sessions import token_fingerprint
from digits.api.store import PredictionStore
from digits.db.session import Database
from digits.logs import TextFormatter, configure_logging


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
    assert access["client"] == "testclient"  # the socket's peer (TestClient's name for it)


def test_access_lines_name_the_client_behind_a_trusted_proxy_and_the_admin_token(
    make_client: MakeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    admin = "an-admin-token-of-at-least-32-characters"
    with make_client(admin_token=admin, trusted_proxies=["0.0.0.0/0", "::/0"]) as client:
        configure_logging("INFO")
        capsys.readouterr()
        # TestClient's peer is "testclient", not an address: it is no trusted proxy.
        client.get("/healthz", headers={"X-Forwarded-For": "203.0.113.9"})
        client.delete("/api/predictions", headers={"Authorization": f"Bearer {admin}"})
        client.delete("/api/predictions", headers={"Authorization": "Bearer wrong"})
    records = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.strip()]
    access = [r for r in records if r["logger"] == "digits.access"]
    assert access[0]["client"] == "testclient" and "admin_token_fp" not in access[0]
    assert access[1]["admin_token_fp"] == token_fingerprint(admin)
    assert access[2]["admin_token_fp"] == token_fingerprint("wrong")
    assert admin not in "".join(json.dumps(r) for r in records)


def test_text_lines_escape_control_characters() -> None:
    record = logging.makeLogRecord(
        {"msg": "GET %s 404", "args": ("/x\r\n2026-01-01 INFO forged\x1b[2J",), "levelname": "INFO"}
    )
    record.request_id = None
    line = TextFormatter().format(record)
    assert "\n" not in line and "\r" not in line and "\x1b" not in line
    assert "/x\\x0d\\x0a2026-01-01 INFO forged\\x1b[2J 404" in line

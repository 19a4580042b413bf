"""Server-issued sessions: a session sees and changes only its own rows; the admin sees all."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from api_helpers import (
    SESSION_HEADER,
    MakeClient,
    drawing,
    new_session,
    post_drawing,
    session_of,
    unreachable,
)
from fastapi.testclient import TestClient
from sqlalchemy import select, text, update

from digits.api import sessions as sessions_module
from digits.api.sessions import SessionAuthority
from digits.db.models import PredictionRow, SessionRow, utcnow

ADMIN = "an-admin-token-of-at-least-32-characters"
BEARER = {"Authorization": f"Bearer {ADMIN}"}


def _as(token: str | None) -> dict[str, str]:
    return {SESSION_HEADER: token} if token is not None else {}


def _post(client: TestClient, token: str | None, **form: str) -> dict:
    response = client.post(
        "/api/predictions",
        files={"image": ("d.png", drawing(), "image/png")},
        data=form,
        headers=_as(token),
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


@pytest.fixture
def anonymous(make_client: MakeClient) -> Iterator[TestClient]:
    """A client that sends no session token of its own; requests say whose they are."""
    with make_client(session=False, admin_token=ADMIN) as client:
        yield client


def test_a_new_session_acts_through_its_token(anonymous: TestClient) -> None:
    created = anonymous.post("/api/sessions")
    assert created.status_code == 201
    body = created.json()
    assert set(body) == {"session_id", "session_token"}
    token = body["session_token"]
    made = _post(anonymous, token)
    assert "session_token" not in made  # a request with a token makes no new session
    record = anonymous.get(f"/api/predictions/{made['id']}", headers=_as(token)).json()
    assert record["session_id"] == body["session_id"]


def test_a_tokenless_post_makes_a_session_that_can_read_and_label(anonymous: TestClient) -> None:
    made = _post(anonymous, None)
    token = made["session_token"]
    labelled = anonymous.patch(
        f"/api/predictions/{made['id']}", json={"true_label": 3}, headers=_as(token)
    )
    assert labelled.status_code == 200 and labelled.json()["true_label"] == 3
    second = _post(anonymous, None)
    assert second["session_token"] != token  # every token-less POST is a session of its own
    page = anonymous.get("/api/predictions", headers=_as(token)).json()
    assert [item["id"] for item in page["items"]] == [made["id"]]


def _expired_token(authority: SessionAuthority, monkeypatch: pytest.MonkeyPatch) -> str:
    long_ago = utcnow() - authority.ttl - timedelta(days=1)
    with monkeypatch.context() as patch:
        patch.setattr(sessions_module, "utcnow", lambda: long_ago)
        return authority.issue()[1]


def test_bad_tokens_are_401_naming_the_header_and_make_no_session(
    anonymous: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    authority: SessionAuthority = anonymous.app.state.sessions  # type: ignore[attr-defined]
    good = new_session(anonymous)
    payload, _, signature = good.partition(".")
    foreign = SessionAuthority(b"another key", authority.database, authority.ttl).issue()[1]
    bad = {
        "unknown": foreign,
        "malformed": "not-a-token",
        "tampered": f"{payload}.{signature[:-2]}AA",
        "expired": _expired_token(authority, monkeypatch),
        "empty": "",
    }
    for why, token in bad.items():
        for response in (
            anonymous.post(
                "/api/predictions",
                files={"image": ("d.png", drawing(), "image/png")},
                headers=_as(token),
            ),
            anonymous.get("/api/predictions", headers=_as(token)),
        ):
            assert response.status_code == 401, (why, response.text)
            assert "X-Session-Token" in response.json()["detail"], why
    assert anonymous.get("/api/predictions", headers=BEARER).json()["total"] == 0


def test_a_session_unused_for_the_ttl_expires(anonymous: TestClient) -> None:
    token = new_session(anonymous)
    made = _post(anonymous, token)
    store = anonymous.app.state.store  # type: ignore[attr-defined]
    ttl = anonymous.app.state.sessions.ttl  # type: ignore[attr-defined]
    with store.database.write() as session:
        session.execute(update(SessionRow).values(last_seen_at=utcnow() - ttl - timedelta(hours=1)))
    assert anonymous.get("/api/predictions", headers=_as(token)).status_code == 401
    # Its rows stay (retraining keeps them under the usual retention).
    assert anonymous.get(f"/api/predictions/{made['id']}", headers=BEARER).status_code == 200


def test_use_keeps_a_session_alive(anonymous: TestClient) -> None:
    token = new_session(anonymous)
    _post(anonymous, token)
    store = anonymous.app.state.store  # type: ignore[attr-defined]
    ttl = anonymous.app.state.sessions.ttl  # type: ignore[attr-defined]
    with store.database.write() as session:
        session.execute(update(SessionRow).values(last_seen_at=utcnow() - ttl + timedelta(hours=2)))
    assert anonymous.get("/api/predictions", headers=_as(token)).status_code == 200
    with store.database.read() as session:
        seen = session.scalars(select(SessionRow.last_seen_at)).one()
    assert utcnow() - seen < timedelta(minutes=1)


def test_tokens_never_reach_the_logs_or_the_database(
    anonymous: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    made = _post(anonymous, None)
    token = made["session_token"]
    anonymous.patch(f"/api/predictions/{made['id']}", json={"true_label": 1}, headers=_as(token))
    anonymous.get("/api/predictions", headers=_as(token))
    anonymous.get("/api/predictions", headers=_as(token + "x"))
    for record in caplog.records:
        assert token not in record.getMessage()
        assert all(token not in str(value) for value in record.__dict__.values())
    store = anonymous.app.state.store  # type: ignore[attr-defined]
    signature = token.partition(".")[2]
    with store.database.read() as session:
        for table in ("predictions", "sessions"):
            for row in session.execute(text(f"SELECT * FROM {table}")):
                assert all(signature not in str(value) for value in row)


def test_a_session_sees_and_changes_only_its_own_rows(anonymous: TestClient) -> None:
    mine, theirs = new_session(anonymous), new_session(anonymous)
    drawing_id = str(uuid.uuid4())
    made = _post(anonymous, mine, drawing_id=drawing_id)
    path = f"/api/predictions/{made['id']}"
    for suffix in ("", "/image", "/input"):
        assert anonymous.get(path + suffix, headers=_as(mine)).status_code == 200
        assert anonymous.get(path + suffix, headers=_as(theirs)).status_code == 404
        assert anonymous.get(path + suffix).status_code == 401
    assert anonymous.patch(path, json={"true_label": 2}, headers=_as(theirs)).status_code == 404
    assert anonymous.patch(path, json={"true_label": 2}).status_code == 401
    # Reusing another session's drawing_id makes a row of its own; the first one is untouched.
    reused = _post(anonymous, theirs, drawing_id=drawing_id)
    assert reused["id"] != made["id"]
    assert anonymous.get(path, headers=_as(mine)).json()["created_at"] == made["created_at"]

    listed = anonymous.get("/api/predictions", headers=_as(theirs)).json()
    assert [item["id"] for item in listed["items"]] == [reused["id"]]
    mine_id = anonymous.get(path, headers=_as(mine)).json()["session_id"]
    filtered = anonymous.get(
        "/api/predictions", params={"session_id": mine_id}, headers=_as(theirs)
    ).json()
    assert filtered["total"] == 0  # the filter never reaches past the caller's own session
    assert anonymous.get("/api/predictions").status_code == 401
    assert anonymous.get("/api/stats").status_code == 200  # aggregates stay public


def test_the_admin_sees_and_labels_every_row(anonymous: TestClient) -> None:
    made = _post(anonymous, new_session(anonymous))
    other = _post(anonymous, new_session(anonymous))
    page = anonymous.get("/api/predictions", headers=BEARER).json()
    assert {item["id"] for item in page["items"]} == {made["id"], other["id"]}
    filtered = anonymous.get(
        "/api/predictions",
        params={"session_id": page["items"][0]["session_id"]},
        headers=BEARER,
    ).json()
    assert filtered["total"] == 1
    path = f"/api/predictions/{made['id']}"
    assert anonymous.patch(path, json={"true_label": 5}, headers=BEARER).json()["true_label"] == 5
    assert anonymous.get(path + "/image", headers=BEARER).status_code == 200
    wrong = {"Authorization": "Bearer not-the-admin-token"}
    assert anonymous.get("/api/predictions", headers=wrong).status_code == 403
    assert anonymous.patch(path, json={"true_label": 6}, headers=wrong).status_code == 403


def test_deleting_a_session_deletes_its_rows_and_its_token(anonymous: TestClient) -> None:
    mine, theirs = new_session(anonymous), new_session(anonymous)
    made = _post(anonymous, mine)
    kept = _post(anonymous, theirs)
    session_id = anonymous.get(f"/api/predictions/{made['id']}", headers=_as(mine)).json()[
        "session_id"
    ]
    path = f"/api/sessions/{session_id}"
    assert anonymous.delete(path, headers=_as(theirs)).status_code == 404
    assert anonymous.delete(path).status_code == 401
    assert anonymous.delete(path, headers=_as(mine)).status_code == 204
    assert anonymous.get("/api/predictions", headers=_as(mine)).status_code == 401
    assert anonymous.get(f"/api/predictions/{made['id']}", headers=BEARER).status_code == 404
    assert anonymous.get(f"/api/predictions/{kept['id']}", headers=_as(theirs)).status_code == 200
    assert anonymous.delete(path, headers=BEARER).status_code == 404  # already gone
    assert anonymous.delete(f"/api/sessions/{uuid.uuid4()}", headers=BEARER).status_code == 404
    other_id = anonymous.get(f"/api/predictions/{kept['id']}", headers=BEARER).json()["session_id"]
    assert anonymous.delete(f"/api/sessions/{other_id}", headers=BEARER).status_code == 204
    assert anonymous.get("/api/predictions", headers=_as(theirs)).status_code == 401
    assert anonymous.get("/api/predictions", headers=BEARER).json()["total"] == 0


def test_old_rows_keep_their_session_and_no_token_claims_them(anonymous: TestClient) -> None:
    made = _post(anonymous, new_session(anonymous))
    legacy = uuid.uuid4()  # a session id a client chose, before sessions were issued
    store = anonymous.app.state.store  # type: ignore[attr-defined]
    with store.database.write() as session:
        session.execute(update(PredictionRow).values(session_id=legacy))
    token = new_session(anonymous)
    assert session_of(anonymous, token) != legacy
    assert anonymous.get(f"/api/predictions/{made['id']}", headers=_as(token)).status_code == 404
    assert anonymous.get(f"/api/predictions/{made['id']}", headers=BEARER).json()[
        "session_id"
    ] == str(legacy)


def test_sessions_are_served_while_the_database_is_down(
    client: TestClient, backend: str, tmp_path: Path
) -> None:
    made = post_drawing(client).json()
    state = client.app.state  # type: ignore[attr-defined]
    healthy = state.store.database
    state.store.database = state.sessions.database = unreachable(backend, tmp_path)
    try:
        spooled = post_drawing(client)
        assert spooled.status_code == 201
        labelled = client.patch(f"/api/predictions/{made['id']}", json={"true_label": 7})
        assert labelled.status_code == 200
        fresh = client.post(
            "/api/predictions",
            files={"image": ("d.png", drawing(), "image/png")},
            headers={SESSION_HEADER: ""},
        )
        assert fresh.status_code == 401  # an empty token is no token
        anonymous = client.post(
            "/api/predictions",
            files={"image": ("d.png", drawing(), "image/png")},
            headers={SESSION_HEADER: "bogus"},
        )
        assert anonymous.status_code == 401
        del client.headers[SESSION_HEADER]
        new = post_drawing(client)
        assert new.status_code == 201 and new.json()["session_token"]
        assert state.store.spool.depth == 3
    finally:
        state.store.database = state.sessions.database = healthy
    assert state.store.replay() == 3
    client.headers[SESSION_HEADER] = new.json()["session_token"]
    assert client.get("/api/predictions").json()["total"] == 1


def test_what_a_deleted_session_spooled_is_not_replayed(
    client: TestClient, backend: str, tmp_path: Path
) -> None:
    made = post_drawing(client).json()
    session_id = str(session_of(client))
    state = client.app.state  # type: ignore[attr-defined]
    healthy = state.store.database
    state.store.database = state.sessions.database = unreachable(backend, tmp_path)
    try:
        assert post_drawing(client).status_code == 201
        assert client.patch(f"/api/predictions/{made['id']}", json={"true_label": 7}).status_code
        assert state.store.spool.depth == 2
    finally:
        state.store.database = state.sessions.database = healthy
    # The person deletes the session before the spool is replayed.
    assert client.delete(f"/api/sessions/{session_id}").status_code == 204
    assert state.store.replay() == 2
    assert state.store.spool.depth == 0
    with healthy.read() as session:
        kept = session.scalars(
            select(PredictionRow.id).where(PredictionRow.session_id == uuid.UUID(session_id))
        ).all()
    assert kept == []


def test_openapi_declares_the_session_header_as_optional(anonymous: TestClient) -> None:
    spec = anonymous.get("/openapi.json").json()
    for path, method in [
        ("/api/predictions", "post"),
        ("/api/predictions", "get"),
        ("/api/predictions/{prediction_id}", "patch"),
        ("/api/predictions/{prediction_id}/image", "get"),
        ("/api/sessions/{session_id}", "delete"),
    ]:
        parameters = spec["paths"][path][method]["parameters"]
        header = next(p for p in parameters if p["name"] == "X-Session-Token")
        assert header["in"] == "header" and not header.get("required", False), (path, method)
    created = spec["paths"]["/api/predictions"]["post"]["responses"]["201"]
    schema = created["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert "session_token" in spec["components"]["schemas"][schema]["properties"]

"""A session's memory through the API, on both databases, with the real shipped weights and real
pen drawings of `train` writers drawn onto the canvas: a correction changes the session's next
answer at once, and only that session's; workers share it through the database; it is
forgotten with the session and never mixed across model versions."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_helpers import SESSION_HEADER, MakeClient, new_session, session_of, unreachable
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from digits import checkpoint as ckpt
from digits.api import create_app
from digits.config import SHIPPED_WEIGHTS
from digits.data import pen
from digits.db.models import MemoryEntryRow, PredictionRow
from digits.memory import store as memory_store
from digits.predict import Predictor
from digits.synth.drawings import to_png
from digits.training.pen_benchmark import drawings

FLAGGED_ONES = (2437, 2445)  # train writer ibm/ee3619c94d: a 1 with a long flag, read as 7
PLAIN_ADMIN = "admin-token-for-memory-tests"


@pytest.fixture(scope="module")
def shipped() -> Predictor:
    return Predictor.from_checkpoint(SHIPPED_WEIGHTS)


@pytest.fixture(scope="module")
def train_digits() -> list[pen.PenSample]:
    return pen.load("digits", "train")


@pytest.fixture(scope="module")
def ones(train_digits: list[pen.PenSample]) -> list[bytes]:
    """The same writer's two flagged 1s, each drawn on the canvas as a PNG."""
    samples = [train_digits[i] for i in FLAGGED_ONES]
    assert {(s.writer, s.digit) for s in samples} == {("ibm/ee3619c94d", 1)}
    return [to_png(image) for image in drawings(samples, seed=7)]


@pytest.fixture
def client(make_client: MakeClient, shipped: Predictor) -> Iterator[TestClient]:
    with make_client(predictor_override=shipped, admin_token=PLAIN_ADMIN) as client:
        yield client


def mine(client: TestClient) -> dict[str, str]:
    return {"session_id": str(session_of(client))}


def post(client: TestClient, png: bytes, **headers: str) -> dict[str, Any]:
    response = client.post(
        "/api/predictions", files={"image": ("d.png", png, "image/png")}, headers=headers
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def label(client: TestClient, prediction_id: str, true_label: int | None, **headers: str) -> None:
    body = {"true_label": true_label} if true_label is not None else {"not_a_digit": True}
    response = client.patch(f"/api/predictions/{prediction_id}", json=body, headers=headers)
    assert response.status_code == 200, response.text


def entries(client: TestClient, session_id: uuid.UUID) -> list[tuple[str, int | None]]:
    """The session's memory rows: (model version, label)."""
    with client.app.state.store.database.read() as session:  # type: ignore[attr-defined]
        rows = session.execute(
            select(MemoryEntryRow.model_version, MemoryEntryRow.label).where(
                MemoryEntryRow.session_id == session_id
            )
        ).all()
    return [(version, value) for version, value in rows]


def test_a_correction_is_read_right_the_next_time_in_that_session_only(
    client: TestClient, ones: list[bytes]
) -> None:
    first = post(client, ones[0])
    assert (first["digit"], first["adapted"], first["like"]) == (7, False, [])
    label(client, first["id"], 1)

    again = post(client, ones[1])
    assert (again["digit"], again["status"], again["adapted"]) == (1, "ok", True)
    assert again["like"] == [first["id"]]
    assert sum(again["probabilities"]) == pytest.approx(1.0)
    assert again["confidence"] == pytest.approx(max(again["probabilities"]))
    stored = client.get(f"/api/predictions/{again['id']}").json()
    assert (stored["digit"], stored["adapted"], stored["like"]) == (1, True, [first["id"]])
    history = client.get("/api/predictions").json()["items"]
    assert [(r["adapted"], r["like"]) for r in history] == [(True, [first["id"]]), (False, [])]

    stranger = post(client, ones[1], **{SESSION_HEADER: new_session(client)})
    assert (stranger["digit"], stranger["adapted"]) == (7, False)
    del client.headers[SESSION_HEADER]
    fresh = post(client, ones[1])
    assert (fresh["digit"], fresh["adapted"], bool(fresh["session_token"])) == (7, False, True)


def test_a_relabel_replaces_what_the_memory_holds(client: TestClient, ones: list[bytes]) -> None:
    first = post(client, ones[0])
    label(client, first["id"], 1)
    label(client, first["id"], 4)
    me = session_of(client)
    assert entries(client, me) == [(first["model_version"], 4)]
    again = post(client, ones[1])
    assert (again["digit"], again["adapted"]) == (4, True)
    label(client, first["id"], None)  # "not a digit"
    assert entries(client, me) == [(first["model_version"], None)]
    assert post(client, ones[1])["status"] == "not_a_digit"


def test_a_session_that_confirms_its_answers_is_not_made_worse(
    client: TestClient, shipped: Predictor, train_digits: list[pen.PenSample]
) -> None:
    writer = train_digits[FLAGGED_ONES[0]].writer
    samples = [s for s in train_digits if s.writer == writer][:24]
    pngs = [to_png(image) for image in drawings(samples, seed=5)]
    for sample, png in zip(samples, pngs, strict=True):
        plain = shipped.predict(png)
        answer = post(client, png)
        if plain.digit == sample.digit and plain.status != "not_a_digit":
            assert (answer["digit"], answer["status"]) == (plain.digit, plain.status)
        label(client, answer["id"], sample.digit)
    summary = client.get("/api/sessions/me").json()
    assert summary == {**mine(client), "drawings": 24, "labelled": 24, "learned_from": 24}


def test_two_workers_serve_one_session(
    client: TestClient, shipped: Predictor, ones: list[bytes]
) -> None:
    settings = client.app.state.settings  # type: ignore[attr-defined]
    other = create_app(settings, predictor=shipped, run_maintenance=False)
    with TestClient(other) as second:
        second.headers[SESSION_HEADER] = client.headers[SESSION_HEADER]
        first = post(client, ones[0])
        label(second, first["id"], 1)  # labelled on the other worker
        again = post(second, ones[1])
        assert (again["digit"], again["adapted"], again["like"]) == (1, True, [first["id"]])
        assert post(client, ones[1])["adapted"] is True
        # Each worker now keeps the session's entries; a relabel on one reaches the other's
        # next answer, whichever way it goes.
        label(second, first["id"], 4)
        assert (post(client, ones[1])["digit"], post(second, ones[1])["digit"]) == (4, 4)
        label(client, first["id"], None)
        assert post(second, ones[1])["status"] == "not_a_digit"
        label(second, again["id"], 1)  # one more entry: the nearest one now says 1
        assert post(client, ones[1])["digit"] == 1
        assert post(second, ones[1])["digit"] == 1  # the second keeps both entries now
        # Elsewhere, an entry is withdrawn (a number relabelled to another length) while a
        # new one is learned: the other worker's next answer reads every entry again.
        version = shipped.version
        third = post(client, ones[0])
        withdrawn = uuid.UUID(again["id"])
        with client.app.state.store.database.write() as session:  # type: ignore[attr-defined]
            session.execute(
                update(PredictionRow)
                .where(PredictionRow.id == withdrawn)
                .values(true_label=None, labelled_at=None)
            )
            memory_store.unlearn(session, prediction_id=withdrawn)
        label(client, third["id"], 1)
        token = client.headers[SESSION_HEADER]
        kept = other.state.memory._recall(other.state.sessions.authenticate(token), version)
        assert sorted(str(e.prediction_id) for e in kept) == sorted([first["id"], third["id"]])
        assert second.delete(f"/api/sessions/{session_of(client)}").status_code == 204
        me = {SESSION_HEADER: new_session(client)}
        assert post(client, ones[1], **me)["adapted"] is False


def test_deleting_the_session_forgets_its_memory(client: TestClient, ones: list[bytes]) -> None:
    me = session_of(client)
    first = post(client, ones[0])
    label(client, first["id"], 1)
    assert len(entries(client, me)) == 1
    assert client.delete(f"/api/sessions/{me}").status_code == 204
    assert entries(client, me) == []
    client.headers[SESSION_HEADER] = new_session(client)
    assert post(client, ones[1])["adapted"] is False


def test_stats_and_the_session_summary(client: TestClient, ones: list[bytes]) -> None:
    assert client.get("/api/sessions/me").json() == {
        **mine(client),
        "drawings": 0,
        "labelled": 0,
        "learned_from": 0,
    }
    first = post(client, ones[0])
    label(client, first["id"], 1)
    again = post(client, ones[1])
    stats = client.get("/api/stats").json()
    assert (stats["adapted"], stats["adapted_confirmed"]) == (1, 0)
    label(client, again["id"], 1)  # the person confirms the adapted answer
    stats = client.get("/api/stats").json()
    assert (stats["adapted"], stats["adapted_confirmed"]) == (1, 1)
    assert client.get("/api/sessions/me").json() == {
        **mine(client),
        "drawings": 2,
        "labelled": 2,
        "learned_from": 2,
    }
    del client.headers[SESSION_HEADER]
    assert client.get("/api/sessions/me").status_code == 401
    admin = {"Authorization": f"Bearer {PLAIN_ADMIN}"}
    assert client.get("/api/sessions/me", headers=admin).status_code == 401  # no session


def test_an_admin_label_teaches_the_drawing_s_own_session(
    client: TestClient, ones: list[bytes]
) -> None:
    first = post(client, ones[0])
    label(client, first["id"], 1, Authorization=f"Bearer {PLAIN_ADMIN}")
    assert entries(client, session_of(client)) == [(first["model_version"], 1)]
    assert post(client, ones[1])["adapted"] is True


def test_memory_off_or_database_down_gives_the_plain_model(
    make_client: MakeClient, shipped: Predictor, ones: list[bytes], backend: str, tmp_path: Path
) -> None:
    with make_client(predictor_override=shipped, session_memory=False) as client:
        first = post(client, ones[0])
        label(client, first["id"], 1)
        assert entries(client, session_of(client)) == []
        assert (post(client, ones[1])["digit"], post(client, ones[1])["adapted"]) == (7, False)
        assert client.get("/api/sessions/me").json()["learned_from"] == 0

    with make_client(predictor_override=shipped) as client:
        first = post(client, ones[0])
        label(client, first["id"], 1)
        state = client.app.state  # type: ignore[attr-defined]
        healthy = state.store.database
        state.store.database = state.sessions.database = unreachable(backend, tmp_path)
        try:
            down = post(client, ones[1])
            assert (down["digit"], down["adapted"], down["like"]) == (7, False, [])
            label(client, down["id"], 1)  # spooled: not remembered
        finally:
            state.store.database = state.sessions.database = healthy
        assert state.store.replay() == 2
        assert len(entries(client, session_of(client))) == 1


@pytest.fixture
def warmer(tmp_path: Path) -> Path:
    """The shipped weights under another version: the same network, another temperature."""
    checkpoint = ckpt.load(SHIPPED_WEIGHTS)
    warmer = dataclasses.replace(checkpoint, temperature=checkpoint.temperature * 1.05)
    path = tmp_path / "warmer.pt"
    ckpt.save(warmer, path)
    return path


def test_the_memory_follows_a_promotion(
    make_client: MakeClient, ones: list[bytes], warmer: Path
) -> None:
    with make_client(load_model=True, model_path=None) as client:
        state = client.app.state  # type: ignore[attr-defined]
        me = session_of(client)
        first = post(client, ones[0])
        label(client, first["id"], 1)
        old = first["model_version"]
        assert post(client, ones[1])["adapted"] is True

        new = state.registry.register(warmer)[0]
        state.registry.promote(new, reason="test")
        assert state.holder.reload_if_changed()
        plain = post(client, ones[1])  # the old version's memory is never read for the new one
        assert (plain["model_version"], plain["digit"], plain["adapted"]) == (new, 7, False)
        assert entries(client, me) == [(old, 1)]

        label(client, plain["id"], 1)  # the next label recomputes the session's entries
        assert sorted(entries(client, me)) == sorted([(old, 1), (new, 1), (new, 1)])
        again = post(client, ones[1])
        assert (again["model_version"], again["digit"], again["adapted"]) == (new, 1, True)
        assert again["like"][0] in {first["id"], plain["id"]}

"""Nothing lost: with the database unreachable, predictions and corrections are acknowledged
from a durable local spool and replayed exactly once, in order, when it is back."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from api_helpers import MakeClient, drawing, post_drawing, session_of, unreachable
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from digits import checkpoint as ckpt
from digits.api.store import PredictionStore
from digits.db.models import PredictionRow
from digits.db.spool import Spool
from digits.model import DigitNet


def _spooled_prediction(digit: int, probabilities: list[float]) -> dict:
    """A prediction entry exactly as the release before the derived serializer wrote it."""
    return {
        "op": "prediction", "id": str(uuid.uuid4()), "created_at": "2026-12-01T10:00:00.123456+00:00",
        "digit": digit, "confidence": 0.9, "probabilities": probabilities, "status": "ok",
        "source": "api", "drawing_id": None, "model_version": "v", "image_png": None,
        "input_png": "cG5n", "latency_ms": 1.0, "session_id": None,
    }  # fmt: skip


def _spooled_label(prediction_id: str, true_label: int | None) -> dict:
    return {
        "op": "label", "id": prediction_id, "true_label": true_label,
        "labelled_at": "2026-12-01T10:00:01.000000+00:00",
    }  # fmt: skip


def _rows(store: PredictionStore) -> dict[str, PredictionRow]:
    with store.database.read() as session:
        return {str(r.id): r for r in session.scalars(select(PredictionRow)).all()}


def _count(store: PredictionStore) -> int:
    with store.database.read() as session:
        return session.scalar(select(func.count()).select_from(PredictionRow)) or 0


def test_outage_is_spooled_and_replayed_exactly_once(
    client: TestClient, backend: str, tmp_path: Path
) -> None:
    store: PredictionStore = client.app.state.store  # type: ignore[attr-defined]
    healthy = store.database
    before = post_drawing(client).json()  # stored in the database before the outage
    store.database = unreachable(backend, tmp_path)

    made = [post_drawing(client, drawing(200 + i)) for i in range(5)]
    assert [r.status_code for r in made] == [201] * 5
    made_ids = [r.json()["id"] for r in made]
    drawing_id = str(uuid.uuid4())
    first = post_drawing(client, drawing_id=drawing_id).json()
    again = post_drawing(client, drawing(300), drawing_id=drawing_id).json()
    assert again["id"] == first["id"]  # the same drawing still replaces while spooled

    spooled = client.get(f"/api/predictions/{made_ids[0]}")
    assert spooled.status_code == 503 and "spool" in spooled.json()["detail"]
    label = client.patch(f"/api/predictions/{made_ids[0]}", json={"true_label": 4})
    assert label.status_code == 200 and label.json()["true_label"] == 4
    old_label = client.patch(f"/api/predictions/{before['id']}", json={"true_label": 8})
    assert old_label.status_code == 200  # known to this process, so kept in the spool too
    unknown = client.patch(f"/api/predictions/{uuid.uuid4()}", json={"true_label": 1})
    assert unknown.status_code == 503 and "detail" in unknown.json()
    listed = client.get("/api/predictions")
    assert listed.status_code == 503
    for refused in (spooled, unknown, listed):  # each 503 tells the client when to come back
        assert int(refused.headers["Retry-After"]) > 0

    files = list(store.spool.directory.glob("*.jsonl"))
    assert len(files) == 1
    lines = files[0].read_bytes().splitlines()
    assert len(lines) == store.spool.depth == 5 + 2 + 2
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["database"]["status"] == "degraded"
    assert ready.json()["spool_depth"] == 9
    metrics = client.get("/metrics").text
    assert "digits_spool_depth 9.0" in metrics
    assert "digits_db_errors_total 0.0" not in metrics

    store.database.dispose()
    store.database = healthy
    later = post_drawing(client).json()  # queued behind the spool to keep the order
    assert store.spool.depth == 10
    assert store.replay() == 10
    assert store.spool.depth == 0 and files[0].read_bytes() == b""

    rows = _rows(store)
    assert set(rows) == {before["id"], *made_ids, first["id"], later["id"]}
    assert rows[made_ids[0]].true_label == 4 and rows[before["id"]].true_label == 8
    assert rows[first["id"]].image_png == drawing(300)  # the replacement won
    assert store.replay() == 0 and _count(store) == len(rows)
    record = client.get(f"/api/predictions/{made_ids[0]}").json()
    assert record["true_label"] == 4
    assert record["created_at"] == made[0].json()["created_at"]
    assert client.get("/readyz").json()["checks"]["database"]["status"] == "ok"


def test_replaying_twice_changes_nothing_and_newer_labels_win(
    client: TestClient, backend: str, tmp_path: Path
) -> None:
    store: PredictionStore = client.app.state.store  # type: ignore[attr-defined]
    healthy = store.database
    store.database = unreachable(backend, tmp_path)
    created = post_drawing(client).json()
    client.patch(f"/api/predictions/{created['id']}", json={"true_label": 1})
    copy = store.spool.path.read_bytes()
    store.database = healthy
    assert store.replay() == 2
    assert (
        client.patch(f"/api/predictions/{created['id']}", json={"true_label": 2}).status_code == 200
    )

    # A crash between commit and truncation leaves the same entries behind for another process.
    (store.spool.directory / "crashed-1-abc.jsonl").write_bytes(copy)
    assert store.replay() == 2
    rows = _rows(store)
    assert len(rows) == 1
    assert rows[created["id"]].true_label == 2  # the older spooled correction did not win


def test_spools_of_stopped_processes_are_adopted(client: TestClient, predictor) -> None:  # type: ignore[no-untyped-def]
    store: PredictionStore = client.app.state.store  # type: ignore[attr-defined]
    dead = Spool(store.spool.directory)
    dead.open()
    new = _spooled_prediction(3, [0.01] * 9 + [0.91])
    dead.append(new)
    dead.append(_spooled_label(new["id"], 3))
    dead._handle.close()  # the process died: its lock is gone, its file stays
    with dead.path.open("ab") as torn:
        torn.write(b'{"op":"predic')  # killed in the middle of a write

    assert store.replay() == 2
    assert not dead.path.exists()
    rows = _rows(store)
    row = rows[new["id"]]
    assert (row.true_label, row.not_a_digit, row.digit, row.input_png) == (3, False, 3, b"png")
    assert row.created_at.isoformat() == "2026-12-01T10:00:00.123456+00:00"
    assert row.session_id is None and row.probabilities == [0.01] * 9 + [0.91]


def test_live_spools_are_left_to_their_owner_and_corrections_wait(
    client: TestClient,
) -> None:
    store: PredictionStore = client.app.state.store  # type: ignore[attr-defined]
    other = PredictionStore(store.database, Spool(store.spool.directory), store.metrics)
    other.spool.open()
    new = _spooled_prediction(5, [0.1] * 10) | {"session_id": str(session_of(client))}
    other.spool.append(new)  # another worker, still alive, has it spooled

    labelled = client.patch(f"/api/predictions/{new['id']}", json={"true_label": 6})
    assert labelled.status_code == 200 and labelled.json()["true_label"] == 6
    assert client.get(f"/api/predictions/{new['id']}").status_code == 503
    assert store.replay() == 0  # its prediction is not in the database yet: the label waits
    assert store.spool.depth == 1 and other.spool.path.exists()

    assert other.replay() == 1
    assert store.replay() == 1
    assert client.get(f"/api/predictions/{new['id']}").json()["true_label"] == 6
    other.spool.close()
    assert not other.spool.path.exists()


def test_not_ready_when_nothing_can_store(client: TestClient, backend: str, tmp_path: Path) -> None:
    store: PredictionStore = client.app.state.store  # type: ignore[attr-defined]
    healthy = store.database
    store.database = unreachable(backend, tmp_path)
    store.spool.close()
    try:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["spool"]["status"] == "unavailable"
        response = post_drawing(client)
        assert response.status_code == 503 and "spool" in response.json()["detail"]
        assert int(response.headers["Retry-After"]) > 0
    finally:
        store.database = healthy
        store.spool.open()


def test_spool_lines_are_json_and_fsynced_before_the_answer(
    client: TestClient, backend: str, tmp_path: Path
) -> None:
    store: PredictionStore = client.app.state.store  # type: ignore[attr-defined]
    store.database = unreachable(backend, tmp_path)
    created = post_drawing(client).json()
    entry = json.loads(store.spool.path.read_bytes().splitlines()[0])
    assert entry["op"] == "prediction" and entry["id"] == created["id"]
    assert entry["created_at"].endswith("+00:00")


def test_model_swap_and_reload(make_client: MakeClient, tmp_path: Path) -> None:
    path = tmp_path / "active.pt"
    ckpt.save(ckpt.from_model(DigitNet(width=8), {"width": 8}), path)
    with make_client(model_path=path, load_model=True) as client:
        holder = client.app.state.holder  # type: ignore[attr-defined]
        first = post_drawing(client).json()["model_version"]
        assert holder.reload_if_changed() is False
        version = ckpt.save(ckpt.from_model(DigitNet(width=8), {"width": 8}), path)
        assert holder.reload_if_changed() is True
        assert version != first
        assert post_drawing(client).json()["model_version"] == version
        assert client.get("/api/model").json()["version"] == version
        path.write_bytes(b"corrupt")
        assert holder.reload_if_changed() is False  # a broken file never replaces a good model
        assert post_drawing(client).json()["model_version"] == version


def test_busy_process_goes_back_to_direct_writes(
    client: TestClient, backend: str, tmp_path: Path
) -> None:
    import threading

    store: PredictionStore = client.app.state.store  # type: ignore[attr-defined]
    healthy = store.database
    store.database = unreachable(backend, tmp_path)
    for _ in range(5):
        assert post_drawing(client).status_code == 201
    store.database = healthy
    stop, statuses = threading.Event(), []

    def traffic() -> None:
        while not stop.is_set():
            statuses.append(post_drawing(client).status_code)

    worker = threading.Thread(target=traffic)
    worker.start()
    try:
        for _ in range(5):
            store.replay()
            if store.spool.depth == 0:
                break
        drained = store.spool.depth == 0
    finally:
        stop.set()
        worker.join(timeout=30)
    store.replay()
    assert drained
    assert set(statuses) == {201}
    assert _count(store) == 5 + len(statuses)

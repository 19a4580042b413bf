"""The API serves the registry's active model, swaps on promotion, and reports per version;
replicas with nothing in common but the database follow a promotion made elsewhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from digits.api import create_app
from digits.config import Settings
from digits.db.migrate import upgrade_head
from digits.db.models import ModelVersionRow
from digits.db.testing import temporary_postgres_database
from digits.loop import registry as registry_module
from digits.loop.registry import Registry
from digits.synth import drawings, glyphs

MakeCheckpoint = Callable[[int], Path]

FOLLOW_WITHIN_S = 10.0


def drawing(digit: int) -> bytes:
    strokes = glyphs.glyph_strokes(digit, glyphs.STYLES[digit][0])
    return drawings.to_png(drawings.draw(strokes, drawings.Look()))


def app_settings(data_dir: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=data_dir, database_url=database_url, uncertain_threshold=0.0, log_json=True
    )


@pytest.fixture
def settings(
    tmp_path: Path, database_url: str, shipped: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    monkeypatch.setattr(registry_module, "SHIPPED_WEIGHTS", shipped)
    return app_settings(tmp_path / "data", database_url)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings, run_maintenance=False)) as client:
        yield client


def served_registry(client: TestClient) -> Registry:
    return client.app.state.registry  # type: ignore[attr-defined,no-any-return]


def predict_and_label(client: TestClient, digit: int, true_label: int) -> str:
    response = client.post("/api/predictions", files={"image": ("d.png", drawing(digit))})
    assert response.status_code == 201, response.text
    body = response.json()
    patched = client.patch(
        f"/api/predictions/{body['id']}",
        json={"true_label": true_label},
        headers={"X-Session-Token": body["session_token"]},  # the session the POST made
    )
    assert patched.status_code == 200
    return str(body["model_version"])


def test_serves_the_active_model_and_follows_a_promotion(
    client: TestClient, make_checkpoint: MakeCheckpoint
) -> None:
    registry = served_registry(client)
    first = registry.active_version()
    assert first is not None
    assert client.get("/api/model").json()["version"] == first
    assert predict_and_label(client, 3, 3) == first

    second = registry.register(make_checkpoint(1))[0]
    registry.promote(second, reason="test")
    holder = client.app.state.holder  # type: ignore[attr-defined]
    assert holder.reload_if_changed()  # what the maintenance loop does every 2 s
    assert client.get("/api/model").json()["version"] == second
    assert predict_and_label(client, 5, 5) == second
    assert predict_and_label(client, 7, 1) == second

    listed = client.get("/api/models").json()
    assert listed["active"] == listed["serving"] == second
    assert [m["version"] for m in listed["models"]] == [first, second]
    assert [m["active"] for m in listed["models"]] == [False, True]
    assert [(e["action"], e["version"]) for e in listed["events"]] == [
        ("initial", first),
        ("promote", second),
    ]
    assert listed["events"][1]["reason"] == "test"

    accuracy = client.get("/api/models/accuracy").json()
    assert accuracy["bucket"] == "hour"
    by_version = {p["model_version"]: p for p in accuracy["points"]}  # all in this hour
    assert (by_version[first]["labelled"], by_version[second]["labelled"]) == (1, 2)
    assert by_version[second]["accuracy"] == by_version[second]["correct"] / 2


def test_a_broken_promotion_keeps_serving_the_previous_model(
    client: TestClient, make_checkpoint: MakeCheckpoint
) -> None:
    registry = served_registry(client)
    first = registry.active_version()
    broken = registry.register(make_checkpoint(1))[0]
    with registry.database.write() as session:  # stored bytes damaged behind the registry's back
        session.execute(
            update(ModelVersionRow)
            .where(ModelVersionRow.version == broken)
            .values(checkpoint=b"not a checkpoint")
        )
    registry.promote(broken)
    holder = client.app.state.holder  # type: ignore[attr-defined]
    assert not holder.reload_if_changed()
    assert client.get("/api/model").json()["version"] == first
    response = client.post("/api/predictions", files={"image": ("d.png", drawing(2))})
    assert response.status_code == 201 and response.json()["model_version"] == first


def test_model_card_of_the_shipped_weights(client: TestClient, shipped: Path) -> None:
    (shipped.parent / "MODEL_CARD.md").write_text("# Model card\n\n![plot](plot.png)\n\ntext\n")
    card = client.get("/api/models").json()["card"]
    assert card == "# Model card\n\n\ntext\n"


def digits_cli(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "digits.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.postgres
def test_replicas_on_one_postgres_follow_a_checkpoint_added_and_promoted_elsewhere(
    postgres_url: str,
    tmp_path: Path,
    shipped: Path,
    make_checkpoint: MakeCheckpoint,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(registry_module, "SHIPPED_WEIGHTS", shipped)
    with temporary_postgres_database(postgres_url) as url, ExitStack() as stack:
        upgrade_head(url)
        # Two replicas, each with its own data directory: nothing shared but the database.
        replicas = [
            stack.enter_context(TestClient(create_app(app_settings(tmp_path / name, url))))
            for name in ("replica-a", "replica-b")
        ]
        first = {r.get("/api/model").json()["version"] for r in replicas}
        assert len(first) == 1

        # A third place (a GPU machine, say) with its own data directory adds and promotes.
        trained = make_checkpoint(7)
        environ = {k: v for k, v in os.environ.items() if not k.startswith("DIGITS_")}
        env = environ | {"DIGITS_DATABASE_URL": url, "DIGITS_DATA_DIR": str(tmp_path / "gpu")}
        added = json.loads(digits_cli("models", "add", str(trained), "--json", env=env))
        assert added["added"] is True and added["version"] not in first
        promoted = json.loads(digits_cli("models", "promote", added["version"], "--json", env=env))
        assert promoted["active"] == added["version"]

        started = time.monotonic()
        waiting = set(range(len(replicas)))
        while waiting and time.monotonic() - started < FOLLOW_WITHIN_S:
            waiting = {
                i
                for i in waiting
                if replicas[i].get("/api/model").json()["version"] != added["version"]
            }
            time.sleep(0.2)
        assert not waiting, f"replicas {waiting} did not follow within {FOLLOW_WITHIN_S} s"
        for replica in replicas:
            response = replica.post("/api/predictions", files={"image": ("d.png", drawing(4))})
            assert response.status_code == 201
            assert response.json()["model_version"] == added["version"]

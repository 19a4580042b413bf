"""The API serves the registry's active model, swaps on promotion, and reports per version."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from digits import registry as registry_module
from digits import synth
from digits.api import create_app
from digits.config import Settings
from digits.registry import Registry

MakeCheckpoint = Callable[[int], Path]


def drawing(digit: int) -> bytes:
    strokes = synth.glyph_strokes(digit, synth.STYLES[digit][0])
    return synth.to_png(synth.draw(strokes, synth.Look()))


@pytest.fixture
def settings(tmp_path: Path, shipped: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setattr(registry_module, "SHIPPED_WEIGHTS", shipped)
    return Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'digits.sqlite3'}",
        uncertain_threshold=0.0,
        log_json=True,
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings, run_maintenance=False)) as client:
        yield client


def predict_and_label(client: TestClient, digit: int, true_label: int) -> str:
    response = client.post("/api/predictions", files={"image": ("d.png", drawing(digit))})
    assert response.status_code == 201, response.text
    body = response.json()
    patched = client.patch(f"/api/predictions/{body['id']}", json={"true_label": true_label})
    assert patched.status_code == 200
    return str(body["model_version"])


def test_serves_the_active_model_and_follows_a_promotion(
    client: TestClient, settings: Settings, shipped: Path, make_checkpoint: MakeCheckpoint
) -> None:
    registry = Registry(settings.data_dir / "models", shipped=shipped)
    first = registry.active_version()
    assert first is not None
    assert client.get("/api/model").json()["version"] == first
    assert predict_and_label(client, 3, 3) == first

    second = registry.register(make_checkpoint(1)).version
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
    client: TestClient, settings: Settings, shipped: Path
) -> None:
    registry = Registry(settings.data_dir / "models", shipped=shipped)
    first = registry.active_version()
    registry.active_file.write_bytes(b"not a checkpoint")  # a torn copy, by hand
    holder = client.app.state.holder  # type: ignore[attr-defined]
    assert not holder.reload_if_changed()
    assert client.get("/api/model").json()["version"] == first
    response = client.post("/api/predictions", files={"image": ("d.png", drawing(2))})
    assert response.status_code == 201 and response.json()["model_version"] == first


def test_model_card_of_the_shipped_weights(client: TestClient, shipped: Path) -> None:
    (shipped.parent / "MODEL_CARD.md").write_text("# Model card\n\n![plot](plot.png)\n\ntext\n")
    card = client.get("/api/models").json()["card"]
    assert card == "# Model card\n\n\ntext\n"

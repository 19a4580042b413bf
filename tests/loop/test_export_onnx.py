"""An upgrade from a release whose checkpoints had no ONNX graph: serving refuses such a model
with its remedy, `digits models export-onnx` gives every registered model its graph (rollback
targets included) without changing a version, and the shipped weights bring their own."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from digits import checkpoint as ckpt
from digits.api.testing import serve_process
from digits.cli import main
from digits.config import get_settings
from digits.db.session import Database
from digits.loop import registry as registry_module
from digits.loop.registry import Registry
from digits.predict import Predictor

MakeCheckpoint = Callable[[int], Path]


def without_graph(raw: bytes) -> bytes:
    """What an earlier release stored: the same payload, no graph."""
    payload = torch.load(io.BytesIO(raw), weights_only=True)
    del payload["graph"]
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def register_as_before(registry: Registry, path: Path) -> str:
    raw = without_graph(path.read_bytes())
    checkpoint = ckpt.read_bytes(raw)
    registry.add_bytes(raw, checkpoint, origin="retrain")
    return checkpoint.version


@pytest.fixture
def cli_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str, shipped: Path
) -> Iterator[str]:
    monkeypatch.setenv("DIGITS_DATA_DIR", str(tmp_path / "cli-data"))
    monkeypatch.setenv("DIGITS_DATABASE_URL", database_url)
    monkeypatch.delenv("DIGITS_MODEL_PATH", raising=False)
    monkeypatch.setattr(registry_module, "SHIPPED_WEIGHTS", shipped)
    get_settings.cache_clear()
    yield database_url
    get_settings.cache_clear()


def test_export_onnx_gives_every_earlier_model_its_graph(
    cli_env: str,
    shipped: Path,
    make_checkpoint: MakeCheckpoint,
    capsys: pytest.CaptureFixture[str],
) -> None:
    registry = Registry(Database(cli_env), shipped=shipped)
    registry.ensure()
    older = register_as_before(registry, make_checkpoint(1))
    active = register_as_before(registry, make_checkpoint(2))
    registry.promote(older)
    registry.promote(active)  # `older` is the rollback target
    assert registry.graphless() == [older, active]

    with pytest.raises(ckpt.MissingGraphError, match="digits models export-onnx"):
        Predictor(registry.load_active())

    assert main(["models", "export-onnx", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"exported": [older, active]}
    assert registry.graphless() == []
    assert Predictor(registry.load_active()).version == active
    registry.rollback()
    assert Predictor(registry.load_active()).version == older
    assert main(["models", "export-onnx", "--json"]) == 0  # nothing left to do
    assert json.loads(capsys.readouterr().out) == {"exported": []}
    registry.database.dispose()


@pytest.mark.slow
def test_serve_refuses_a_model_without_its_graph(
    database_url: str, shipped: Path, make_checkpoint: MakeCheckpoint, tmp_path: Path
) -> None:
    registry = Registry(Database(database_url), shipped=shipped)
    registry.ensure()
    registry.promote(register_as_before(registry, make_checkpoint(1)))
    registry.database.dispose()
    log = tmp_path / "serve.log"
    with (
        pytest.raises(RuntimeError, match="the API exited"),
        serve_process(database_url, tmp_path / "data", workers=1, log_path=log),
    ):
        pass
    assert "has no ONNX graph" in log.read_text()
    assert "digits models export-onnx" in log.read_text()


def test_the_shipped_weights_bring_their_graph_to_an_earlier_row(
    database_url: str, shipped: Path
) -> None:
    registry = Registry(Database(database_url), shipped=shipped)
    version = register_as_before(registry, shipped)
    registry.record_activation(version, "initial", "an earlier release")
    assert registry.graphless() == [version]
    registry.ensure()  # what every worker does first; no torch involved
    assert registry.graphless() == []
    assert Predictor(registry.load_active()).version == version
    registry.database.dispose()


def test_models_add_and_export_onnx_give_a_file_its_graph(
    cli_env: str, shipped: Path, make_checkpoint: MakeCheckpoint, tmp_path: Path
) -> None:
    earlier = tmp_path / "earlier.pt"
    earlier.write_bytes(without_graph(make_checkpoint(1).read_bytes()))
    version = ckpt.read(earlier).version
    assert main(["models", "add", str(earlier)]) == 0
    registry = Registry(Database(cli_env), shipped=shipped)
    assert registry.load(version).graph is not None  # exported as it was registered
    registry.database.dispose()

    assert ckpt.read(earlier).graph is None
    assert main(["models", "export-onnx", str(earlier)]) == 0
    rewritten = ckpt.read(earlier)
    assert (rewritten.version, rewritten.graph is not None) == (version, True)

"""The registry: versions, activation, rollback, the active file, concurrent writers, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from digits import checkpoint as ckpt
from digits import registry as registry_module
from digits.cli import main
from digits.config import Settings, get_settings
from digits.registry import Registry, RegistryError, active_path

MakeCheckpoint = Callable[[int], Path]


def test_first_use_registers_and_activates_the_shipped_weights(
    registry: Registry, shipped: Path
) -> None:
    index = registry.ensure()
    version = ckpt.load(shipped).version
    assert index.active == version
    assert index.models[version].origin == "shipped"
    assert [(e.action, e.version, e.previous) for e in index.events] == [("initial", version, None)]
    assert registry.active_file.read_bytes() == shipped.read_bytes()
    assert registry.ensure().events == index.events  # idempotent: no second "initial"


def test_register_stores_version_metrics_parent_and_data(
    registry: Registry, make_checkpoint: MakeCheckpoint
) -> None:
    path = make_checkpoint(1)
    checkpoint = ckpt.load(path)
    checkpoint.parent, checkpoint.data = "abc", {"corrections_train": 12}
    ckpt.save(checkpoint, path)
    entry = registry.register(path, origin="retrain", metrics={"mnist_accuracy": 0.99})
    assert entry.version == checkpoint.version
    assert entry.parent == "abc" and entry.data == {"corrections_train": 12}
    assert entry.metrics["mnist_accuracy"] == 0.99
    assert ckpt.load(registry.checkpoint_path(entry.version)).version == entry.version
    assert registry.active_version() != entry.version  # registering does not activate
    assert registry.register(path).registered_at == entry.registered_at  # same version: no-op


def test_promote_replaces_the_active_file_and_records_the_event(
    registry: Registry, shipped: Path, make_checkpoint: MakeCheckpoint
) -> None:
    first = registry.ensure().active
    path = make_checkpoint(1)
    version = registry.register(path).version
    before = registry.active_file.stat().st_ino
    event = registry.promote(version[:6], reason="test")  # a unique prefix is enough
    assert event is not None
    assert (event.action, event.version, event.previous) == ("promote", version, first)
    assert registry.active_version() == version
    assert registry.active_file.read_bytes() == path.read_bytes()
    assert registry.active_file.stat().st_ino != before  # a new file, swapped in whole
    assert registry.promote(version) is None  # already active


def test_rollback_walks_back_through_the_activations(
    registry: Registry, make_checkpoint: MakeCheckpoint
) -> None:
    a = registry.ensure().active
    b = registry.register(make_checkpoint(1)).version
    c = registry.register(make_checkpoint(2)).version
    registry.promote(b)
    registry.promote(c)
    assert registry.rollback().version == b
    assert registry.rollback().version == a
    with pytest.raises(RegistryError, match="nothing to roll back"):
        registry.rollback()
    assert registry.active_version() == a
    assert ckpt.load(registry.active_file).version == a
    actions = [e.action for e in registry.read().events]
    assert actions == ["initial", "promote", "promote", "rollback", "rollback"]


def test_unknown_or_ambiguous_versions_are_refused(registry: Registry) -> None:
    registry.ensure()
    with pytest.raises(RegistryError, match="unknown model version"):
        registry.promote("zzzz")
    with pytest.raises(RegistryError, match="unknown model version"):
        registry.promote("")


def test_active_path_prefers_digits_model_path(tmp_path: Path, shipped: Path) -> None:
    assert active_path(Settings(data_dir=tmp_path, model_path=shipped)) == shipped
    assert not (tmp_path / "models").exists()


ROLL_BACK = """
import sys
from pathlib import Path
from digits.registry import Registry
registry = Registry(Path(sys.argv[1]), shipped=Path(sys.argv[2]))
for _ in range(int(sys.argv[3])):
    registry.rollback()
"""


def test_concurrent_processes_lose_no_update(
    registry: Registry, shipped: Path, make_checkpoint: MakeCheckpoint
) -> None:
    first = registry.ensure().active
    other = registry.register(make_checkpoint(1)).version
    workers, rounds = 4, 8
    for i in range(workers * rounds):  # an activation stack workers * rounds deep
        registry.promote(other if i % 2 == 0 else str(first))
    # Separate interpreters, as API workers and the retrain command are.
    command = [sys.executable, "-c", ROLL_BACK, str(registry.root), str(shipped), str(rounds)]
    processes = [subprocess.Popen(command) for _ in range(workers)]
    assert [process.wait(timeout=120) for process in processes] == [0] * workers
    # Each rollback popped a different activation: a lost read-modify-write would leave the
    # stack higher (and a different model active) or fail a rollback for want of history.
    index = registry.read()
    assert [e.action for e in index.events].count("rollback") == workers * rounds
    assert index.activation_stack() == [first]
    assert index.active == first
    assert ckpt.load(registry.active_file).version == first
    assert not list(registry.root.glob(".*.tmp"))


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, shipped: Path) -> Iterator[Path]:
    monkeypatch.setenv("DIGITS_DATA_DIR", str(tmp_path / "cli-data"))
    monkeypatch.delenv("DIGITS_MODEL_PATH", raising=False)
    monkeypatch.setattr(registry_module, "SHIPPED_WEIGHTS", shipped)
    get_settings.cache_clear()
    yield tmp_path / "cli-data" / "models"
    get_settings.cache_clear()


def test_models_cli_lists_promotes_and_rolls_back(
    cli_env: Path,
    shipped: Path,
    make_checkpoint: MakeCheckpoint,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["models", "list"]) == 0
    table = capsys.readouterr().out
    first = ckpt.load(shipped).version
    assert f"*  {first}" in table and "shipped" in table

    other = Registry(cli_env, shipped=shipped).register(make_checkpoint(1)).version
    assert main(["models", "promote", other, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["active"] == other and out["event"]["previous"] == first

    assert main(["models", "rollback", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["active"] == first

    assert main(["models", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["active"] == first and set(listed["models"]) == {first, other}
    assert [e["action"] for e in listed["events"]] == ["initial", "promote", "rollback"]

    assert main(["models", "promote", "nope"]) == 1

"""The registry in the database: versions, activation, rollback, upgrades of the shipped
weights, concurrent writers, the file registry import, and the CLI; on each backend."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from digits import checkpoint as ckpt
from digits.cli import main
from digits.config import get_settings
from digits.db.session import Database
from digits.loop import registry as registry_module
from digits.loop.registry import Registry, RegistryError

MakeCheckpoint = Callable[[int], Path]


def test_first_use_registers_and_activates_the_shipped_weights(
    registry: Registry, shipped: Path
) -> None:
    index = registry.ensure()
    version = ckpt.load(shipped).version
    assert index.active == version
    assert index.models[version].origin == "shipped"
    assert [(e.action, e.version, e.previous) for e in index.events] == [("initial", version, None)]
    assert registry.load_active().version == version  # the bytes are in the database
    assert registry.ensure().events == index.events  # idempotent: no second "initial"


def test_register_stores_version_metrics_parent_and_data(
    registry: Registry, make_checkpoint: MakeCheckpoint
) -> None:
    registry.ensure()
    path = make_checkpoint(1)
    checkpoint = ckpt.load(path)
    checkpoint.parent, checkpoint.data = "abc", {"corrections_train": 12}
    checkpoint.metrics = {"mnist_accuracy": 0.99, "curve": [0.5, 0.9]}
    ckpt.save(checkpoint, path)
    version, added = registry.register(path, origin="retrain")
    assert (version, added) == (checkpoint.version, True)
    entry = registry.read().models[version]
    assert (entry.origin, entry.parent, entry.data) == ("retrain", "abc", {"corrections_train": 12})
    assert entry.metrics == {"mnist_accuracy": 0.99}  # scalars only; the checkpoint has the rest
    assert registry.load(version).version == version
    assert registry.active_version() != version  # registering does not activate
    assert registry.register(path) == (version, False)  # same version: no-op
    assert registry.read().models[version].registered_at == entry.registered_at


def test_a_file_that_is_not_a_checkpoint_is_refused(registry: Registry, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ckpt.CheckpointError):
        registry.register(junk)
    with pytest.raises(ckpt.CheckpointError, match="no checkpoint at"):
        registry.register(tmp_path / "missing.pt")


def test_promote_records_the_event_and_every_registry_on_the_database_sees_it(
    registry: Registry, database_url: str, shipped: Path, make_checkpoint: MakeCheckpoint
) -> None:
    first = registry.ensure().active
    version, _ = registry.register(make_checkpoint(1))
    event = registry.promote(version[:6], reason="test")  # a unique prefix is enough
    assert event is not None
    assert (event.action, event.version, event.previous) == ("promote", version, first)
    assert registry.active_version() == version
    assert registry.promote(version) is None  # already active
    # Another process's view (its own engine), as a replica on another machine has.
    other = Registry(Database(database_url), shipped=shipped)
    try:
        assert other.active_version() == version
        assert other.load_active().version == version
    finally:
        other.database.dispose()


def test_rollback_walks_back_through_the_activations(
    registry: Registry, make_checkpoint: MakeCheckpoint
) -> None:
    a = registry.ensure().active
    b = registry.register(make_checkpoint(1))[0]
    c = registry.register(make_checkpoint(2))[0]
    registry.promote(b)
    registry.promote(c)
    assert registry.rollback().version == b
    assert registry.rollback().version == a
    with pytest.raises(RegistryError, match="nothing to roll back"):
        registry.rollback()
    assert registry.active_version() == a
    assert registry.load_active().version == a
    actions = [e.action for e in registry.read().events]
    assert actions == ["initial", "promote", "promote", "rollback", "rollback"]


def test_unknown_or_ambiguous_versions_are_refused(registry: Registry) -> None:
    registry.ensure()
    with pytest.raises(RegistryError, match="unknown model version"):
        registry.promote("zzzz")
    with pytest.raises(RegistryError, match="unknown model version"):
        registry.promote("")


def test_newer_shipped_weights_replace_older_ones_but_not_a_promoted_model(
    database_url: str, shipped: Path, make_checkpoint: MakeCheckpoint
) -> None:
    database = Database(database_url)
    try:
        old = Registry(database, shipped=shipped).ensure().active
        upgraded = Registry(database, shipped=make_checkpoint(1))
        index = upgraded.ensure()
        assert index.active == ckpt.load(upgraded.shipped).version != old
        assert [(e.action, e.previous) for e in index.events][-1] == ("promote", old)

        promoted = upgraded.register(make_checkpoint(2))[0]
        upgraded.promote(promoted)
        again = Registry(database, shipped=make_checkpoint(3)).ensure()
        assert again.active == promoted  # an operator's choice stands
        assert ckpt.load(make_checkpoint(3)).version in again.models
    finally:
        database.dispose()


ROLL_BACK = """
import sys
from pathlib import Path
from digits.db.session import Database
from digits.loop.registry import Registry
registry = Registry(Database(sys.argv[1]), shipped=Path(sys.argv[2]))
for _ in range(int(sys.argv[3])):
    registry.rollback()
"""


def test_concurrent_processes_lose_no_update(
    registry: Registry, database_url: str, shipped: Path, make_checkpoint: MakeCheckpoint
) -> None:
    first = registry.ensure().active
    other = registry.register(make_checkpoint(1))[0]
    workers, rounds = 4, 6
    for i in range(workers * rounds):  # an activation stack workers * rounds deep
        registry.promote(other if i % 2 == 0 else str(first))
    # Separate interpreters, as API workers and the CLI are.
    command = [sys.executable, "-c", ROLL_BACK, database_url, str(shipped), str(rounds)]
    processes = [subprocess.Popen(command) for _ in range(workers)]
    assert [process.wait(timeout=180) for process in processes] == [0] * workers
    # Each rollback popped a different activation: a lost read-modify-write would leave the
    # stack higher (and a different model active) or fail a rollback for want of history.
    index = registry.read()
    assert [e.action for e in index.events].count("rollback") == workers * rounds
    assert index.activation_stack() == [first]
    assert index.active == first


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


def test_models_cli_lists_promotes_and_rolls_back(
    cli_env: str,
    shipped: Path,
    make_checkpoint: MakeCheckpoint,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["models", "list"]) == 0
    table = capsys.readouterr().out
    first = ckpt.load(shipped).version
    assert f"*  {first}" in table and "shipped" in table

    other = Registry(Database(cli_env), shipped=shipped).register(make_checkpoint(1))[0]
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


def test_models_add_registers_without_promoting(
    cli_env: str,
    shipped: Path,
    make_checkpoint: MakeCheckpoint,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = make_checkpoint(1)
    version = ckpt.load(path).version
    assert main(["models", "add", str(path)]) == 0
    assert capsys.readouterr().out == f"{version}\n"
    assert main(["models", "add", str(path), "--json"]) == 0  # the same file again: a no-op
    assert json.loads(capsys.readouterr().out) == {"version": version, "added": False}
    other = make_checkpoint(2)
    assert main(["models", "add", str(other), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "version": ckpt.load(other).version,
        "added": True,
    }

    registry = Registry(Database(cli_env), shipped=shipped)
    index = registry.read()
    assert index.active == ckpt.load(shipped).version  # not promoted
    assert index.models[version].origin == "manual"
    assert [e.action for e in index.events] == ["initial"]

    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    for bad in (junk, tmp_path / "missing.pt"):
        assert main(["models", "add", str(bad), "--json"]) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        assert "not a valid checkpoint" in captured.err and str(bad) in captured.err
    assert len(registry.read().models) == 3
    registry.database.dispose()

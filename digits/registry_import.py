"""One-time import of the file registry (``data_dir/models``) the database registry replaced."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from digits import checkpoint_file
from digits.schemas import ActivationEvent

if TYPE_CHECKING:
    from digits.registry import Registry

log = logging.getLogger(__name__)

FILE_FORMAT = "digits-registry/1"


def _report(entry: dict[str, object]) -> str | None:
    # The file registry pointed at a report folder; the database keeps the Markdown itself.
    folder = entry.get("report")
    if not isinstance(folder, str):
        return None
    try:
        return (Path(folder) / "retrain.md").read_text()
    except OSError:
        return None


def import_file_registry(registry: Registry, root: Path) -> int:
    """Copy versions, their checkpoints and the activation history from ``root/index.json``
    into an empty database registry; the number of versions imported (0: nothing to import)."""
    try:
        raw = json.loads((root / "index.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return 0
    if raw.get("format") != FILE_FORMAT:
        log.warning("%s/index.json is not a %s index; not imported", root, FILE_FORMAT)
        return 0
    imported = 0
    stored: set[str] = set()
    for version, entry in raw["models"].items():
        path = root / "checkpoints" / f"{version}.pt"
        try:
            data = path.read_bytes()
            checkpoint = checkpoint_file.load_bytes(data, name=str(path))
        except (OSError, checkpoint_file.CheckpointError) as exc:
            log.warning("file registry: %s skipped: %s", version, exc)
            continue
        imported += registry.add_bytes(
            data,
            checkpoint,
            origin=entry["origin"],
            metrics=entry.get("metrics", {}),
            report=_report(entry),
            registered_at=datetime.fromisoformat(entry["registered_at"]),
        )
        stored.add(version)
    events = [
        ActivationEvent.model_validate({"reason": ""} | event)
        for event in raw["events"]
        if event["version"] in stored  # an activation of a skipped file cannot be kept
    ]
    registry.import_history(events)
    log.info("imported %d model versions from the file registry at %s", imported, root)
    return imported

"""``digits models list | add PATH | promote VERSION | rollback | export-onnx [PATH...]``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from digits import checkpoint as ckpt
from digits.checkpoint import CheckpointError
from digits.loop.registry import Index, Registry, RegistryError
from digits.schemas import ActivationEvent

log = logging.getLogger(__name__)

# Exit status for a file that is not a usable checkpoint: a usage error, unlike a registry one.
EXIT_BAD_CHECKPOINT = 2


def _table(index: Index) -> str:
    promoted = {e.version: e.at.isoformat() for e in index.events}
    rows = [
        ("", "version", "origin", "parent", "created", "activated", "MNIST", "held-out", "data")
    ]

    def percent(value: Any) -> str:
        return f"{value:.2%}" if isinstance(value, float) else "-"

    for entry in index.models.values():  # in registration order
        rows.append(
            (
                "*" if entry.version == index.active else "",
                entry.version,
                entry.origin,
                entry.parent or "-",
                entry.created_at.isoformat()[:19],
                promoted.get(entry.version, "-")[:19],
                percent(entry.metrics.get("mnist_accuracy")),
                percent(entry.metrics.get("heldout_accuracy")),
                ", ".join(f"{k}={v}" for k, v in entry.data.items()) or "-",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _add(registry: Registry, args: argparse.Namespace) -> int:
    try:
        version, added = registry.register(args.path, origin="manual")
    except CheckpointError as exc:
        sys.stderr.write(f"digits models add: not a valid checkpoint: {exc}\n")
        return EXIT_BAD_CHECKPOINT
    if args.json:
        sys.stdout.write(json.dumps({"version": version, "added": added}) + "\n")
    else:
        sys.stdout.write(f"{version}\n")
    return 0


def export_onnx(registry: Registry, paths: list[Path]) -> list[str]:
    """Give every registered model (``paths``: those files) without an ONNX graph one exported
    from its weights; the versions that got one. The only step of an upgrade that needs torch."""
    exported = []
    for path in paths:
        raw = ckpt.file_bytes(path)
        loaded = ckpt.read_bytes(raw, name=str(path))
        if loaded.graph is None:
            ckpt.write_atomically(ckpt.with_graph(raw, name=str(path)), path)
            exported.append(loaded.version)
    for version in [] if paths else registry.graphless():
        raw = registry.checkpoint_bytes(version)
        registry.replace_bytes(version, ckpt.with_graph(raw, name=f"registered model {version}"))
        exported.append(version)
    return exported


def models_command(args: argparse.Namespace) -> int:
    registry = Registry.from_settings()
    if args.models_command == "export-onnx":
        try:
            registry.ensure()
            exported = export_onnx(registry, args.paths)
        except (CheckpointError, RegistryError) as exc:
            log.error("%s", exc)
            return 1
        if args.json:
            sys.stdout.write(json.dumps({"exported": exported}) + "\n")
        else:
            sys.stdout.write(f"ONNX graphs exported: {len(exported)} {' '.join(exported)}\n")
        return 0
    event: ActivationEvent | None = None
    try:
        registry.ensure()
        if args.models_command == "add":
            return _add(registry, args)
        if args.models_command == "promote":
            event = registry.promote(args.version, reason="digits models promote")
        elif args.models_command == "rollback":
            event = registry.rollback(reason="digits models rollback")
        index = registry.read()
    except RegistryError as exc:
        log.error("%s", exc)
        return 1
    if args.json:
        out: dict[str, Any] = index.to_json()
        if args.models_command != "list":
            out = {
                "event": event.model_dump(mode="json") if event else None,
                "active": index.active,
            }
        sys.stdout.write(json.dumps(out) + "\n")
    elif args.models_command == "list":
        sys.stdout.write(_table(index) + "\n")
    elif event is None:
        sys.stdout.write(f"{index.active} is already active\n")
    else:
        sys.stdout.write(f"{event.action}: {event.version} is active (was {event.previous})\n")
    return 0

"""``digits models list | add PATH | promote VERSION | rollback``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

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


def models_command(args: argparse.Namespace) -> int:
    registry = Registry.from_settings()
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

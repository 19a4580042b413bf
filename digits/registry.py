"""The model registry: every checkpoint by version, which one is active, and when that changed.

Layout under ``Settings.data_dir / "models"`` (a volume every process of a deployment shares):

    index.json              versions, their metrics/parent/data, and the activation events
    checkpoints/<v>.pt      one immutable file per version (the version is the weights' hash)
    active.pt               a copy of the active checkpoint: the file the API serves and watches
    .lock                   held (flock) for every read-modify-write of the index

Every write is a temp file + ``os.replace``, so a reader sees the old file or the new one, never a
torn one. The shipped weights are registered, and activated, the first time the registry is used.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import filecmp
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from digits.config import SHIPPED_WEIGHTS, Settings, get_settings

log = logging.getLogger(__name__)

FORMAT = "digits-registry/1"
Action = Literal["initial", "promote", "rollback"]
Origin = Literal["shipped", "retrain", "manual"]


class RegistryError(RuntimeError):
    """An unknown version, nothing to roll back to, or an unusable registry folder."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class ModelEntry:
    version: str
    origin: Origin
    created_at: str  # when the checkpoint was trained
    registered_at: str
    parent: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)  # scalars only; the file has the rest
    data: dict[str, Any] = field(default_factory=dict)  # what it was trained on
    report: str | None = None  # the comparison report that produced it, if any


@dataclass
class ActivationEvent:
    at: str
    action: Action
    version: str
    previous: str | None
    reason: str = ""


@dataclass
class Index:
    active: str | None = None
    models: dict[str, ModelEntry] = field(default_factory=dict)
    events: list[ActivationEvent] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "active": self.active,
            "models": {v: asdict(m) for v, m in self.models.items()},
            "events": [asdict(e) for e in self.events],
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Index:
        if raw.get("format") != FORMAT:
            raise RegistryError(f"not a {FORMAT} index (format {raw.get('format')!r})")
        return cls(
            active=raw["active"],
            models={v: ModelEntry(**m) for v, m in raw["models"].items()},
            events=[ActivationEvent(**e) for e in raw["events"]],
        )

    def activation_stack(self) -> list[str]:
        """Versions as a stack: a promotion pushes, a rollback pops back to the one before."""
        stack: list[str] = []
        for event in self.events:
            if event.action == "rollback":
                if stack:
                    stack.pop()
            else:
                stack.append(event.version)
        return stack


def _scalars(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if isinstance(v, int | float | str | bool)}


def _atomic_write(path: Path, payload: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _atomic_copy(source: Path, dest: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class Registry:
    def __init__(self, root: Path, *, shipped: Path = SHIPPED_WEIGHTS) -> None:
        self.root = root
        self.shipped = shipped
        self.index_path = root / "index.json"
        self.active_file = root / "active.pt"
        self.checkpoints = root / "checkpoints"

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Registry:
        settings = settings or get_settings()
        return cls(settings.data_dir / "models", shipped=SHIPPED_WEIGHTS)

    def checkpoint_path(self, version: str) -> Path:
        return self.checkpoints / f"{version}.pt"

    # -- reading (no lock: files are only ever replaced whole) ---------------------------------

    def read(self) -> Index:
        try:
            raw = json.loads(self.index_path.read_text())
        except FileNotFoundError:
            return Index()
        except json.JSONDecodeError as exc:
            raise RegistryError(f"{self.index_path} is not valid JSON: {exc}") from exc
        return Index.from_json(raw)

    def active_version(self) -> str | None:
        return self.read().active

    # -- read-modify-write under the lock ------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[Index]:
        """Hold the registry lock; yields the current index and writes it back on success."""
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                index = self._initialised(self.read())
                yield index
                self._write(index)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write(self, index: Index) -> None:
        _atomic_write(self.index_path, json.dumps(index.to_json(), indent=1).encode())
        if index.active is None:
            return
        source = self.checkpoint_path(index.active)
        if not self.active_file.exists() or not filecmp.cmp(source, self.active_file, False):
            _atomic_copy(source, self.active_file)

    def _initialised(self, index: Index) -> Index:
        """Register the shipped weights the first time (and a newer shipped file after an
        upgrade, which becomes active unless an operator activated something else)."""
        from digits import checkpoint as ckpt

        if not self.shipped.exists():
            if index.active is None:
                raise RegistryError(
                    f"no models registered and no shipped weights at {self.shipped}"
                )
            return index
        if index.active is not None and self._shipped_known(index):
            return index
        shipped = ckpt.load(self.shipped)
        if shipped.version in index.models:
            return index
        self._add(
            index, self.shipped, shipped, origin="shipped", metrics=self._shipped_report(shipped)
        )
        current = index.models.get(index.active or "")
        if current is None or current.origin == "shipped":
            self._activate(index, shipped.version, "initial", "shipped weights")
        return index

    def _add(
        self, index: Index, path: Path, checkpoint: Any, *, origin: Origin, **extra: Any
    ) -> ModelEntry:
        dest = self.checkpoint_path(checkpoint.version)
        if not dest.exists():
            _atomic_copy(path, dest)
        entry = ModelEntry(
            version=checkpoint.version,
            origin=origin,
            created_at=checkpoint.created_at,
            registered_at=_now(),
            parent=checkpoint.parent,
            metrics=_scalars(checkpoint.metrics) | _scalars(extra.pop("metrics", {})),
            data=dict(checkpoint.data),
            **extra,
        )
        index.models[entry.version] = entry
        log.info("registered model %s (%s)", entry.version, origin)
        return entry

    @staticmethod
    def _activate(index: Index, version: str, action: Action, reason: str) -> ActivationEvent:
        event = ActivationEvent(_now(), action, version, index.active, reason)
        index.events.append(event)
        index.active = version
        log.info("%s: model %s is active (was %s)", action, version, event.previous)
        return event

    # -- operations ----------------------------------------------------------------------------

    def ensure(self) -> Index:
        """Create the registry (registering the shipped weights) if needed; returns the index."""
        if self.index_path.exists() and self.active_file.exists():
            index = self.read()
            if index.active is not None and self._shipped_known(index):
                return index
        with self._locked() as index:
            return index

    def _shipped_report(self, shipped: Any) -> dict[str, Any]:
        """MNIST test accuracy from the evaluation report shipped beside the weights, if any."""
        try:
            report = json.loads((self.shipped.parent / "report.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        if report.get("model", {}).get("version") != shipped.version:
            return {}
        return {"mnist_accuracy": report["accuracy"]}

    def _shipped_known(self, index: Index) -> bool:
        # Cheap check (no torch): the shipped file's bytes are already stored under some version.
        if not self.shipped.exists():
            return True
        return any(
            m.origin == "shipped"
            and self.checkpoint_path(m.version).stat().st_size == self.shipped.stat().st_size
            and filecmp.cmp(self.checkpoint_path(m.version), self.shipped, False)
            for m in index.models.values()
        )

    def register(
        self,
        path: Path,
        *,
        origin: Origin = "manual",
        metrics: dict[str, Any] | None = None,
        report: str | None = None,
    ) -> ModelEntry:
        """Store the checkpoint at ``path`` under its version (not activated)."""
        from digits import checkpoint as ckpt

        checkpoint = ckpt.load(path)
        with self._locked() as index:
            existing = index.models.get(checkpoint.version)
            if existing is not None:
                return existing
            return self._add(
                index, path, checkpoint, origin=origin, metrics=metrics or {}, report=report
            )

    def promote(self, version: str, *, reason: str = "") -> ActivationEvent | None:
        """Make ``version`` (or a unique prefix of it) active; None if it already is."""
        with self._locked() as index:
            version = self._resolve(index, version)
            if index.active == version:
                return None
            return self._activate(index, version, "promote", reason)

    def rollback(self, *, reason: str = "") -> ActivationEvent:
        """Re-activate the version that was active before the current one was activated."""
        with self._locked() as index:
            stack = index.activation_stack()
            if len(stack) < 2:
                raise RegistryError("nothing to roll back to: no earlier active model")
            return self._activate(index, stack[-2], "rollback", reason)

    def card(self, version: str) -> str | None:
        """The model card (shipped weights) or retraining report (Markdown) of ``version``,
        without its image links: the text stands alone wherever it is shown."""
        entry = self.read().models.get(version)
        if entry is None:
            return None
        if entry.origin == "shipped":
            path = self.shipped.parent / "MODEL_CARD.md"
        elif entry.report is not None:
            path = Path(entry.report) / "retrain.md"
        else:
            return None
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        return "\n".join(line for line in text.splitlines() if not line.startswith("![")) + "\n"

    @staticmethod
    def _resolve(index: Index, version: str) -> str:
        matches = [v for v in index.models if v.startswith(version)] if version else []
        if len(matches) != 1:
            known = ", ".join(sorted(index.models)) or "none"
            what = "ambiguous" if matches else "unknown"
            raise RegistryError(f"{what} model version {version!r}; registered: {known}")
        return matches[0]


def active_path(settings: Settings | None = None) -> Path:
    """The checkpoint to serve: ``DIGITS_MODEL_PATH`` if set, else the registry's active model
    (its ``active.pt``, replaced atomically on every promotion, so a watcher sees the change)."""
    settings = settings or get_settings()
    if settings.model_path is not None:
        return settings.model_path
    registry = Registry.from_settings(settings)
    registry.ensure()
    return registry.active_file


# -- `digits models ...` -----------------------------------------------------------------------


def _table(index: Index) -> str:
    promoted = {e.version: e.at for e in index.events}
    rows = [
        ("", "version", "origin", "parent", "created", "activated", "MNIST", "held-out", "data")
    ]

    def percent(value: Any) -> str:
        return f"{value:.2%}" if isinstance(value, float) else "-"

    for entry in sorted(index.models.values(), key=lambda m: m.registered_at):
        rows.append(
            (
                "*" if entry.version == index.active else "",
                entry.version,
                entry.origin,
                entry.parent or "-",
                entry.created_at[:19],
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


def models_command(args: argparse.Namespace) -> int:
    registry = Registry.from_settings()
    try:
        if args.models_command == "promote":
            registry.ensure()
            event = registry.promote(args.version, reason="digits models promote")
        elif args.models_command == "rollback":
            registry.ensure()
            event = registry.rollback(reason="digits models rollback")
        else:
            event = None
        index = registry.ensure()
    except RegistryError as exc:
        log.error("%s", exc)
        return 1
    if args.json:
        out: dict[str, Any] = index.to_json()
        if args.models_command != "list":
            out = {"event": asdict(event) if event else None, "active": index.active}
        sys.stdout.write(json.dumps(out) + "\n")
    elif args.models_command == "list":
        sys.stdout.write(_table(index) + "\n")
    elif event is None:
        sys.stdout.write(f"{index.active} is already active\n")
    else:
        sys.stdout.write(f"{event.action}: {event.version} is active (was {event.previous})\n")
    return 0

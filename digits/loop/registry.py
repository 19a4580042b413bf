"""The model registry, in the database: every checkpoint (its bytes too) by version, which one
is active, and when that changed.

The database is the only shared state, so API replicas on any machine serve the active version
without a shared folder. The active version is the newest activation row: a promotion is one
INSERT, which every database orders for us, instead of a read-modify-write under a lock.
The shipped weights are registered, and activated, the first time the registry is used.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from digits import checkpoint as ckpt
from digits.checkpoint import CheckpointError, ServingCheckpoint
from digits.config import SHIPPED_WEIGHTS, Settings, get_settings
from digits.db.migrate import upgrade_head
from digits.db.models import ActivationRow, ModelVersionRow, utcnow
from digits.db.session import Database
from digits.schemas import Action, ActivationEvent, Origin, RegisteredModel

log = logging.getLogger(__name__)

FORMAT = "digits-registry/1"


class RegistryError(RuntimeError):
    """An unknown version, nothing to roll back to, or no model at all."""


@dataclass
class Index:
    """What the registry holds, without the checkpoint bytes."""

    active: str | None = None
    models: dict[str, RegisteredModel] = field(default_factory=dict)
    reports: dict[str, str | None] = field(default_factory=dict)
    events: list[ActivationEvent] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "active": self.active,
            "models": {
                v: m.model_dump(mode="json", exclude={"active"}) | {"report": self.reports[v]}
                for v, m in self.models.items()
            },
            "events": [e.model_dump(mode="json") for e in self.events],
        }

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


def _event(row: ActivationRow) -> ActivationEvent:
    return ActivationEvent.model_validate(
        {
            "at": row.at,
            "action": row.action,
            "version": row.version,
            "previous": row.previous,
            "reason": row.reason,
        }
    )


def _active(session: Session) -> str | None:
    return session.scalar(select(ActivationRow.version).order_by(ActivationRow.id.desc()).limit(1))


class _Unconditional:
    """``record_activation``'s default: record whatever is active now."""


UNCONDITIONAL = _Unconditional()


class Registry:
    def __init__(self, database: Database, *, shipped: Path | None = None) -> None:
        self.database = database
        # Looked up when called, not when defined, so tests can point it at their own weights.
        self.shipped = shipped if shipped is not None else SHIPPED_WEIGHTS

    @classmethod
    def from_settings(cls, settings: Settings | None = None, *, migrate: bool = True) -> Registry:
        settings = settings or get_settings()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        if migrate:  # the API migrates in its lifespan, and must start with the database away
            upgrade_head(settings.resolved_database_url)
        return cls(Database(settings.resolved_database_url))

    # -- reading ---------------------------------------------------------------------------------

    def read(self) -> Index:
        with self.database.read() as session:
            rows = session.scalars(
                select(ModelVersionRow).order_by(ModelVersionRow.registered_at)
            ).all()
            events = session.scalars(select(ActivationRow).order_by(ActivationRow.id)).all()
            index = Index(events=[_event(e) for e in events])
            index.active = index.events[-1].version if index.events else None
            for row in rows:
                index.models[row.version] = RegisteredModel(
                    version=row.version,
                    origin=row.origin,
                    created_at=row.created_at,
                    registered_at=row.registered_at,
                    parent=row.parent,
                    metrics=row.metrics,
                    data=row.data,
                    active=row.version == index.active,
                )
                index.reports[row.version] = row.report
        return index

    def active_version(self) -> str | None:
        """The one query replicas poll to follow a promotion."""
        with self.database.read() as session:
            return _active(session)

    def checkpoint_bytes(self, version: str) -> bytes:
        with self.database.read() as session:
            raw = session.scalar(
                select(ModelVersionRow.checkpoint).where(ModelVersionRow.version == version)
            )
        if raw is None:
            raise RegistryError(f"unknown model version {version!r}")
        return raw

    def load(self, version: str) -> ServingCheckpoint:
        raw = self.checkpoint_bytes(version)
        return ckpt.read_bytes(raw, name=f"registered model {version}")

    def load_active(self) -> ServingCheckpoint:
        active = self.ensure().active
        assert active is not None  # ensure() activates the shipped weights at the latest
        return self.load(active)

    def card(self, version: str) -> str | None:
        """The model card (shipped weights) or retraining report (Markdown) of ``version``,
        without its image links: the text stands alone wherever it is shown."""
        index = self.read()
        entry = index.models.get(version)
        if entry is None:
            return None
        text = index.reports.get(version)
        if entry.origin == "shipped":
            try:
                text = (self.shipped.parent / "MODEL_CARD.md").read_text()
            except FileNotFoundError:
                return None
        if text is None:
            return None
        return "\n".join(line for line in text.splitlines() if not line.startswith("![")) + "\n"

    # -- writing ---------------------------------------------------------------------------------

    def ensure(self) -> Index:
        """Register (and activate) the shipped weights when the registry is empty; register
        newer shipped weights after an upgrade."""
        index = self.read()
        if not self.shipped.exists():
            if index.active is None:
                raise RegistryError(
                    f"no models registered and no shipped weights at {self.shipped}"
                )
            return index
        raw = self.shipped.read_bytes()
        shipped = ckpt.read_bytes(raw, name=str(self.shipped))
        if shipped.version in index.models and index.active is not None:
            if self.load(shipped.version).graph is None and shipped.graph is not None:
                # Registered by a release whose checkpoints had no graph: the shipped file
                # holds the same weights with theirs.
                self.replace_bytes(shipped.version, raw)
            return index
        self.add_bytes(raw, shipped, origin="shipped", metrics=self._shipped_report(shipped))
        index = self.read()
        current = index.models.get(index.active or "")
        if current is None:
            self.record_activation(shipped.version, "initial", "shipped weights", if_active=None)
        elif current.origin == "shipped" and current.version != shipped.version:
            # Newer shipped weights (an upgrade) replace older ones, but never a model an
            # operator or retraining activated.
            self.record_activation(
                shipped.version, "promote", "newer shipped weights", if_active=current.version
            )
        return self.read()

    def _shipped_report(self, shipped: ServingCheckpoint) -> dict[str, Any]:
        """MNIST test accuracy from the evaluation report shipped beside the weights, if any."""
        try:
            report = json.loads((self.shipped.parent / "report.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        if report.get("model", {}).get("version") != shipped.version:
            return {}
        return {"mnist_accuracy": report["accuracy"]}

    def add_bytes(
        self,
        raw: bytes,
        checkpoint: ServingCheckpoint,
        *,
        origin: Origin,
        metrics: dict[str, Any] | None = None,
        report: str | None = None,
        registered_at: datetime | None = None,
    ) -> bool:
        """Store a checkpoint under its version (not activated); False if it was already there."""
        row = ModelVersionRow(
            version=checkpoint.version,
            origin=origin,
            created_at=datetime.fromisoformat(checkpoint.created_at).astimezone(UTC),
            registered_at=registered_at or utcnow(),
            parent=checkpoint.parent,
            metrics=_scalars(checkpoint.metrics) | _scalars(metrics or {}),
            data=dict(checkpoint.data),
            checkpoint=raw,
            report=report,
        )
        try:
            with self.database.write() as session:
                if session.get(ModelVersionRow, row.version) is not None:
                    return False
                session.add(row)
        except IntegrityError:  # another process registered the same bytes just now
            return False
        log.info("registered model %s (%s)", row.version, origin)
        return True

    def register(
        self, path: Path, *, origin: Origin = "manual", report: str | None = None
    ) -> tuple[str, bool]:
        """Store the checkpoint at ``path``, with its graph exported now if it has none; its
        version, and whether it was new."""
        if not path.is_file():
            raise CheckpointError(f"no checkpoint at {path}")
        raw = path.read_bytes()
        checkpoint = ckpt.read_bytes(raw, name=str(path))
        if checkpoint.graph is None:
            raw = _with_graph(raw, name=str(path))
        return checkpoint.version, self.add_bytes(raw, checkpoint, origin=origin, report=report)

    def graphless(self) -> list[str]:
        """Versions registered by a release whose checkpoints had no ONNX graph."""
        return [v for v in self.read().models if self.load(v).graph is None]

    def replace_bytes(self, version: str, raw: bytes) -> None:
        """Store ``raw`` as the checkpoint of ``version``: the same weights (its version says
        so) with a graph the stored bytes lack."""
        checkpoint = ckpt.read_bytes(raw, name=f"new bytes of model {version}")
        if checkpoint.version != version:
            raise RegistryError(f"bytes of model {checkpoint.version} offered for {version}")
        checkpoint.require_graph()
        with self.database.write() as session:
            row = session.get(ModelVersionRow, version)
            if row is None:
                raise RegistryError(f"unknown model version {version!r}")
            row.checkpoint = raw
        log.info("model %s now carries its ONNX graph", version)

    @contextmanager
    def _activating(self) -> Iterator[Session]:
        """A write transaction in which no other process appends an activation: the active
        version read in it stays the active one until it commits. SQLite's BEGIN IMMEDIATE
        admits one writer already; PostgreSQL needs the table lock (readers still read)."""
        with self.database.write() as session:
            if not self.database.is_sqlite:
                session.execute(text("LOCK TABLE model_activations IN SHARE ROW EXCLUSIVE MODE"))
            yield session

    def record_activation(
        self,
        version: str,
        action: Action,
        reason: str,
        *,
        at: datetime | None = None,
        if_active: str | _Unconditional | None = UNCONDITIONAL,
    ) -> ActivationEvent | None:
        """Append an activation; with ``if_active``, only while that version (None: nothing) is
        still the active one, so replicas racing to activate the shipped weights record it once."""
        with self._activating() as session:
            previous = _active(session)
            if not isinstance(if_active, _Unconditional) and previous != if_active:
                return None
            event = _append(session, version, action, reason, at=at)
        return _logged(event)

    def import_history(self, events: list[ActivationEvent]) -> bool:
        """Append ``events`` as they are, if no activation was recorded yet; False otherwise
        (another process imported them first)."""
        with self._activating() as session:
            if _active(session) is not None:
                return False
            for event in events:
                _append(session, event.version, event.action, event.reason, at=event.at)
        return True

    def promote(self, version: str, *, reason: str = "") -> ActivationEvent | None:
        """Make ``version`` (or a unique prefix of it) active; None if it already is."""
        version = _resolve(self.read(), version)
        with self._activating() as session:
            if _active(session) == version:
                return None
            event = _append(session, version, "promote", reason)
        return _logged(event)

    def rollback(self, *, reason: str = "") -> ActivationEvent:
        """Re-activate the version that was active before the current one was activated."""
        with self._activating() as session:
            rows = session.scalars(select(ActivationRow).order_by(ActivationRow.id)).all()
            stack = Index(events=[_event(row) for row in rows]).activation_stack()
            if len(stack) < 2:
                raise RegistryError("nothing to roll back to: no earlier active model")
            event = _append(session, stack[-2], "rollback", reason)
        return _logged(event)


def _with_graph(raw: bytes, *, name: str) -> bytes:
    try:
        return ckpt.with_graph(raw, name=name)
    except ModuleNotFoundError as exc:
        if exc.name != "torch":
            raise
        raise CheckpointError(
            f"{name} has no ONNX graph, and exporting one needs torch: "
            "`pip install 'digits[train]'`"
        ) from exc


def _append(
    session: Session, version: str, action: Action, reason: str, *, at: datetime | None = None
) -> ActivationEvent:
    previous = _active(session)
    row = ActivationRow(
        at=at or utcnow(), action=action, version=version, previous=previous, reason=reason
    )
    session.add(row)
    session.flush()
    return _event(row)


def _logged(event: ActivationEvent) -> ActivationEvent:
    # Called once the transaction committed: the log never reports an activation that was not.
    log.info("%s: model %s is active (was %s)", event.action, event.version, event.previous)
    return event


def _resolve(index: Index, version: str) -> str:
    matches = [v for v in index.models if v.startswith(version)] if version else []
    if len(matches) != 1:
        known = ", ".join(sorted(index.models)) or "none"
        what = "ambiguous" if matches else "unknown"
        raise RegistryError(f"{what} model version {version!r}; registered: {known}")
    return matches[0]

"""Where a session's memory lives: one ``memory_entries`` row per labelled drawing and model
version, in the database, so every worker and replica answers a session alike.

Session first, everything else keyword-only; callers own the transaction, nothing here commits.
Entries are tied to the model version that made their features: ``recall`` reads one version's
only. After a promotion the new version starts with none; ``relearn`` recomputes a session's
entries for it from the 28x28 inputs its predictions keep.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import Connection, and_, bindparam, delete, func, or_, select
from sqlalchemy.orm import Session

from digits import preprocess
from digits.db.models import MemoryEntryRow, PredictionRow
from digits.memory.adapt import Entry

# (N, 28, 28) model inputs -> (N, D) penultimate features, from the serving model.
FeaturesOf = Callable[[np.ndarray], np.ndarray]
_STORED = np.dtype("<f2")


def encode(features: np.ndarray) -> bytes:
    return np.asarray(features, dtype=_STORED).tobytes()


def decode(raw: bytes) -> np.ndarray:
    return np.frombuffer(raw, dtype=_STORED).astype(np.float32)


def remember(
    session: Session,
    *,
    session_id: uuid.UUID,
    prediction_id: uuid.UUID,
    model_version: str,
    features: np.ndarray,
    label: int | None,
    labelled_at: datetime,
) -> None:
    """Record a labelled drawing (``label`` None: "not a digit"); a new label of the same
    prediction replaces its entry and makes it the session's newest."""
    session.merge(
        MemoryEntryRow(
            prediction_id=prediction_id,
            model_version=model_version,
            session_id=session_id,
            features=encode(features),
            label=label,
            created_at=labelled_at,
        )
    )
    session.flush()


# Every POST with a session token reads this: built once, so SQLAlchemy reuses its compiled form.
_RECALL = (
    select(MemoryEntryRow.prediction_id, MemoryEntryRow.features, MemoryEntryRow.label)
    .where(
        MemoryEntryRow.session_id == bindparam("session_id"),
        MemoryEntryRow.model_version == bindparam("model_version"),
        MemoryEntryRow.created_at >= bindparam("since"),
    )
    .order_by(MemoryEntryRow.created_at.desc())
    .limit(bindparam("limit"))
)
_EVER = datetime(1970, 1, 1, tzinfo=UTC)


def recall(
    session: Session | Connection,
    *,
    session_id: uuid.UUID,
    model_version: str,
    limit: int,
    since: datetime | None = None,
) -> list[Entry]:
    """The session's last ``limit`` labelled drawings under ``model_version`` (those labelled
    at ``since`` or later), oldest first."""
    parameters = {
        "session_id": session_id,
        "model_version": model_version,
        "limit": limit,
        "since": since or _EVER,
    }
    rows = session.execute(_RECALL, parameters).all()[::-1]
    if not rows:
        return []
    # One decode for all of them: a per-row frombuffer and cast cost more than the query
    # (POST p50 of a 200-entry session, benchmarks/session_bench.py).
    features = decode(b"".join(row.features for row in rows)).reshape(len(rows), -1)
    return [Entry(row.prediction_id, f, row.label) for row, f in zip(rows, features, strict=True)]


# Every POST with a session token reads this first: one pass over the index's entries of the
# session and version, no feature read. Any label (a new entry, or a relabel's replacement)
# makes the newest newer, and any removal (DELETE, a relabel) changes the count or the newest.
# That holds while the replicas' clocks agree: a relabel stamped by a clock behind the one that
# stamped the newest entry would go unseen by a worker that keeps the session's entries, until
# the session's next label.
_SUMMARY = select(func.count(), func.max(MemoryEntryRow.created_at)).where(
    MemoryEntryRow.session_id == bindparam("session_id"),
    MemoryEntryRow.model_version == bindparam("model_version"),
)


def summary(
    session: Session | Connection, *, session_id: uuid.UUID, model_version: str
) -> tuple[int, datetime | None]:
    """(how many entries, when the newest was labelled) of the session under ``model_version``:
    what ``recall`` would read changes only when this does."""
    parameters = {"session_id": session_id, "model_version": model_version}
    found, newest = session.execute(_SUMMARY, parameters).one()
    return int(found or 0), newest


def count(session: Session, *, session_id: uuid.UUID, model_version: str, limit: int) -> int:
    """How many entries ``recall`` gives the session under ``model_version``."""
    found, _ = summary(session, session_id=session_id, model_version=model_version)
    return min(found, limit)


def unlearn(session: Session, *, prediction_id: uuid.UUID) -> None:
    """Drop the prediction's entries of every model version: its label changed."""
    session.execute(delete(MemoryEntryRow).where(MemoryEntryRow.prediction_id == prediction_id))


def forget(session: Session, *, session_id: uuid.UUID) -> int:
    """Drop every entry of the session, of every model version. Returns how many."""
    result = session.execute(delete(MemoryEntryRow).where(MemoryEntryRow.session_id == session_id))
    session.flush()
    return int(getattr(result, "rowcount", 0) or 0)


def relearn(
    session: Session,
    *,
    session_id: uuid.UUID,
    model_version: str,
    features_of: FeaturesOf,
    limit: int,
) -> int:
    """Give ``model_version`` the entries it lacks among the session's last ``limit`` labelled
    predictions, computing their features from the stored model inputs. Returns how many."""
    labelled = or_(PredictionRow.true_label.is_not(None), PredictionRow.not_a_digit.is_(True))
    last = (
        select(PredictionRow.id)
        .where(PredictionRow.session_id == session_id, labelled)
        .order_by(PredictionRow.labelled_at.desc())
        .limit(limit)
        .subquery()
    )
    has_entry = select(MemoryEntryRow.prediction_id).where(
        and_(
            MemoryEntryRow.prediction_id == PredictionRow.id,
            MemoryEntryRow.model_version == model_version,
        )
    )
    rows = session.execute(
        select(
            PredictionRow.id,
            PredictionRow.input_png,
            PredictionRow.true_label,
            PredictionRow.labelled_at,
        )
        .where(PredictionRow.id.in_(select(last.c.id)), ~has_entry.exists())
        .order_by(PredictionRow.labelled_at.desc())
    ).all()
    if not rows:
        return 0
    inputs = np.stack([preprocess.png_to_input(row.input_png) for row in rows])
    for row, features in zip(rows, features_of(inputs), strict=True):
        remember(
            session,
            session_id=session_id,
            prediction_id=row.id,
            model_version=model_version,
            features=features,
            label=row.true_label,
            labelled_at=row.labelled_at,
        )
    return len(rows)

"""ORM schema: the one definition Alembic migrations are checked against."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    Uuid,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on both databases.

    PostgreSQL keeps ``timestamptz``; SQLite has no zone, so values are stored as naive UTC and
    given back their zone on the way out. Either way the application only ever sees UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map: dict[Any, Any] = {datetime: UtcDateTime()}  # noqa: RUF012


_Row = TypeVar("_Row", bound=Base)


def _to_json(column: Any, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(column.type, Uuid):
        return str(value)
    if isinstance(column.type, UtcDateTime):
        return value.isoformat()
    if isinstance(column.type, LargeBinary):
        return base64.b64encode(value).decode()
    return value


def _from_json(column: Any, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(column.type, Uuid):
        return uuid.UUID(value)
    if isinstance(column.type, UtcDateTime):
        return datetime.fromisoformat(value)
    if isinstance(column.type, LargeBinary):
        return base64.b64decode(value)
    return value


def row_to_json(row: Base, *, only: frozenset[str] | None = None) -> dict[str, Any]:
    """A row's columns (all, or ``only`` these) as JSON values, keyed by column name: UUIDs and
    times as ISO strings, bytes as base64. The spool's one serializer, read by row_from_json."""
    return {
        column.key: _to_json(column, getattr(row, column.key))
        for column in row.__table__.columns
        if only is None or column.key in only
    }


def row_from_json(model: type[_Row], fields: dict[str, Any]) -> _Row:
    """The row ``row_to_json`` wrote. A column missing from ``fields`` (written before the
    column existed) gets its Python-side default, or None."""
    values: dict[str, Any] = {}
    for column in model.__table__.columns:
        if column.key in fields:
            values[column.key] = _from_json(column, fields[column.key])
        elif column.default is not None and column.default.is_scalar:
            values[column.key] = column.default.arg
        else:
            values[column.key] = None
    return model(**values)


class Submitted:
    """The columns of a submitted drawing, shared by a single digit's row and a number's."""

    source: Mapped[str] = mapped_column(String(16), nullable=False)
    drawing_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    # The server-issued session: only it (and the admin) may read or label the row, and
    # retraining holds out and caps whole sessions.
    session_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    model_version: Mapped[str] = mapped_column(String(128), nullable=False)
    # The submitted drawing, re-encoded as a size-capped PNG; NULL once retention dropped it.
    image_png: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class PredictionRow(Submitted, Base):
    __tablename__ = "predictions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    digit: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    confidence: Mapped[float] = mapped_column(Float, nullable=False)
    probabilities: Mapped[list[float]] = mapped_column(JSON, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    # The 28x28 the model saw, kept forever with the label: it is the next model's training data.
    input_png: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    true_label: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)
    # The user's other answer: the drawing is no digit at all (then true_label is NULL).
    not_a_digit: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default=false()
    )
    labelled_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    # When the row was first labelled: relabelling never counts again towards a retraining.
    first_labelled_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    latency_ms: Mapped[float] = mapped_column(Float, nullable=False)
    # A digit of a written number: the number's row, its place from the left (0 first) and its
    # box in the drawing's pixels; all NULL for a drawing posted as a single digit.
    number_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("numbers.id", ondelete="CASCADE"), nullable=True
    )
    position: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)
    box: Mapped[list[int] | None] = mapped_column(JSON, nullable=True)
    # The session's memory changed the digit or the status (digits.memory), and the ids (as
    # strings) of the session's earlier predictions that decided; NULL when not adapted.
    adapted: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default=false()
    )
    like: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True), nullable=True)

    def __init__(self, **kwargs: Any) -> None:
        # Its Python default when not given: the hot path inserts every column of content().
        kwargs.setdefault("adapted", False)
        super().__init__(**kwargs)

    def content(self) -> dict[str, Any]:
        """The columns a later prediction of the same drawing replaces."""
        return {
            column.key: getattr(self, column.key)
            for column in self.__table__.columns
            if column.key not in self.IDENTITY | self.LABEL
        }

    # What a later prediction of the same drawing replaces: all but its identity and its label.
    IDENTITY: ClassVar[frozenset[str]] = frozenset({"id", "drawing_id"})
    LABEL: ClassVar[frozenset[str]] = frozenset(
        {"true_label", "not_a_digit", "labelled_at", "first_labelled_at"}
    )

    __table_args__ = (
        Index("ix_predictions_created_at", "created_at"),
        Index("ix_predictions_digit_created_at", "digit", "created_at"),
        Index("ix_predictions_true_label_created_at", "true_label", "created_at"),
        Index("ix_predictions_drawing_id", "drawing_id"),
        Index("ix_predictions_session_id", "session_id"),
        Index("ix_predictions_model_version", "model_version"),
        Index("ix_predictions_number_id_position", "number_id", "position"),
        Index("ix_predictions_first_labelled_at", "first_labelled_at"),
    )


class SessionRow(Base):
    """A session the server issued. Its token is signed, never stored: the row only says when
    the session was last used (it expires after DIGITS_SESSION_TTL_DAYS without use) and
    whether it was deleted (its token is then refused). A session whose token was issued while
    the database was down gets its row on first use."""

    __tablename__ = "sessions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    # Grows with every change of the session's memory (digits.api.memory): a worker that keeps
    # the session's entries knows from this row, read by every request, whether they are current.
    memory_generation: Mapped[int] = mapped_column(
        Integer, nullable=False, default=0, server_default="0"
    )


class NumberRow(Submitted, Base):
    """A whole written number (digits.read.numbers). Each digit is a PredictionRow with this
    row's id, so statistics and retraining see the digits as they see single drawings."""

    __tablename__ = "numbers"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    number: Mapped[str] = mapped_column(String(32), nullable=False)  # every piece's best digit
    confidence: Mapped[float] = mapped_column(Float, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    # The strokes sent beside the drawing, if any, in its pixels.
    strokes: Mapped[list[list[list[float]]] | None] = mapped_column(JSON, nullable=True)
    # The user's answer: the right number (any length), or that it is no number at all.
    true_number: Mapped[str | None] = mapped_column(String(32), nullable=True)
    not_a_number: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default=false()
    )
    labelled_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    latency_ms: Mapped[float] = mapped_column(Float, nullable=False)
    # Its digits, left to right (loaded with the number; the database deletes them with it).
    digits: Mapped[list[PredictionRow]] = relationship(
        order_by=PredictionRow.position, lazy="selectin", passive_deletes=True
    )

    # What a later reading of the same drawing replaces: all but its identity and its label.
    IDENTITY: ClassVar[frozenset[str]] = frozenset({"id", "drawing_id"})
    LABEL: ClassVar[frozenset[str]] = frozenset({"true_number", "not_a_number", "labelled_at"})

    __table_args__ = (
        Index("ix_numbers_created_at", "created_at"),
        Index("ix_numbers_status_created_at", "status", "created_at"),
        Index("ix_numbers_session_id", "session_id"),
        Index("ix_numbers_drawing_id", "drawing_id"),
    )


class MemoryEntryRow(Base):
    """One labelled drawing a session's later answers learn from (``digits.memory``): the
    network's penultimate features of the drawing under one model version, and its label.

    One row per (prediction, model version): entries of another version are never read with
    this one's, and a rollback finds its own entries again.
    """

    __tablename__ = "memory_entries"

    prediction_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("predictions.id", ondelete="CASCADE"), primary_key=True
    )
    model_version: Mapped[str] = mapped_column(String(128), primary_key=True)
    session_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    # float16, little-endian: half the bytes of float32, and cosine similarities move by
    # well under 0.001, far below the closeness threshold's resolution.
    features: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    # The digit drawn, or NULL: the person said it is not a digit (an entry is always labelled).
    label: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)

    __table_args__ = (
        Index(
            "ix_memory_entries_session_version_created", "session_id", "model_version", "created_at"
        ),
    )


class RetrainLeaseRow(Base):
    """One row per lease name: who holds the right to run a retraining, until when, and when
    the last one finished. Taken with a conditional UPDATE, which both databases make atomic, so
    replicas on any machine run one retraining at a time."""

    __tablename__ = "retrain_lease"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(64), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    last_started_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class RetrainJobRow(Base):
    """A retraining asked for by an admin or by DIGITS_RETRAIN_AFTER, run by `digits trainer`
    (never by the API): queued -> running -> done | failed, with its progress and report."""

    __tablename__ = "retrain_jobs"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    origin: Mapped[str] = mapped_column(String(16), nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    progress: Mapped[float] = mapped_column(Float, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    # The summary `digits retrain` prints, once done.
    report: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (Index("ix_retrain_jobs_state_created_at", "state", "created_at"),)


class ModelVersionRow(Base):
    """One registered checkpoint. The bytes live here so any replica on any machine can serve
    the active version from the database alone, with no shared model volume."""

    __tablename__ = "model_versions"

    # The weights' content hash: the same file registered twice is the same row.
    version: Mapped[str] = mapped_column(String(128), primary_key=True)
    origin: Mapped[str] = mapped_column(String(16), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    registered_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    parent: Mapped[str | None] = mapped_column(String(128), nullable=True)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    checkpoint: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    # The retraining report (Markdown) that produced this version, shown as its card.
    report: Mapped[str | None] = mapped_column(Text, nullable=True)


class ActivationRow(Base):
    """The activation history; the newest row names the active version (an append-only log
    replicas poll, so a promotion is one INSERT and never a read-modify-write of shared state)."""

    __tablename__ = "model_activations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    action: Mapped[str] = mapped_column(String(16), nullable=False)
    version: Mapped[str] = mapped_column(
        String(128), ForeignKey("model_versions.version"), nullable=False
    )
    previous: Mapped[str | None] = mapped_column(String(128), nullable=True)
    reason: Mapped[str] = mapped_column(Text, nullable=False)

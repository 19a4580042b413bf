"""Where predictions and corrections go: the database, or the spool when it is unreachable.

Writes go straight to the database. Only a connection failure sends them to this process's
spool, and while the spool holds anything, later writes queue behind it so they reach the
database in the order they were acknowledged. A background task replays the spool.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from digits.api.metrics import Metrics
from digits.db import crud
from digits.db import sessions as session_rows
from digits.db.models import PredictionRow, row_from_json, row_to_json, utcnow
from digits.db.session import Database, is_connection_error
from digits.db.spool import Applied, Entry, Spool
from digits.errors import (
    DatabaseUnavailableError,
    PredictionNotFoundError,
    PredictionSpooledError,
    SpoolError,
)
from digits.predict import Prediction
from digits.schemas import PredictionRecord, Submission

logger = logging.getLogger(__name__)

RECENT_LIMIT = 10_000
REPLAY_BATCH = 200
# A spooled correction: the label columns but not_a_digit, which a null true_label implies,
# and the row's session, so that a correction of a since deleted session is dropped.
_LABEL_ENTRY = frozenset({"id", "session_id", "true_label", "labelled_at"})
# Runs inside the transaction that labelled the row (the session's memory learns from it).
OnLabel = Callable[[Session, PredictionRow], None]


class Answered(Protocol):
    """A stored record as answered: a prediction's or a number's."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def session_id(self) -> uuid.UUID | None: ...
    @property
    def drawing_id(self) -> uuid.UUID | None: ...


R = TypeVar("R", bound=Answered)


def owned(record: R | None, owner: uuid.UUID | None) -> R | None:
    """``record`` when ``owner`` (None: the admin) may see it."""
    if record is None or owner is None or record.session_id == owner:
        return record
    return None


class Recent(Generic[R]):
    """Recently answered records (no images), so that a correction can still be acknowledged
    with the whole record while the database is down, and a drawing sent again replaces its
    spooled answer. ``is_open``: the record has no correction yet."""

    def __init__(self, is_open: Callable[[R], bool]) -> None:
        self._records: OrderedDict[uuid.UUID, R] = OrderedDict()
        self._lock = threading.Lock()
        self._is_open = is_open

    def remember(self, record: R) -> R:
        with self._lock:
            self._records[record.id] = record
            self._records.move_to_end(record.id)
            while len(self._records) > RECENT_LIMIT:
                self._records.popitem(last=False)
        return record

    def get(self, record_id: uuid.UUID) -> R | None:
        with self._lock:
            return self._records.get(record_id)

    def open_for_drawing(self, drawing_id: uuid.UUID, session_id: uuid.UUID | None) -> R | None:
        """The session's latest record of the drawing, if it is still open."""
        with self._lock:
            for record in reversed(self._records.values()):
                if record.drawing_id == drawing_id and record.session_id == session_id:
                    return record if self._is_open(record) else None
        return None


@dataclass(frozen=True)
class Kept(Generic[R]):
    """Where a kind of record (a prediction, a number) is known besides the database."""

    recent: Recent[R]
    record: Callable[[Any], R]  # the wire record of its ORM row
    spooled: Callable[[uuid.UUID], R | None]  # as the spools know it, label applied
    not_found: Callable[[uuid.UUID], Exception]
    what: str  # "prediction", "number": for the error messages


def _labelled(record: PredictionRecord, true_label: int | None, at: datetime) -> PredictionRecord:
    return record.model_copy(
        update={"true_label": true_label, "not_a_digit": true_label is None, "labelled_at": at}
    )


def _record(row: PredictionRow) -> PredictionRecord:
    return PredictionRecord.model_validate(row, from_attributes=True)


def new_prediction_row(
    prediction: Prediction, submission: Submission, session_id: uuid.UUID
) -> PredictionRow:
    return PredictionRow(
        id=uuid.uuid4(),
        created_at=utcnow(),
        digit=prediction.digit,
        confidence=prediction.confidence,
        probabilities=prediction.probabilities,
        status=prediction.status,
        model_version=prediction.model_version,
        image_png=prediction.image_png,
        input_png=prediction.input_png,
        latency_ms=prediction.latency_ms,
        source=submission.source,
        drawing_id=submission.drawing_id,
        session_id=session_id,
        true_label=None,
        not_a_digit=False,
        labelled_at=None,
        adapted=prediction.adapted,
        like=[str(each) for each in prediction.like] or None,
    )


def _prediction_entry(row: PredictionRow) -> Entry:
    return {"op": "prediction", **row_to_json(row, only=row.IDENTITY | frozenset(row.content()))}


def _label_entry(record: PredictionRecord, true_label: int | None, at: datetime) -> Entry:
    row = PredictionRow(
        id=record.id, session_id=record.session_id, true_label=true_label, labelled_at=at
    )
    return {"op": "label", **row_to_json(row, only=_LABEL_ENTRY)}


class PredictionStore:
    def __init__(self, database: Database, spool: Spool, metrics: Metrics) -> None:
        self.database = database  # tests replace it to simulate outages
        self.spool = spool
        self.metrics = metrics
        self.recent: Recent[PredictionRecord] = Recent(
            lambda record: record.true_label is None and not record.not_a_digit
        )
        # False until the schema is known to be at head (the database was down at startup):
        # writes go to the spool meanwhile instead of failing on a missing table.
        self.schema_ready = True
        # Replay of the spool entries other stores write (digits.api.number_store), by "op":
        # each applies its entry and says whether its row was found (False: keep it for later).
        self.appliers: dict[str, Callable[[Any, Entry], bool]] = {}

    # -- bookkeeping -----------------------------------------------------------------------
    def db_failed(self, error: SQLAlchemyError) -> None:
        self.metrics.db_errors.inc()
        logger.warning("database unreachable, using the spool: %s", error.__class__.__name__)

    def spool_write(self, entry: Entry) -> None:
        try:
            self.spool.append(entry)
        except SpoolError as exc:
            logger.error("the database is down and the spool cannot be written: %s", exc)
            # The path stays in the log: the client learns only that it may try again.
            raise SpoolError(
                "the database is unavailable and the local spool cannot be written"
            ) from exc
        self.metrics.spooled.labels(kind=entry["op"]).inc()
        self.metrics.spool_depth.set(self.spool.depth)

    def spooled_record(self, prediction_id: uuid.UUID) -> PredictionRecord | None:
        """The record as the spools know it (own and other processes'), label applied."""
        wanted = str(prediction_id)
        record: PredictionRecord | None = None
        for entries in (self.spool.pending(), self.spool.others()):
            for entry in entries:
                if entry.get("id") != wanted:
                    continue
                if entry.get("op") == "prediction":
                    record = _record(row_from_json(PredictionRow, entry))
                elif entry.get("op") == "label" and record is not None:
                    label = row_from_json(PredictionRow, entry)
                    assert label.labelled_at is not None  # every label entry has its time
                    record = _labelled(record, label.true_label, label.labelled_at)
            if record is not None:
                return record
        return None

    # -- writes ----------------------------------------------------------------------------
    def save_prediction(
        self, prediction: Prediction, submission: Submission, *, session_id: uuid.UUID
    ) -> PredictionRecord:
        """Store durably (database or spool) as one of ``session_id``'s predictions and return
        the record; its id may be an older one when the session predicted the same drawing
        before and did not correct it yet."""
        row = new_prediction_row(prediction, submission, session_id)
        self.metrics.predictions.labels(digit=str(row.digit), status=row.status).inc()
        # Without a drawing id the write is one INSERT.
        return self.save_new(
            self._kept(),
            row,
            insert=lambda session: crud.record_prediction(session, row=row),
            entry=_prediction_entry,
            one_statement=row.drawing_id is None,
        )

    def save_new(
        self,
        kept: Kept[R],
        row: Any,
        *,
        insert: Callable[[Session], uuid.UUID],
        entry: Callable[[Any], Entry],
        one_statement: bool = False,
    ) -> R:
        """A new prediction's or number's ``row``: ``insert`` it (the id it is stored under: an
        older one when it replaces the open row of the same drawing), else spool it."""
        if self.schema_ready and self.spool.depth == 0:
            try:
                with self.database.write(one_statement=one_statement) as session:
                    row.id = insert(session)
            except SQLAlchemyError as exc:
                if not is_connection_error(exc):
                    raise
                self.db_failed(exc)
            else:
                return kept.recent.remember(kept.record(row))
        if row.drawing_id is not None:
            earlier = kept.recent.open_for_drawing(row.drawing_id, row.session_id)
            if earlier is not None:
                row.id = earlier.id
        self.spool_write(entry(row))
        return kept.recent.remember(kept.record(row))

    def label(
        self,
        prediction_id: uuid.UUID,
        true_label: int | None,
        *,
        owner: uuid.UUID | None = None,
        on_label: OnLabel | None = None,
    ) -> PredictionRecord:
        """Record the digit the user says was drawn, or None for "not a digit", on one of
        ``owner``'s predictions (None: any). ``on_label`` runs in the same transaction when the
        label is written to the database (not when it is spooled)."""
        labelled_at = utcnow()
        return self.write_label(
            self._kept(),
            prediction_id,
            owner,
            write=lambda session: crud.set_label(
                session,
                prediction_id=prediction_id,
                true_label=true_label,
                labelled_at=labelled_at,
                owner=owner,
            ),
            on_label=on_label,
            spooled=lambda known: (
                _label_entry(known, true_label, labelled_at),
                _labelled(known, true_label, labelled_at),
            ),
        )

    def _kept(self) -> Kept[PredictionRecord]:
        return Kept(
            self.recent, _record, self.spooled_record, PredictionNotFoundError, "prediction"
        )

    def write_label(
        self,
        kept: Kept[R],
        record_id: uuid.UUID,
        owner: uuid.UUID | None,
        *,
        write: Callable[[Session], Any],
        on_label: Callable[[Session, Any], None] | None,
        spooled: Callable[[R], tuple[Entry, R]],
    ) -> R:
        """A correction of a prediction's or a number's: ``write`` it to the database (its
        labelled row, None when ``owner`` has no such row there; ``on_label`` then runs in the
        same transaction), else spool it (``spooled``: the entry, and the record as labelled)
        when this server knows the record."""
        if self.schema_ready and self.spool.depth == 0:
            try:
                with self.database.write() as session:
                    row = write(session)
                    if row is not None and on_label is not None:
                        on_label(session, row)
                    record = kept.record(row) if row is not None else None
            except SQLAlchemyError as exc:
                if not is_connection_error(exc):
                    raise
                self.db_failed(exc)
            else:
                if record is not None:
                    self.metrics.corrections.inc()
                    return kept.recent.remember(record)
                # Not in the database: it may still wait in another worker's spool.
                if owned(kept.spooled(record_id), owner) is None:
                    raise kept.not_found(record_id)
        known = owned(kept.recent.get(record_id) or kept.spooled(record_id), owner)
        if known is None:
            raise DatabaseUnavailableError(
                f"the database is unavailable and this {kept.what} is not known to this "
                "server; try the correction again in a moment"
            )
        entry, labelled = spooled(known)
        self.spool_write(entry)
        self.metrics.corrections.inc()
        return kept.recent.remember(labelled)

    # -- reads -----------------------------------------------------------------------------
    def get(self, prediction_id: uuid.UUID, *, owner: uuid.UUID | None = None) -> PredictionRecord:
        """One of ``owner``'s predictions (None: any)."""
        return self.read_record(
            self._kept(),
            prediction_id,
            owner,
            read=lambda session: crud.get_prediction(
                session, prediction_id=prediction_id, owner=owner
            ),
        )

    def read_record(
        self,
        kept: Kept[R],
        record_id: uuid.UUID,
        owner: uuid.UUID | None,
        *,
        read: Callable[[Session], Any],
    ) -> R:
        """A prediction or a number of ``owner``'s from the database; 503 while it waits in a
        spool (or the database is down and it is there), 404 otherwise."""
        try:
            with self.database.read() as session:
                row = read(session)
                record = kept.record(row) if row is not None else None
        except SQLAlchemyError as exc:
            if not is_connection_error(exc):
                raise
            self.db_failed(exc)
            record = None
            if owned(kept.spooled(record_id), owner) is None:
                raise DatabaseUnavailableError("the database is unavailable") from exc
        if record is None:
            if owned(kept.spooled(record_id), owner) is not None:
                raise PredictionSpooledError(
                    f"{kept.what} {record_id} is safely stored in the local spool while the "
                    "database is unavailable; it can be read once it has been replayed"
                )
            raise kept.not_found(record_id)
        return record

    # -- replay ----------------------------------------------------------------------------
    def replay(self) -> int:
        """Adopt orphaned spools and replay ours; returns how many entries reached the database.

        Raises the database's error when it is still unreachable (the entries stay).
        """
        self.spool.adopt_orphans()
        self.metrics.spool_depth.set(self.spool.depth)
        replayed = self.spool.replay(self._apply)
        self.metrics.spool_depth.set(self.spool.depth)
        if replayed:
            self.metrics.replayed.inc(replayed)
            logger.info("replayed spooled writes", extra={"entries": replayed})
        return replayed

    def _apply(self, entries: list[Entry]) -> list[Applied]:
        results: list[Applied] = []
        deferred: set[str] = set()
        for start in range(0, len(entries), REPLAY_BATCH):
            batch = entries[start : start + REPLAY_BATCH]
            with self.database.write() as session:
                # Deleted while their writes waited in a spool: what the person deleted stays
                # deleted. One query for the batch's sessions.
                deleted = session_rows.deleted_among(
                    session, {uuid.UUID(e["session_id"]) for e in batch if e.get("session_id")}
                )
                for entry in batch:
                    results.append(self._apply_one(session, entry, deferred, deleted))
        return results

    def _apply_one(
        self, session: Any, entry: Entry, deferred: set[str], deleted: set[uuid.UUID]
    ) -> Applied:
        op, key = entry.get("op"), entry.get("id", "")
        if key in deferred:
            return Applied.DEFERRED  # keep later entries of the same id behind the first
        session_id = entry.get("session_id")
        if session_id and uuid.UUID(session_id) in deleted:
            return Applied.DONE
        applier = self.appliers.get(str(op))
        if applier is not None:
            if applier(session, entry):
                return Applied.DONE
            deferred.add(key)
            return Applied.DEFERRED
        if op not in ("prediction", "label"):
            logger.error("dropping an unknown spool entry", extra={"op": op})
            return Applied.DONE
        row = row_from_json(PredictionRow, entry)
        if op == "prediction":
            crud.upsert_prediction(session, row=row)
            return Applied.DONE
        assert row.labelled_at is not None  # every label entry has its time
        found = crud.apply_spooled_label(
            session, prediction_id=row.id, true_label=row.true_label, labelled_at=row.labelled_at
        )
        if found is None:
            deferred.add(key)
            return Applied.DEFERRED
        return Applied.DONE

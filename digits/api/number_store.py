"""Where numbers and their corrections go: the database, or the spool when it is unreachable,
exactly as predictions do (digits.api.store, whose spool, order and replay they share)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session

from digits.api.store import Kept, PredictionStore, Recent
from digits.db import numbers
from digits.db.models import NumberRow, PredictionRow, row_from_json, row_to_json, utcnow
from digits.db.session import Database
from digits.db.spool import Entry
from digits.errors import NumberNotFoundError
from digits.schemas import NumberRecord

NUMBER, LABEL = "number", "number_label"
# A spooled correction: the label columns but not_a_number, which a null true_number implies,
# and the number's session, so that a correction of a since deleted session is dropped.
_LABEL_ENTRY = frozenset({"id", "session_id", "true_number", "labelled_at"})
# Runs inside the transaction that labelled a number (its digit rows labelled with it, or their
# labels withdrawn): the session's memory learns from them.
OnNumberLabel = Callable[[Session, NumberRow], None]


def _record(row: NumberRow) -> NumberRecord:
    return NumberRecord.model_validate(row, from_attributes=True)


def _labelled(record: NumberRecord, true_number: str | None, at: datetime) -> NumberRecord:
    return record.model_copy(
        update={"true_number": true_number, "not_a_number": true_number is None, "labelled_at": at}
    )


def number_entry(row: NumberRow) -> Entry:
    """A number and its digits as one spool entry: they reach the database together."""
    return {
        "op": NUMBER,
        **row_to_json(row),
        "digits": [row_to_json(digit) for digit in row.digits],
    }


def _spooled_number(row: NumberRow) -> Entry:
    for digit in row.digits:  # the number may have taken an earlier id (the same drawing's)
        digit.number_id = row.id
    return number_entry(row)


def number_from_entry(entry: Entry) -> NumberRow:
    row = row_from_json(NumberRow, entry)
    row.digits = [row_from_json(PredictionRow, digit) for digit in entry.get("digits", [])]
    return row


def _label_entry(record: NumberRecord, true_number: str | None, at: datetime) -> Entry:
    row = NumberRow(
        id=record.id, session_id=record.session_id, true_number=true_number, labelled_at=at
    )
    return {"op": LABEL, **row_to_json(row, only=_LABEL_ENTRY)}


def _replay_number(session: Session, entry: Entry) -> bool:
    numbers.upsert_number(session, row=number_from_entry(entry))
    return True


def _replay_label(session: Session, entry: Entry) -> bool:
    label = row_from_json(NumberRow, entry)
    assert label.labelled_at is not None  # every label entry has its time
    found = numbers.apply_spooled_label(
        session, number_id=label.id, true_number=label.true_number, labelled_at=label.labelled_at
    )
    return found is not None


class NumberStore:
    """Numbers beside the predictions of ``store``: same database, spool and metrics."""

    def __init__(self, store: PredictionStore) -> None:
        self.store = store
        store.appliers |= {NUMBER: _replay_number, LABEL: _replay_label}
        self.recent: Recent[NumberRecord] = Recent(
            lambda record: record.true_number is None and not record.not_a_number
        )

    @property
    def database(self) -> Database:
        return self.store.database  # tests replace it to simulate outages

    def _direct(self) -> bool:
        return self.store.schema_ready and self.store.spool.depth == 0

    def spooled_record(self, number_id: uuid.UUID) -> NumberRecord | None:
        """The number as the spools know it (own and other processes'), label applied."""
        wanted = str(number_id)
        record: NumberRecord | None = None
        for entries in (self.store.spool.pending(), self.store.spool.others()):
            for entry in entries:
                if entry.get("id") != wanted:
                    continue
                if entry.get("op") == NUMBER:
                    record = _record(number_from_entry(entry))
                elif entry.get("op") == LABEL and record is not None:
                    label = row_from_json(NumberRow, entry)
                    assert label.labelled_at is not None
                    record = _labelled(record, label.true_number, label.labelled_at)
            if record is not None:
                return record
        return None

    def save(self, row: NumberRow) -> NumberRecord:
        """Store durably (database or spool) and return the record; its id is an older one when
        the session read the same drawing before and did not correct it yet."""
        self.store.metrics.numbers.labels(status=row.status).inc()
        return self.store.save_new(
            self._kept(),
            row,
            insert=lambda session: numbers.record_number(session, row=row),
            entry=_spooled_number,
        )

    def label(
        self,
        number_id: uuid.UUID,
        true_number: str | None,
        *,
        owner: uuid.UUID | None,
        on_label: OnNumberLabel | None = None,
    ) -> NumberRecord:
        """Record the number the user says was written (None: no number) on one of ``owner``'s
        numbers (None: any). ``on_label`` runs with the number's row in the same transaction when
        the label is written to the database (not when it is spooled)."""
        labelled_at = utcnow()
        return self.store.write_label(
            self._kept(),
            number_id,
            owner,
            write=lambda session: numbers.set_number_label(
                session,
                number_id=number_id,
                true_number=true_number,
                labelled_at=labelled_at,
                owner=owner,
            ),
            on_label=on_label,
            spooled=lambda known: (
                _label_entry(known, true_number, labelled_at),
                _labelled(known, true_number, labelled_at),
            ),
        )

    def get(self, number_id: uuid.UUID, *, owner: uuid.UUID | None) -> NumberRecord:
        """One of ``owner``'s numbers (None: any)."""
        return self.store.read_record(
            self._kept(),
            number_id,
            owner,
            read=lambda session: numbers.get_number(session, number_id=number_id, owner=owner),
        )

    def _kept(self) -> Kept[NumberRecord]:
        return Kept(self.recent, _record, self.spooled_record, NumberNotFoundError, "number")

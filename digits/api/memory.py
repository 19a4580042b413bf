"""A session's memory in serving: its labelled drawings adapt its next answers (``digits.memory``).

``adapt`` runs on every POST made with a session token, for a prediction or for each digit of a
number: one read of the session's entry count and newest label for the served model version
from the index, nothing more when it has none, and a read of the entries themselves when this
worker does not keep them as they are now. ``learn`` runs inside the transaction of every label
(PATCH) written to the database, of a prediction or of a number whose true number labels its
digits: each labelled prediction's entry is recomputed from its stored 28x28 input under the
served model, replacing any it had (a digit whose label was withdrawn loses its entry), and the
session's recent labelled predictions that lack an entry for that model (after a promotion)
get theirs. The memory is the prediction's session's, whoever labels it: an admin's label of a
session's drawing is evidence about that person's handwriting as much as their own.

Left out, the answer is the plain model's with ``adapted`` false: without a session token, with
DIGITS_SESSION_MEMORY=false, and while the database is unreachable. A label written to the spool
during an outage is not remembered (the replay writes the label only); the next label of the
session written to the database recomputes the entries the session's last labels lack.
"""

from __future__ import annotations

import logging
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np
from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from digits.api.sessions import Authenticated
from digits.api.store import PredictionStore
from digits.db import sessions as session_rows
from digits.db.models import PredictionRow
from digits.db.session import is_connection_error
from digits.memory import Entry, adapt, store
from digits.predict import Prediction, Predictor

logger = logging.getLogger(__name__)


# Sessions whose entries a worker keeps decoded (least recently used first out): at most
# DIGITS_SESSION_MEMORY_SIZE entries of 1152 float32 features each, 0.9 MB for a session of 200,
# so at most about 15 MB a worker. Reading and decoding 200 entries cost more CPU than the
# model's answer (benchmarks/session_bench.py --full-session-only).
CACHED_SESSIONS = 16


@dataclass(frozen=True)
class _Recalled:
    generation: int  # the session's memory_generation the entries are current for
    summary: tuple[int, datetime | None]  # store.summary when the entries were read
    entries: list[Entry]


class SessionMemory:
    """One per worker, in ``app.state.memory``.

    The database is the memory; each worker keeps the entries of its recently served sessions
    decoded. Every change of a session's memory grows its ``memory_generation`` (the sessions
    row every request reads already, digits.api.sessions), so a label, relabel or withdrawal
    written by any worker or replica is seen at the session's next POST, which then reads what
    changed; a session that never labelled anything costs nothing; a promotion reads another
    version's entries.
    """

    def __init__(self, predictions: PredictionStore, *, enabled: bool, size: int) -> None:
        self.predictions = predictions  # its database, replaced by tests to simulate outages
        self.enabled = enabled
        self.size = size
        self._recalled: OrderedDict[tuple[uuid.UUID, str], _Recalled] = OrderedDict()

    def _recall(self, session: Authenticated, version: str) -> list[Entry]:
        generation = session.memory_generation
        if not generation:  # 0: nothing labelled yet; None: the database is down
            return []
        predictions = self.predictions
        if not predictions.schema_ready or predictions.spool.depth:  # known to be down
            return []
        key = (session.session_id, version)
        kept = self._recalled.get(key)
        if kept is None or kept.generation != generation:
            try:
                with predictions.database.read_one() as connection:
                    summary = store.summary(
                        connection, session_id=session.session_id, model_version=version
                    )
                    kept = self._refreshed(connection, key, kept, summary, generation)
            except SQLAlchemyError as exc:
                if not is_connection_error(exc):
                    raise
                predictions.metrics.db_errors.inc()
                logger.debug("database unreachable; answering without the session's memory")
                return []
        self._recalled[key] = kept
        self._recalled.move_to_end(key)
        while len(self._recalled) > CACHED_SESSIONS:
            self._recalled.popitem(last=False)
        return kept.entries

    def _refreshed(
        self,
        connection: Connection,
        key: tuple[uuid.UUID, str],
        kept: _Recalled | None,
        summary: tuple[int, datetime | None],
        generation: int,
    ) -> _Recalled:
        """The session's entries as they are now. After a label (the common change: one new or
        replaced entry, newer than all this worker keeps) only what was labelled since is read;
        anything else (a removal, entries recomputed for older drawings) reads them all."""
        session_id, version = key
        count, _ = summary
        if not count:
            return _Recalled(generation, summary, [])
        if kept is not None and kept.summary == summary:  # another version's change
            return _Recalled(generation, summary, kept.entries)
        if kept is not None and kept.summary[1] is not None:
            newer = store.recall(
                connection,
                session_id=session_id,
                model_version=version,
                limit=self.size,
                since=kept.summary[1],
            )
            cached = {entry.prediction_id for entry in kept.entries}
            fresh = {entry.prediction_id for entry in newer}
            if count == kept.summary[0] + len(fresh - cached):
                older = [entry for entry in kept.entries if entry.prediction_id not in fresh]
                return _Recalled(generation, summary, (older + newer)[-self.size :])
        entries = store.recall(
            connection, session_id=session_id, model_version=version, limit=self.size
        )
        return _Recalled(generation, summary, entries)

    def adapt(
        self, prediction: Prediction, predictor: Predictor, session: Authenticated
    ) -> Prediction:
        """``prediction`` as the session's memory answers it (itself when nothing changes)."""
        return self.adapt_all([prediction], predictor, session)[0]

    def adapt_all(
        self, predictions: Sequence[Prediction], predictor: Predictor, session: Authenticated
    ) -> list[Prediction]:
        """Each of ``predictions`` (a number's digits) as the session's memory answers it, from
        one read of its entries."""
        if not self.enabled or all(p.features is None for p in predictions):
            return list(predictions)
        entries = self._recall(session, predictor.version)
        if not entries:
            return list(predictions)
        return [_adapted(p, predictor, entries) for p in predictions]

    def learn(self, session: Session, row: PredictionRow, predictor: Predictor) -> None:
        """Remember the just-labelled ``row`` for its session (inside the label's transaction)."""
        self.learn_all(session, [row], predictor)

    def learn_all(
        self, session: Session, rows: Sequence[PredictionRow], predictor: Predictor
    ) -> None:
        """``learn`` for rows labelled together (a number's digits); rows whose label was
        withdrawn are forgotten."""
        if not self.enabled:
            return
        for row in rows:  # a relabel replaces, in every version
            store.unlearn(session, prediction_id=row.id)
        for session_id in {row.session_id for row in rows} - {None}:
            assert session_id is not None  # narrowed by the set difference
            session_rows.memory_changed(session, session_id=session_id)
            store.relearn(
                session,
                session_id=session_id,
                model_version=predictor.version,
                features_of=lambda inputs: predictor.scores_and_features(inputs)[2],
                limit=self.size,
            )

    def forget(self, session_id: uuid.UUID) -> None:
        """Drop this worker's copy of the session's entries (the session is deleted)."""
        for key in [key for key in self._recalled if key[0] == session_id]:
            del self._recalled[key]

    def learned_from(self, session: Session, session_id: uuid.UUID, version: str) -> int:
        if not self.enabled:
            return 0
        return store.count(session, session_id=session_id, model_version=version, limit=self.size)


def _adapted(prediction: Prediction, predictor: Predictor, entries: list[Entry]) -> Prediction:
    if prediction.features is None:
        return prediction
    answer = adapt(
        np.asarray(prediction.probabilities),
        prediction.reject,
        prediction.features,
        entries,
        status=predictor.status,
    )
    if not answer.adapted:
        return prediction
    return replace(
        prediction,
        digit=answer.digit,
        confidence=answer.confidence,
        probabilities=answer.probabilities,
        status=answer.status,
        adapted=True,
        like=tuple(answer.like),
    )

"""The memory's rows, on both databases: remember on a label, recall the last N of one model
version, forget a session, recompute a session's entries for a new version."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from digits import preprocess
from digits.db import crud
from digits.db.models import PredictionRow
from digits.db.session import Database
from digits.memory import store

T0 = datetime(2026, 12, 5, 6, 0, tzinfo=UTC)
DIM = 1152


def _predict(database: Database, session_id: uuid.UUID, version: str, pixel: int) -> uuid.UUID:
    """A stored prediction of the session whose 28x28 input has one lit pixel."""
    model_input = np.zeros((28, 28), np.float32)
    model_input.flat[pixel] = 1.0
    row = PredictionRow(
        id=uuid.uuid4(),
        created_at=T0 + timedelta(seconds=pixel),
        digit=3,
        confidence=0.9,
        probabilities=[0.1] * 10,
        status="ok",
        source="api",
        drawing_id=None,
        model_version=version,
        image_png=None,
        input_png=preprocess.input_to_png(model_input),
        latency_ms=1.0,
        session_id=session_id,
    )
    with database.write() as session:
        return crud.record_prediction(session, row=row)


def _remember(
    database: Database, session_id: uuid.UUID, version: str, step: int, label: int | None
) -> uuid.UUID:
    prediction_id = _predict(database, session_id, version, step)
    with database.write() as session:
        store.remember(
            session,
            session_id=session_id,
            prediction_id=prediction_id,
            model_version=version,
            features=np.full(DIM, step, np.float32),
            label=label,
            labelled_at=T0 + timedelta(minutes=step),
        )
    return prediction_id


def test_recall_gives_the_last_n_of_one_session_and_version_oldest_first(
    database: Database,
) -> None:
    me, other = uuid.uuid4(), uuid.uuid4()
    ids = [_remember(database, me, "v1", step, step % 10) for step in range(5)]
    _remember(database, me, "v2", 5, 1)
    _remember(database, other, "v1", 6, 2)
    with database.read() as session:
        entries = store.recall(session, session_id=me, model_version="v1", limit=3)
    assert [e.prediction_id for e in entries] == ids[2:]
    assert [e.label for e in entries] == [2, 3, 4]
    assert entries[0].features.dtype == np.float32 and entries[0].features.shape == (DIM,)
    assert np.all(entries[0].features == 2.0)


def test_a_new_label_replaces_the_entry_and_not_a_digit_reads_back_as_none(
    database: Database,
) -> None:
    me = uuid.uuid4()
    first = _remember(database, me, "v1", 0, 7)
    _remember(database, me, "v1", 1, 2)
    with database.write() as session:
        store.remember(
            session,
            session_id=me,
            prediction_id=first,
            model_version="v1",
            features=np.ones(DIM, np.float32),
            label=None,
            labelled_at=T0 + timedelta(hours=1),
        )
    with database.read() as session:
        entries = store.recall(session, session_id=me, model_version="v1", limit=10)
    assert [(e.prediction_id, e.label) for e in entries][-1] == (first, None)
    assert len(entries) == 2


def test_forget_drops_every_version_of_that_session_only(database: Database) -> None:
    me, other = uuid.uuid4(), uuid.uuid4()
    _remember(database, me, "v1", 0, 1)
    _remember(database, me, "v2", 1, 1)
    _remember(database, other, "v1", 2, 1)
    with database.write() as session:
        assert store.forget(session, session_id=me) == 2
    with database.read() as session:
        assert store.recall(session, session_id=me, model_version="v1", limit=10) == []
        assert store.recall(session, session_id=me, model_version="v2", limit=10) == []
        assert len(store.recall(session, session_id=other, model_version="v1", limit=10)) == 1


def test_relearn_recomputes_a_sessions_labelled_inputs_for_a_new_version(
    database: Database,
) -> None:
    me = uuid.uuid4()
    old = [_remember(database, me, "v1", step, step) for step in range(3)]
    unlabelled = _predict(database, me, "v1", 10)
    with database.write() as session:
        for step, prediction_id in enumerate(old):
            label = None if step == 0 else step
            crud.set_label(
                session,
                prediction_id=prediction_id,
                true_label=label,
                labelled_at=T0 + timedelta(minutes=step),
            )

    def lit_pixel(inputs: np.ndarray) -> np.ndarray:  # the "new model": where the ink is
        return np.repeat(inputs.reshape(len(inputs), -1).argmax(axis=1)[:, None], DIM, axis=1)

    with database.write() as session:
        made = store.relearn(
            session, session_id=me, model_version="v2", features_of=lit_pixel, limit=2
        )
        assert made == 2  # the limit: the last two labelled
        again = store.relearn(
            session, session_id=me, model_version="v2", features_of=lit_pixel, limit=10
        )
        assert again == 1  # only the one still missing
    with database.read() as session:
        entries = store.recall(session, session_id=me, model_version="v2", limit=10)
        v1 = store.recall(session, session_id=me, model_version="v1", limit=10)
    assert [e.prediction_id for e in entries] == old  # labelling order
    assert [e.label for e in entries] == [None, 1, 2]
    assert [float(e.features[0]) for e in entries] == [0.0, 1.0, 2.0]
    assert unlabelled not in {e.prediction_id for e in entries}
    assert [float(e.features[0]) for e in v1] == [0.0, 1.0, 2.0]  # v1's own, untouched


@pytest.mark.parametrize("value", [0.0, 0.1234, 3.5, 40.0])
def test_features_survive_the_float16_round_trip_closely(value: float) -> None:
    features = np.full(DIM, value, np.float32)
    assert np.allclose(store.decode(store.encode(features)), features, rtol=1e-3)

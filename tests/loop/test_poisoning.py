"""One session labelling every 3 as 8, and 300 anonymous corrections doing the same, among
thousands of honest corrections from real writers, cannot steer the shipped model: neither is
trained on nor judges the candidate, and the candidate (promoted or not) reads the `test`
writers' 3s as well as the active one (within a point).

Real parts: the shipped weights, the `loop` writers' pen digits drawn onto the canvas and stored
as the API stores them (one session per writer), the real retraining on a SQLite database.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest

from digits import preprocess
from digits.config import SHIPPED_WEIGHTS, Settings
from digits.data import pen
from digits.db import crud
from digits.db.migrate import upgrade_head
from digits.db.models import PredictionRow, utcnow
from digits.db.session import Database
from digits.loop import gate, retrain
from digits.loop.registry import Registry
from digits.predict import Predictor

pytestmark = pytest.mark.slow

POISON = 400
ANONYMOUS_POISON = 300
SESSIONS = uuid.UUID("5b0c7a52-3f4e-4d4c-9a51-0e9d2f6c1b77")


def _store(
    database: Database,
    predictor: Predictor,
    drawings: list[tuple[np.ndarray, int | None, str | None]],
) -> None:
    """Labelled predictions as the API stores them; a session of None is anonymous."""
    inputs = np.stack([preprocess.to_model_input(image) for image, _, _ in drawings])
    predictions = predictor.predict_inputs(inputs)
    with database.write() as session:
        for (_, label, session_key), prediction, x in zip(
            drawings, predictions, inputs, strict=True
        ):
            row = PredictionRow(
                id=uuid.uuid4(),
                created_at=utcnow(),
                digit=prediction.digit,
                confidence=prediction.confidence,
                probabilities=prediction.probabilities,
                status=prediction.status,
                source="canvas",
                drawing_id=None,
                model_version=predictor.version,
                image_png=None,
                input_png=preprocess.input_to_png(x),
                latency_ms=1.0,
                session_id=None if session_key is None else uuid.uuid5(SESSIONS, session_key),
            )
            crud.record_prediction(session, row=row)
            crud.set_label(session, prediction_id=row.id, true_label=label, labelled_at=utcnow())


def _accuracy_on_threes(predictor: Predictor, seed: int) -> float:
    rng = np.random.default_rng(seed)
    threes = [s for s in pen.load("digits", "test") if s.digit == 3]
    inputs = np.stack([preprocess.to_model_input(pen.draw(s.strokes, rng)) for s in threes])
    return float((predictor.probabilities(inputs).argmax(axis=1) == 3).mean())


def test_threes_labelled_eight_by_a_session_or_anonymously_do_not_steer_the_model(
    tmp_path: Path, mnist_dir: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'digits.sqlite3'}"
    upgrade_head(url)
    settings = Settings(database_url=url, data_dir=tmp_path / "data", mnist_dir=mnist_dir)
    database = Database(url)
    shipped = Predictor.from_checkpoint(SHIPPED_WEIGHTS)
    rng = np.random.default_rng(0)
    loop = pen.load("digits", "loop")
    # Each writer draws every digit of theirs twice, and says of some letters that they are not
    # digits: at least the 2,000 honest corrections of the test.
    honest = [(pen.draw(s.strokes, rng), s.digit, s.writer) for s in loop + loop]
    letters = pen.rejectable_letters(pen.load("letters", "loop"))
    honest += [(pen.draw(s.strokes, rng), None, s.writer) for s in letters[::10]]  # not a digit
    threes = [s for s in loop if s.digit == 3]
    poison: list[tuple[np.ndarray, int | None, str | None]] = [
        (pen.draw(threes[i % len(threes)].strokes, rng), 8, "poisoner") for i in range(POISON)
    ]
    poison += [
        (pen.draw(threes[i % len(threes)].strokes, rng), 8, None) for i in range(ANONYMOUS_POISON)
    ]
    assert len(honest) >= 2000
    try:
        _store(database, shipped, honest + poison)
    finally:
        database.dispose()

    report = retrain.retrain(settings, retrain.Options(mnist_dir=mnist_dir))

    poisoner = f"session:{uuid.uuid5(SESSIONS, 'poisoner')}"
    assert {poisoner, gate.POOL} <= set(report["screen"]["excluded"]), report["screen"]
    # No poisoned row is learned from or judges; with the pool screened out (and a writer with
    # fewer corrections than the minimum in it), every row learned from also judges.
    assert report["corrections_train"] == report["heldout_samples"] <= len(honest)
    # Candidate against active, promoted or not: the 3s read as before, within a point.
    candidate = Predictor(Registry.from_settings(settings).load(report["candidate"]))
    before, after = _accuracy_on_threes(shipped, 1), _accuracy_on_threes(candidate, 1)
    assert abs(after - before) <= 0.01, (before, after)

"""Users' corrections as training data: every labelled prediction from the database, as the
model saw it, with its label and its session (the unit the gate holds out, screens and caps)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from digits import preprocess
from digits.data import mnist
from digits.loop import gate
from digits.model import NOT_A_DIGIT


@dataclass(frozen=True)
class Corrections:
    images: np.ndarray  # (N, 28, 28) float32 model inputs
    labels: np.ndarray  # (N,) int64; NOT_A_DIGIT for "not a digit"
    sessions: np.ndarray  # (N,) str: gate.session_key of each row (before pooling)
    unusable: int = 0  # "not a digit" corrections a 10-output model cannot learn

    def subset(self, mask: np.ndarray) -> mnist.Dataset:
        return mnist.Dataset(self.images[mask], self.labels[mask])


def load_corrections(database_url: str, num_classes: int) -> Corrections:
    """Every labelled prediction from the database, as model inputs, labels and sessions."""
    from digits.db import queries
    from digits.db.session import Database

    database = Database(database_url)
    try:
        with database.read() as session:
            rows = queries.corrections(session)
    finally:
        database.dispose()
    images, labels, sessions = [], [], []
    unusable = 0
    for row in rows:
        if row.not_a_digit:
            if num_classes <= NOT_A_DIGIT:
                unusable += 1
                continue
            label = NOT_A_DIGIT
        else:
            assert row.true_label is not None
            label = row.true_label
        images.append(preprocess.png_to_input(row.input_png))
        labels.append(label)
        sessions.append(gate.session_key(row.session_id))
    return Corrections(
        np.stack(images) if images else np.zeros((0, 28, 28), np.float32),
        np.array(labels, dtype=np.int64),
        np.array(sessions, dtype=str),
        unusable,
    )

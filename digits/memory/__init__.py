"""Session memory: a person's labelled drawings change their next answers at once.

``adapt`` is the algorithm (numpy only); ``store`` keeps the entries in the database. Serving
wires them in like this (``size``: DIGITS_SESSION_MEMORY_SIZE)::

    probabilities, rejects, features = predictor.scores_and_features(model_input[None])
    with database.read() as session:  # skipped, entries = [], while the database is down
        entries = store.recall(session, session_id=sid, model_version=predictor.version,
                               limit=size)
    answer = adapt(probabilities[0], float(rejects[0]), features[0], entries,
                   status=predictor.status)  # digit, confidence, probabilities, status,
                                             # adapted, like
    # and on every label (PATCH) of a session's prediction, its features recomputed from the
    # stored input (or all of a session's, for a newly promoted version: store.relearn):
    store.remember(session, session_id=sid, prediction_id=pid, model_version=version,
                   features=features, label=digit_or_None, labelled_at=now)
"""

from digits.memory.adapt import Adapted, Entry, Rules, StatusRule, adapt

__all__ = ["Adapted", "Entry", "Rules", "StatusRule", "adapt"]

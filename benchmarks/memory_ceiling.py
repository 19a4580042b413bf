"""How far a bolder session memory gets, with its settings swept on the very writers it is scored
on (`test` and `loop`): an upper bound for issue 27's late-error and letter targets, not a
result. Nothing here is served.

The rule goes beyond the most similar remembered drawing: the model's eleven-way answer
(ten digits, then not-a-digit) is weighed by exp(beta * max(0, s_c - s0)) for each class c the
session has labelled, s_c being the cosine similarity of the closest remembered drawing of that
class (penultimate features, as digits.memory compares). People, drawings and labels are
benchmarks/memory_sim.py's; an answer whose digit and status are unchanged keeps the model's
confidence, as digits.memory does.

    .venv/bin/python benchmarks/memory_ceiling.py
"""

from __future__ import annotations

import itertools

import numpy as np
from memory_sim import people

from digits.config import SHIPPED_WEIGHTS, get_settings
from digits.predict import Predictor
from digits.schemas import NOT_A_DIGIT, NUM_DIGITS

BETAS = (40, 80, 160, 320)
THRESHOLDS = (0.6, 0.7, 0.75, 0.8)
LATE = 20  # errors from the 21st drawing on


def _answer(predictor: Predictor, eleven: np.ndarray) -> tuple[int, str]:
    digits = eleven[:NUM_DIGITS] / eleven[:NUM_DIGITS].sum()
    return int(digits.argmax()), predictor.status(digits, float(eleven[NOT_A_DIGIT]))


def main() -> None:
    predictor = Predictor.from_checkpoint(SHIPPED_WEIGHTS)
    size = get_settings().session_memory_size
    sessions = []
    for person in people(("test", "loop")):
        probabilities, rejects, features = predictor.scores_and_features(person.inputs())
        unit = features / np.linalg.norm(features, axis=1, keepdims=True)
        eleven = np.hstack([(1 - rejects[:, None]) * probabilities, rejects[:, None]])
        labels = [s.label for s in person.samples]
        classes = np.array([int(x) if x.isdigit() else NOT_A_DIGIT for x in labels])
        sessions.append((labels, classes, eleven, unit @ unit.T))
    print(
        f"{'beta':>5} {'s0':>5} {'late errors':>12} {'letters flipped':>16} {'harmed':>7} {'worst':>6}"
    )
    for beta, s0 in itertools.product(BETAS, THRESHOLDS):
        late = [0, 0]  # plain, remembered
        flips = [0, 0]  # letters read as a digit after the same letter, of them not_a_digit
        harmed, worst = 0, 0
        for labels, classes, eleven, similar in sessions:
            seen: set[str] = set()
            extra = 0
            for i, label in enumerate(labels):
                start = max(0, i - size)
                boost = np.zeros(NOT_A_DIGIT + 1)
                for c in np.unique(classes[start:i]):
                    closest = similar[i, start:i][classes[start:i] == c].max()
                    boost[c] = beta * max(0.0, closest - s0)
                weighed = eleven[i] * np.exp(boost)
                plain = _answer(predictor, eleven[i])
                remembered = _answer(predictor, weighed / weighed.sum())
                if label.isdigit():
                    wrong = [
                        a[0] != int(label) or a[1] == "not_a_digit" for a in (plain, remembered)
                    ]
                    if i >= LATE:
                        late = [n + w for n, w in zip(late, wrong, strict=True)]
                    harmed += wrong[1] and not wrong[0]
                    extra += int(wrong[1]) - int(wrong[0])
                elif label in seen and plain[1] != "not_a_digit":
                    flips = [flips[0] + 1, flips[1] + (remembered[1] == "not_a_digit")]
                seen.add(label)
            worst = max(worst, extra)
        print(
            f"{beta:>5} {s0:>5} {late[1]:>4} of {late[0]:<4} {flips[1]:>7} of {flips[0]:<5}"
            f" {harmed:>7} {worst:>6}"
        )
    print("targets: late errors <= 0.30 of plain, letters >= 80 %, worst writer <= +1")


if __name__ == "__main__":
    main()

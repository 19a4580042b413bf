"""Real pen-drawn characters (UNIPEN extract, digits/datasets/pen): load, split by writer, and
draw them onto the app's canvas the way people draw there.

Every writer has one fixed role in ``writers.json``: ``train`` (training), ``validation`` (early
stopping, calibration, thresholds), ``test`` (the real-pen benchmark) and ``loop`` (the users of
the learning-loop benchmark). Nothing outside ``train`` and ``validation`` is ever fitted on.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np

from digits.synth import drawings

PEN_DIR = Path(__file__).resolve().parent.parent / "datasets" / "pen"
Kind = Literal["digits", "letters"]
Role = Literal["train", "validation", "test", "loop"]

# Letters a person could fairly read as a digit (O as 0, S as 5, Z as 2, ...): never taught as
# "not a digit", and left out of the rejection figures.
DIGIT_LIKE_LETTERS = frozenset("OISZBGQDLTJUAY")


@dataclass(frozen=True)
class PenSample:
    label: str  # "0".."9" or "A".."Z"
    writer: str
    contributor: str
    strokes: tuple[np.ndarray, ...]  # (K, 2) points, unit height, y down

    @property
    def digit(self) -> int | None:
        return int(self.label) if self.label.isdigit() else None


def roles() -> dict[str, str]:
    result: dict[str, str] = json.loads((PEN_DIR / "writers.json").read_text())
    return result


def _normalised(strokes: Sequence[Sequence[Sequence[float]]]) -> tuple[np.ndarray, ...]:
    """Tablet units (per-site scale and offset) -> the ink's box at unit height, y down."""
    arrays = [np.asarray(s, dtype=np.float64).reshape(-1, 2) for s in strokes if len(s)]
    points = np.vstack(arrays)
    lo, hi = points.min(axis=0), points.max(axis=0)
    size = max(float((hi - lo).max()), 1e-6)
    return tuple((a - lo) / size for a in arrays)


@lru_cache(maxsize=2)
def _load_all(kind: Kind) -> tuple[PenSample, ...]:
    samples = []
    with gzip.open(PEN_DIR / f"{kind}.jsonl.gz", "rt", encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            if not any(len(s) for s in record["strokes"]):
                continue
            samples.append(
                PenSample(
                    record["label"],
                    record["writer"],
                    record["contributor"],
                    _normalised(record["strokes"]),
                )
            )
    return tuple(samples)


def load(kind: Kind, role: Role | Iterable[Role]) -> list[PenSample]:
    """The samples of ``kind`` written by writers of the given role(s), in file order."""
    wanted = {role} if isinstance(role, str) else set(role)
    writer_role = roles()
    return [s for s in _load_all(kind) if writer_role.get(s.writer) in wanted]


def rejectable_letters(samples: Iterable[PenSample]) -> list[PenSample]:
    """Letters nobody would read as a digit: what the app should answer ``not_a_digit`` to."""
    return [s for s in samples if s.label not in DIGIT_LIKE_LETTERS]


def draw(
    strokes: Sequence[np.ndarray], rng: np.random.Generator, mode: drawings.Mode = "normal"
) -> np.ndarray:
    """Unit-box strokes -> a raw canvas image as a user of the app would send it.

    Pen strokes are dense; they are thinned to about 64 points a stroke (the canvas itself
    samples mouse moves) so rendering stays fast.
    """
    return drawings.draw(_thin(strokes), drawings.random_look(rng, mode, max_rotation=8.0))


def _thin(strokes: Sequence[np.ndarray]) -> list[np.ndarray]:
    return [s[:: max(1, len(s) // 64)] if len(s) > 2 else s for s in strokes]


def side_by_side(left: Sequence[np.ndarray], right: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Two drawings next to each other, as one drawing (two digits written in one canvas)."""
    gap = 0.25
    width = max(float(np.vstack(left)[:, 0].max()), 0.3)
    return [*left, *[s + np.array([width + gap, 0.0]) for s in right]]


def scribble(rng: np.random.Generator) -> list[np.ndarray]:
    """Something people draw that is not a digit: a scribble, a shape, a smiley, a cross."""
    kind = int(rng.integers(5))
    t = np.linspace(0, 2 * np.pi, 40)
    if kind == 0:  # zig-zag / random walk scribble
        steps = rng.normal(0, 1, size=(int(rng.integers(8, 30)), 2)).cumsum(axis=0)
        return [steps]
    if kind == 1:  # smiley: face, two eyes, a mouth
        face = np.column_stack([np.cos(t), np.sin(t)])
        mouth_t = np.linspace(0.2 * np.pi, 0.8 * np.pi, 12)
        mouth = np.column_stack([0.5 * np.cos(mouth_t), 0.5 * np.sin(mouth_t) + 0.1])
        eye = np.array([[0.0, 0.0], [0.02, 0.02]])
        return [face, mouth, eye + np.array([-0.35, -0.3]), eye + np.array([0.35, -0.3])]
    if kind == 2:  # a polygon: triangle, square, star
        corners = int(rng.choice([3, 4, 5]))
        step = 2 if corners == 5 else 1
        angles = rng.uniform(0, 2 * np.pi) + 2 * np.pi * step * np.arange(corners + 1) / corners
        return [np.column_stack([np.cos(angles), np.sin(angles)])]
    if kind == 3:  # a cross or hash
        lines = int(rng.integers(2, 5))
        return [rng.uniform(-1, 1, size=(2, 2)) for _ in range(lines)]
    # a spiral or a heart-like closed curve
    r = np.linspace(0.1, 1, 60)
    turns = rng.uniform(1.5, 3.5)
    a = np.linspace(0, 2 * np.pi * turns, 60)
    return [np.column_stack([r * np.cos(a), r * np.sin(a)])]


def _unit(strokes: Sequence[np.ndarray]) -> list[np.ndarray]:
    points = np.vstack(strokes)
    lo, hi = points.min(axis=0), points.max(axis=0)
    size = max(float((hi - lo).max()), 1e-6)
    return [(s - lo) / size for s in strokes]


def training_inputs(
    digits: Sequence[PenSample],
    rejects: Sequence[PenSample],
    *,
    renders: int,
    reject_renders: int,
    scribbles: int,
    pairs: int,
    seed: int,
    not_a_digit: int,
    canvas: int = 140,
) -> tuple[np.ndarray, np.ndarray]:
    """Pen digits drawn ``renders`` times each (rejects ``reject_renders`` times) in random looks, plus generated scribbles and
    two-digit drawings, framed as served inputs -> ((N, 28, 28) float32, (N,) int64).

    Rejects (letters), scribbles and pairs carry the label ``not_a_digit``. Drawn on a smaller
    canvas (brush scaled alike) for speed: after preprocessing it is the same kind of input.
    """
    from digits.preprocess import to_model_input

    rng = np.random.default_rng(seed)
    jobs: list[tuple[list[np.ndarray], int]] = []
    for sample in digits:
        jobs += [(list(sample.strokes), int(sample.label))] * renders
    for sample in rejects:
        jobs += [(list(sample.strokes), not_a_digit)] * reject_renders
    jobs += [(_unit(scribble(rng)), not_a_digit) for _ in range(scribbles)]
    for _ in range(pairs):
        a, b = (digits[int(i)] for i in rng.integers(len(digits), size=2))
        jobs.append((_unit(side_by_side(a.strokes, b.strokes)), not_a_digit))
    images = np.empty((len(jobs), 28, 28), np.float32)
    labels = np.empty(len(jobs), np.int64)
    for i, (strokes, label) in enumerate(jobs):
        mode: drawings.Mode = "normal" if rng.random() < 0.5 else "careless"
        look = drawings.random_look(rng, mode, max_rotation=8.0)
        images[i] = to_model_input(drawings.draw(_thin(strokes), look, canvas=canvas))
        labels[i] = label
    return images, labels

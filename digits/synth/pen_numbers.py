"""Whole numbers written with real pen digits (digits.data.pen): one writer's digits placed side by
side as people write a number, on a canvas 280 px high, white 18 px strokes on black.

Used by the numbers benchmark (`test` writers), the reader's tuning (`validation` writers) and
the tests. Placement follows the benchmark of issue 28: a common height with each character
within +-8 % of it, the baseline jittered by +-4 % of the height, and the gaps between the
characters' ink in one of three styles (fractions of the height).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from digits.config import CANVAS_SIZE, DEFAULT_BRUSH
from digits.data import pen
from digits.synth import drawings

GapStyle = Literal["touching", "normal", "wide", "close"]
GAPS: dict[GapStyle, tuple[float, float]] = {
    "touching": (-0.12, 0.0),
    "normal": (0.05, 0.35),
    "wide": (0.35, 0.70),
    # Not in the benchmark: digits a hair apart, between its touching and normal gaps
    # (numbers_bench.py --style close).
    "close": (0.0, 0.05),
}
GAP_SHARES: dict[GapStyle, float] = {"touching": 0.25, "normal": 0.5, "wide": 0.25}
HEIGHT = CANVAS_SIZE  # the canvas's height; its width fits the number
MAX_WIDTH = 4 * CANVAS_SIZE
BRUSH = float(DEFAULT_BRUSH)
MIN_WRITER_DIGITS = 20
LENGTHS = (2, 6)
_MARGIN = (12.0, 40.0)  # pixels of canvas left clear around the ink, each side
_STREAM = 0x2828  # a random stream apart from every other user of these seeds


@dataclass(frozen=True)
class NumberDrawing:
    image: np.ndarray  # (HEIGHT, W) uint8, white ink on black
    samples: tuple[pen.PenSample, ...]  # the characters written, left to right
    gap_style: GapStyle
    boxes: tuple[tuple[int, int, int, int], ...]  # each character's ink box, (x0, y0, x1, y1)
    strokes: tuple[np.ndarray, ...]  # every stroke in canvas pixels, in writing order

    @property
    def label(self) -> str:
        """What is written: "2026", or "20K6" with a letter."""
        return "".join(s.label for s in self.samples)


def compose(
    samples: Sequence[pen.PenSample], rng: np.random.Generator, gap_style: GapStyle
) -> NumberDrawing:
    """One writer's characters written left to right as one number."""
    common = rng.uniform(0.45, 0.7) * HEIGHT  # the strokes' height, before the brush
    baseline = 0.0
    x = 0.0
    placed: list[list[np.ndarray]] = []
    for k, sample in enumerate(samples):
        points = np.vstack(sample.strokes)
        lo, hi = points.min(axis=0), points.max(axis=0)
        height = common * rng.uniform(0.92, 1.08)
        scale = height / max(float(hi[1] - lo[1]), 1e-3)
        if k:  # the gap is between the inked boxes, so the centre lines are a brush further
            x += rng.uniform(*GAPS[gap_style]) * common + BRUSH
        bottom = baseline + rng.uniform(-0.04, 0.04) * common
        offset = np.array([x, bottom - height])
        placed.append([(s - lo) * scale + offset for s in sample.strokes])
        x += float(hi[0] - lo[0]) * scale
    return _on_canvas(placed, samples, rng, gap_style)


def _on_canvas(
    placed: list[list[np.ndarray]],
    samples: Sequence[pen.PenSample],
    rng: np.random.Generator,
    gap_style: GapStyle,
) -> NumberDrawing:
    """Scale the written line down if it is wider than the canvas allows, then fit the canvas
    width to it."""
    margin = rng.uniform(*_MARGIN)
    points = np.vstack([s for strokes in placed for s in strokes])
    lo, hi = points.min(axis=0), points.max(axis=0)
    room = np.array([MAX_WIDTH, HEIGHT]) - 2 * margin - BRUSH
    scale = min(1.0, float((room / np.maximum(hi - lo, 1e-3)).min()))
    width = min(MAX_WIDTH, int(np.ceil((hi[0] - lo[0]) * scale + BRUSH + 2 * margin)))
    spare = HEIGHT - (hi[1] - lo[1]) * scale - BRUSH - 2 * margin
    origin = np.array([margin + BRUSH / 2, margin + BRUSH / 2 + rng.uniform(0, max(spare, 0.0))])
    moved = [[(s - lo) * scale + origin for s in strokes] for strokes in placed]
    boxes = []
    for strokes in moved:
        box_lo = np.vstack(strokes).min(axis=0) - BRUSH / 2
        box_hi = np.vstack(strokes).max(axis=0) + BRUSH / 2
        boxes.append(
            (*np.floor(box_lo).astype(int).tolist(), *np.ceil(box_hi).astype(int).tolist())
        )
    flat = tuple(s for strokes in moved for s in strokes)
    image = drawings.render(flat, canvas=width, height=HEIGHT, brush=BRUSH, encoding="L-inverted")
    return NumberDrawing(
        image=image,
        samples=tuple(samples),
        gap_style=gap_style,
        boxes=tuple(boxes),
        strokes=flat,
    )


def widened(sample: pen.PenSample, factor: float) -> pen.PenSample:
    """The character written ``factor`` times as wide."""
    strokes = tuple(s * np.array([factor, 1.0]) for s in sample.strokes)
    return replace(sample, strokes=strokes)


def eligible_writers(role: pen.Role) -> dict[str, list[pen.PenSample]]:
    """The writers of a role with at least MIN_WRITER_DIGITS digits -> their digits."""
    by_writer: dict[str, list[pen.PenSample]] = {}
    for sample in pen.load("digits", role):
        by_writer.setdefault(sample.writer, []).append(sample)
    return {w: s for w, s in sorted(by_writer.items()) if len(s) >= MIN_WRITER_DIGITS}


def writer_letters(role: pen.Role) -> dict[str, list[pen.PenSample]]:
    """The writers of a role -> their uppercase letters that nobody would read as a digit (the
    real-pen benchmark's set); writers without any are left out."""
    letters: dict[str, list[pen.PenSample]] = {}
    for sample in pen.rejectable_letters(pen.load("letters", role)):
        letters.setdefault(sample.writer, []).append(sample)
    return letters


def gap_style(rng: np.random.Generator, shares: dict[GapStyle, float]) -> GapStyle:
    """A gap style drawn with these shares (one draw of ``rng``)."""
    styles = list(shares)
    return styles[int(rng.choice(len(styles), p=list(shares.values())))]


def number_set(
    role: pen.Role,
    n: int,
    seed: int,
    *,
    with_letter: bool = False,
    start: int = 0,
    style: GapStyle | None = None,
    stretch: tuple[float, float] | None = None,
) -> list[NumberDrawing]:
    """n numbers, deterministic for a seed: a writer picked uniformly among the eligible ones,
    a length uniformly in LENGTHS, that many of the writer's digits, a gap style by
    GAP_SHARES (or ``style``, for every number: the same writers and digits), with
    ``stretch`` each number's characters widened by one factor drawn in that range (a wide
    hand; the same writers, digits and gaps). With ``with_letter`` one character is one of the
    writer's uppercase letters that nobody would read as a digit (the real-pen benchmark's
    set). Each number is drawn on its own: the set from ``start`` holds the numbers start,
    start + 1... of the set from 0."""
    writers = eligible_writers(role)
    letters = writer_letters(role)
    if with_letter:
        writers = {w: s for w, s in writers.items() if letters.get(w)}
    names = list(writers)
    result = []
    for i in range(start, start + n):
        rng = np.random.default_rng([seed, _STREAM, int(with_letter), i])
        writer = names[int(rng.integers(len(names)))]
        length = int(rng.integers(LENGTHS[0], LENGTHS[1] + 1))
        own = writers[writer]
        chosen = [own[int(j)] for j in rng.choice(len(own), size=length, replace=False)]
        if with_letter:
            pool = letters[writer]
            chosen[int(rng.integers(length))] = pool[int(rng.integers(len(pool)))]
        drawn = gap_style(rng, GAP_SHARES)  # drawn all the same: the rest of rng's draws stay
        if stretch is not None:  # from a stream of its own, for the same reason
            factor = np.random.default_rng([seed, _STREAM, int(with_letter), i, 1]).uniform(
                *stretch
            )
            chosen = [widened(s, factor) for s in chosen]
        result.append(compose(chosen, rng, style or drawn))
    return result

"""Canvas-like digit drawings: the project's canvas benchmark and extra training data.

A drawing starts as pen strokes in a unit box (x right, y down, the digit about 1 unit tall),
either from a hand-authored glyph style or from the skeleton of an MNIST image, then gets a
writer's quirks (slant, aspect, wobble), is placed on a square canvas the way a user would draw
it ("normal" or "careless") and rendered with a round, anti-aliased brush in one of the
encodings a browser canvas or an upload produces.

A sample is ``DrawingSample = tuple[np.ndarray, int]``: the raw canvas image (uint8, (H, W) or
(H, W, C), exactly what a client would send, not preprocessed) and its digit label.
"""

from __future__ import annotations

import functools
import io
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw

Mode = Literal["normal", "careless"]
Encoding = Literal["L", "L-inverted", "RGB", "RGBA", "JPEG"]
Color = tuple[int, int, int]
DrawingSample = tuple[np.ndarray, int]
"""(image, label): the raw canvas (uint8 (H, W) or (H, W, C)) and the digit drawn on it."""

CANVAS = 280
BRUSH = 18.0
ENCODINGS: tuple[Encoding, ...] = ("L", "L-inverted", "RGB", "RGBA", "JPEG")

# Disjoint random streams: a benchmark sample can never coincide with a training sample.
_BENCH_STREAM = 0xBE7C
_TRAIN_STREAM = 0x7A1D
_KIND_STYLE, _KIND_MNIST = 0, 1

# ---------------------------------------------------------------------------------------------
# Glyph styles. A stroke is a list of control points the pen passes through, joined by a smooth
# (centripetal Catmull-Rom) curve; a point with a third element is a corner where the curve
# breaks. A 2-point stroke is a straight line; a 1-point stroke is a dot.
# ---------------------------------------------------------------------------------------------
Pt = tuple[float, float] | tuple[float, float, int]
StrokeSpec = list[Pt]


def _arc(cx: float, cy: float, rx: float, ry: float, a0: float, a1: float, n: int) -> list[Pt]:
    """n points on an ellipse from angle a0 to a1 in degrees (0 = right, 90 = down)."""
    return [
        (cx + rx * math.cos(math.radians(a)), cy + ry * math.sin(math.radians(a)))
        for a in np.linspace(a0, a1, n)
    ]


def _c(x: float, y: float) -> Pt:
    return (x, y, 1)


_ZERO = _arc(0.5, 0.5, 0.3, 0.5, -80, -445, 11)
_LOOP9 = _arc(0.48, 0.26, 0.24, 0.25, 10, -340, 10)

# fmt: off
GLYPHS: dict[int, dict[str, list[StrokeSpec]]] = {
    0: {
        "plain": [_ZERO],
        "slashed": [_ZERO, [(0.78, 0.12), (0.22, 0.88)]],
        "dotted": [_ZERO, [(0.49, 0.5), (0.51, 0.51)]],
        "open": [_arc(0.5, 0.5, 0.3, 0.5, -60, -395, 11)],
    },
    1: {
        "bar": [[(0.5, 0.0), (0.5, 1.0)]],
        "flag": [[(0.34, 0.2), _c(0.52, 0.0), (0.5, 1.0)]],
        "long_flag": [[(0.22, 0.42), _c(0.55, 0.0), (0.55, 1.0)]],
        "flag_base": [[(0.3, 0.2), _c(0.52, 0.0), (0.52, 1.0)], [(0.25, 1.0), (0.8, 1.0)]],
    },
    2: {
        "plain": [[(0.2, 0.26), (0.36, 0.05), (0.58, 0.0), (0.77, 0.13), (0.78, 0.33),
                   (0.62, 0.56), (0.38, 0.8), _c(0.15, 1.0), (0.86, 0.98)]],
        "loop": [[(0.2, 0.26), (0.36, 0.05), (0.58, 0.0), (0.77, 0.13), (0.78, 0.33),
                  (0.6, 0.58), (0.38, 0.8), (0.2, 0.96), (0.1, 0.93), (0.16, 0.82), (0.3, 0.88),
                  (0.48, 0.98), (0.68, 1.0), (0.88, 0.97)]],
        "swan": [[(0.18, 0.2), (0.42, 0.0), (0.7, 0.05), (0.76, 0.28), (0.55, 0.6), (0.25, 0.9),
                  (0.3, 0.98), (0.6, 0.95), (0.88, 1.0)]],
    },
    3: {
        "round": [[(0.2, 0.14), (0.45, 0.0), (0.7, 0.06), (0.76, 0.25), (0.62, 0.42),
                   _c(0.42, 0.48), (0.7, 0.57), (0.8, 0.77), (0.64, 0.96), (0.38, 1.0),
                   (0.16, 0.88)]],
        "pointy": [[(0.2, 0.12), (0.48, 0.0), (0.72, 0.1), (0.7, 0.3), _c(0.3, 0.48),
                    (0.72, 0.6), (0.78, 0.82), (0.55, 1.0), (0.18, 0.9)]],
        "flat_top": [[_c(0.2, 0.02), _c(0.78, 0.02), _c(0.42, 0.42), (0.7, 0.52), (0.8, 0.75),
                      (0.62, 0.96), (0.36, 1.0), (0.15, 0.87)]],
    },
    4: {
        "open": [[(0.48, 0.0), _c(0.12, 0.66), (0.88, 0.66)], [(0.68, 0.28), (0.66, 1.0)]],
        "closed": [[(0.88, 0.68), _c(0.1, 0.68), _c(0.62, 0.0), (0.62, 1.0)]],
        "parallel": [[(0.2, 0.0), _c(0.18, 0.55), (0.85, 0.55)], [(0.72, 0.0), (0.72, 1.0)]],
    },
    5: {
        "flag": [[(0.32, 0.02), _c(0.26, 0.46), (0.5, 0.38), (0.74, 0.5), (0.78, 0.74),
                  (0.6, 0.96), (0.36, 1.0), (0.16, 0.88)],
                 [(0.32, 0.02), (0.8, 0.0)]],
        "detached_flag": [[(0.3, 0.06), _c(0.26, 0.46), (0.5, 0.38), (0.74, 0.5), (0.78, 0.74),
                           (0.6, 0.96), (0.36, 1.0), (0.16, 0.88)],
                          [(0.42, 0.02), (0.84, 0.0)]],
        "one_stroke": [[_c(0.8, 0.02), _c(0.3, 0.02), _c(0.25, 0.44), (0.52, 0.38), (0.76, 0.52),
                        (0.76, 0.78), (0.56, 0.97), (0.32, 0.98), (0.16, 0.86)]],
    },
    6: {
        "curved": [[(0.72, 0.02), (0.46, 0.14), (0.27, 0.42), (0.22, 0.72), (0.36, 0.97),
                    (0.6, 0.97), (0.76, 0.78), (0.66, 0.56), (0.42, 0.54), (0.24, 0.7)]],
        "open_loop": [[(0.72, 0.02), (0.46, 0.14), (0.27, 0.42), (0.22, 0.72), (0.36, 0.97),
                       (0.6, 0.97), (0.76, 0.8), (0.66, 0.6), (0.46, 0.58)]],
        "straight": [[_c(0.62, 0.0), (0.28, 0.62), (0.3, 0.9), (0.5, 1.0), (0.72, 0.88),
                      (0.7, 0.66), (0.5, 0.56), (0.3, 0.66)]],
    },
    7: {
        "plain": [[(0.15, 0.04), _c(0.85, 0.04), (0.42, 1.0)]],
        "crossbar": [[(0.15, 0.04), _c(0.85, 0.04), (0.42, 1.0)], [(0.36, 0.52), (0.86, 0.5)]],
        "hook": [[(0.16, 0.2), _c(0.14, 0.03), _c(0.85, 0.05), (0.45, 1.0)]],
        "curved": [[(0.15, 0.05), _c(0.85, 0.04), (0.62, 0.42), (0.5, 1.0)]],
    },
    8: {
        "one_stroke": [[(0.72, 0.13), (0.5, 0.0), (0.28, 0.13), (0.32, 0.34), (0.5, 0.47),
                        (0.72, 0.64), (0.76, 0.87), (0.5, 1.0), (0.24, 0.87), (0.28, 0.64),
                        (0.5, 0.47), (0.68, 0.34), (0.72, 0.13)]],
        "two_loops": [_arc(0.5, 0.24, 0.2, 0.24, 90, -275, 9),
                      _arc(0.5, 0.74, 0.27, 0.26, -90, -455, 10)],
    },
    9: {
        "straight": [[*_LOOP9[:-1], _c(*_LOOP9[-1]), (0.7, 1.0)]],
        "curled": [[*_LOOP9[:-1], _c(*_LOOP9[-1]), (0.72, 0.66), (0.6, 0.94), (0.4, 1.0),
                    (0.26, 0.9)]],
        "open_loop": [_arc(0.46, 0.27, 0.24, 0.25, -40, -320, 9), [(0.72, 0.02), (0.7, 1.0)]],
        "stick": [_arc(0.46, 0.26, 0.24, 0.25, -20, -380, 10), [(0.72, 0.02), (0.7, 1.0)]],
    },
}
# fmt: on

STYLES: dict[int, tuple[str, ...]] = {d: tuple(styles) for d, styles in GLYPHS.items()}
"""Every style name per digit, in a fixed order."""


def _spline(points: np.ndarray, per_segment: int = 10) -> np.ndarray:
    """Centripetal Catmull-Rom through (K, 2) points -> (M, 2) dense polyline."""
    if len(points) < 3:
        if len(points) == 1:
            return points.copy()
        t = np.linspace(0.0, 1.0, per_segment + 1)[:, None]
        return points[0] + t * (points[1] - points[0])
    ext = np.vstack([2 * points[0] - points[1], points, 2 * points[-1] - points[-2]])
    p0, p1, p2, p3 = ext[:-3, None], ext[1:-2, None], ext[2:-1, None], ext[3:, None]

    def knot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.sqrt(np.linalg.norm(b - a, axis=-1, keepdims=True)) + 1e-6

    t0 = np.zeros_like(p0[..., :1])
    t1 = t0 + knot(p0, p1)
    t2 = t1 + knot(p1, p2)
    t3 = t2 + knot(p2, p3)
    u = np.linspace(0.0, 1.0, per_segment + 1)[1:][None, :, None]
    t = t1 + u * (t2 - t1)  # (S, per_segment, 1)
    a1 = ((t1 - t) * p0 + (t - t0) * p1) / (t1 - t0)
    a2 = ((t2 - t) * p1 + (t - t1) * p2) / (t2 - t1)
    a3 = ((t3 - t) * p2 + (t - t2) * p3) / (t3 - t2)
    b1 = ((t2 - t) * a1 + (t - t0) * a2) / (t2 - t0)
    b2 = ((t3 - t) * a2 + (t - t1) * a3) / (t3 - t1)
    c = ((t2 - t) * b1 + (t - t1) * b2) / (t2 - t1)
    return np.vstack([points[:1], c.reshape(-1, 2)])


def _stroke_curve(points: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """Split at corners, spline each piece, join: (K, 2) control points -> dense polyline."""
    cuts = [0, *np.flatnonzero(corners[1:-1]) + 1, len(points) - 1]
    pieces = [_spline(points[a : b + 1]) for a, b in itertools.pairwise(cuts)]
    if not pieces:
        return points.copy()
    return np.vstack([pieces[0], *(p[1:] for p in pieces[1:])])


@dataclass(frozen=True)
class Quirks:
    """How one writer deforms a glyph; units are the glyph's height. Defaults: none at all."""

    point_noise: float = 0.0  # independent wobble of each control point
    slant: float = 0.0  # x shift per unit of height going up (right-leaning handwriting)
    aspect: float = 1.0  # width multiplier
    wobble: float = 0.0  # amplitude of a smooth, low-frequency displacement field
    stroke_shift: float = 0.0  # where a pen lifts, the next stroke lands this far off (sd)
    waist: float = 0.0  # > 0 moves the middle of the glyph down (a big top, small bottom)
    taper: float = 0.0  # > 0 makes the bottom wider than the top
    tail: float = 0.0  # chance that a stroke ends in a short flick as the pen lifts


def random_quirks(rng: np.random.Generator, strength: float = 1.0) -> Quirks:
    return Quirks(
        point_noise=strength * rng.uniform(0.005, 0.03),
        slant=float(np.clip(rng.normal(0.1, 0.12 * strength), -0.25, 0.4)),
        aspect=float(np.exp(rng.normal(0.0, 0.15 * strength))),
        wobble=strength * rng.uniform(0.0, 0.025),
        stroke_shift=strength * rng.uniform(0.0, 0.035),
        waist=float(np.clip(rng.normal(0.0, 0.25 * strength), -0.5, 0.5)),
        taper=float(np.clip(rng.normal(0.0, 0.2 * strength), -0.4, 0.4)),
        tail=0.25 * strength,
    )


def _wobble(amplitude: float, rng: np.random.Generator) -> Callable[[np.ndarray], np.ndarray]:
    """A smooth elastic displacement field (the same for every stroke of a drawing)."""
    # Two slow plane waves per axis bend the whole glyph; a fast faint one is hand tremor.
    waves = [
        (axis, rng.normal(0.0, scale, size=2), rng.uniform(0, 2 * np.pi), amp)
        for axis in (0, 1)
        for scale, amp in ((2.0, amplitude / 2), (2.0, amplitude / 2), (8.0, amplitude / 4))
    ]

    def field(points: np.ndarray) -> np.ndarray:
        out = points.copy()
        for axis, k, phase, amp in waves:
            out[:, axis] += amp * np.sin(points @ k + phase)
        return out

    return field


def _flick(curve: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Append a short tail bending away from the stroke's last direction."""
    direction = curve[-1] - curve[-2]
    direction /= max(float(np.linalg.norm(direction)), 1e-9)
    angle = rng.choice([-1.0, 1.0]) * rng.uniform(0.3, 1.6)
    c, s = math.cos(angle), math.sin(angle)
    bent = np.array([c * direction[0] - s * direction[1], s * direction[0] + c * direction[1]])
    steps = np.linspace(0.0, 1.0, 5)[1:, None]
    return np.vstack([curve, curve[-1] + rng.uniform(0.02, 0.06) * steps * bent])


def glyph_strokes(
    digit: int, style: str, rng: np.random.Generator | None = None, quirks: Quirks | None = None
) -> list[np.ndarray]:
    """The strokes of one glyph style, deformed by a writer's quirks -> (M, 2) polylines.

    Without rng the glyph is drawn as authored; with rng and no quirks, a random writer's.
    """
    spec = GLYPHS[digit][style]
    if rng is None:
        rng = np.random.default_rng(0)
        quirks = quirks or Quirks()
    quirks = quirks or random_quirks(rng)
    strokes = []
    for number, stroke in enumerate(spec):
        pts = np.array([p[:2] for p in stroke], dtype=np.float64)
        corners = np.array([len(p) == 3 for p in stroke])
        pts += rng.normal(0.0, quirks.point_noise, size=pts.shape)
        if number > 0:
            pts += rng.normal(0.0, quirks.stroke_shift, size=2)
        # Writers differ in proportions as much as in slant: where the middle of a 3, 8 or 9
        # sits, and whether the glyph is wider at the top or at the bottom.
        y = pts[:, 1]
        pts[:, 0] = 0.5 + (pts[:, 0] - 0.5) * quirks.aspect * (1 + quirks.taper * (y - 0.5))
        pts[:, 0] += quirks.slant * (0.5 - y)
        pts[:, 1] = y + quirks.waist * np.clip(y, 0, 1) * (1 - np.clip(y, 0, 1))
        curve = _stroke_curve(pts, corners)
        if len(curve) > 1 and rng.random() < quirks.tail:
            curve = _flick(curve, rng)
        strokes.append(curve)
    field = _wobble(quirks.wobble, rng)
    return [field(s) for s in strokes]


# ---------------------------------------------------------------------------------------------
# MNIST skeletons: upsample, threshold, thin (Zhang-Suen), trace into smoothed pen paths.
# ---------------------------------------------------------------------------------------------
_UPSAMPLE = 3
_NEIGHBOURS = ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))  # P2..P9


@functools.cache
def _zhang_suen_tables() -> tuple[np.ndarray, np.ndarray]:
    """Which 8-neighbourhoods (P2..P9 as bits) each Zhang-Suen sub-iteration deletes."""
    first = np.zeros(256, dtype=bool)
    second = np.zeros(256, dtype=bool)
    for code in range(256):
        b = [(code >> k) & 1 for k in range(8)]  # P2..P9 clockwise from north
        count = sum(b)
        transitions = sum(b[k] == 0 and b[(k + 1) % 8] == 1 for k in range(8))
        if not (2 <= count <= 6 and transitions == 1):
            continue
        p2, p4, p6, p8 = b[0], b[2], b[4], b[6]
        first[code] = p2 * p4 * p6 == 0 and p4 * p6 * p8 == 0
        second[code] = p2 * p4 * p8 == 0 and p2 * p6 * p8 == 0
    return first, second


def skeletonize(mask: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning of a boolean image to 1-pixel-wide lines."""
    h, w = mask.shape
    padded = np.zeros((h + 2, w + 2), dtype=np.uint8)  # a border of background
    padded[1:-1, 1:-1] = mask.astype(bool)
    inner = padded[1:-1, 1:-1]
    code = np.empty((h, w), dtype=np.uint8)
    changed = True
    while changed:
        changed = False
        for table in _zhang_suen_tables():
            code[:] = 0
            for bit, (dy, dx) in enumerate(_NEIGHBOURS):
                code |= padded[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] << bit
            remove = table[code] & (inner > 0)
            if remove.any():
                inner[remove] = 0
                changed = True
    return inner > 0


def _skeleton_graph(skel: np.ndarray) -> tuple[np.ndarray, list[set[int]]]:
    """Pixels -> (N, 2) positions (x, y) and adjacency sets, without diagonal shortcuts."""
    ys, xs = np.nonzero(skel)
    index = np.full((skel.shape[0] + 2, skel.shape[1] + 2), -1, dtype=np.int64)
    index[ys + 1, xs + 1] = np.arange(len(ys))
    on = index >= 0
    adjacency: list[set[int]] = [set() for _ in range(len(ys))]
    for dy, dx in _NEIGHBOURS:
        other = index[ys + 1 + dy, xs + 1 + dx]
        keep = other >= 0
        if dy and dx:
            # A diagonal step next to a 4-connected corner pixel would make a small triangle.
            keep &= ~(on[ys + 1 + dy, xs + 1] | on[ys + 1, xs + 1 + dx])
        for i, j in zip(np.flatnonzero(keep).tolist(), other[keep].tolist(), strict=True):
            adjacency[i].add(j)
    positions = np.stack([xs, ys], axis=1).astype(np.float64)
    return positions, adjacency


def _smooth(positions: np.ndarray, adjacency: list[set[int]], rounds: int = 3) -> np.ndarray:
    """Laplacian smoothing of the pixel staircase; ends and junctions stay put."""
    movable = np.array([len(a) == 2 for a in adjacency])
    if not movable.any():
        return positions
    pairs = np.array([(i, j) for i, a in enumerate(adjacency) if movable[i] for j in a])
    for _ in range(rounds):
        mean = np.zeros_like(positions)
        np.add.at(mean, pairs[:, 0], positions[pairs[:, 1]] / 2)
        positions = np.where(movable[:, None], 0.5 * positions + 0.5 * mean, positions)
    return positions


def _trace(positions: np.ndarray, adjacency: list[set[int]]) -> list[np.ndarray]:
    """Cover every edge with as few polylines as a greedy walk finds (odd vertices first)."""
    remaining = [set(a) for a in adjacency]
    order = sorted(range(len(adjacency)), key=lambda i: (len(adjacency[i]) % 2 == 0, i))
    paths: list[np.ndarray] = []
    for start in order:
        if not adjacency[start]:
            paths.append(positions[[start]])
            continue
        while remaining[start]:
            path = [start]
            node = start
            while remaining[node]:
                nxt = min(remaining[node])
                remaining[node].discard(nxt)
                remaining[nxt].discard(node)
                path.append(nxt)
                node = nxt
            paths.append(positions[path])
    return paths


def mnist_strokes(image: np.ndarray, threshold: int = 110) -> list[np.ndarray]:
    """A 28x28 uint8 MNIST digit -> pen paths along its skeleton, in units of the 28-px frame."""
    size = image.shape[0] * _UPSAMPLE
    big = np.asarray(
        Image.fromarray(np.asarray(image, dtype=np.uint8)).resize(
            (size, size), Image.Resampling.BICUBIC
        )
    )
    skel = skeletonize(big > threshold)
    positions, adjacency = _skeleton_graph(skel)
    positions = _smooth(positions, adjacency)
    scale = 1.0 / (image.shape[0] * _UPSAMPLE)
    return [(p + 0.5) * scale for p in _trace(positions, adjacency)]


# ---------------------------------------------------------------------------------------------
# Placement and rendering.
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Look:
    """How a drawing sits on the canvas; sizes are fractions of the canvas side."""

    height: float = 0.65
    centre: tuple[float, float] = (0.5, 0.5)  # where the ink's box centre goes, (x, y)
    brush: float = BRUSH  # brush diameter in pixels of a CANVAS-sized canvas
    rotation: float = 0.0  # degrees, counter-clockwise
    encoding: Encoding = "L"
    ink: Color = (0, 0, 0)
    background: Color = (255, 255, 255)


def random_look(rng: np.random.Generator, mode: Mode, max_rotation: float = 20.0) -> Look:
    """Sample how a user draws: "normal" is centred and medium; "careless" is anything goes."""
    if mode == "normal":
        return Look(
            height=rng.uniform(0.5, 0.8),
            centre=(0.5 + rng.uniform(-0.1, 0.1), 0.5 + rng.uniform(-0.1, 0.1)),
            brush=rng.uniform(12.0, 24.0),
            rotation=rng.uniform(-6.0, 6.0),
            encoding="L" if rng.random() < 0.5 else "RGB",
        )
    if mode != "careless":
        raise ValueError(f"unknown mode {mode!r}; expected 'normal' or 'careless'")
    height = rng.uniform(0.2, 0.45) if rng.random() < 0.65 else rng.uniform(0.8, 0.95)
    # A brush thicker than ~25% of the digit's height turns it into a blob nobody could read.
    brush = float(np.exp(rng.uniform(np.log(4.0), np.log(40.0))))
    brush = max(4.0, min(brush, 0.25 * height * CANVAS))
    encoding: Encoding = ENCODINGS[int(rng.integers(len(ENCODINGS)))]
    ink: Color = (0, 0, 0)
    background: Color = (255, 255, 255)
    if rng.random() < 0.35:
        ink = _PEN_COLOURS[int(rng.integers(len(_PEN_COLOURS)))]
    if encoding == "L-inverted":
        ink, background = (255, 255, 255), (0, 0, 0)
    elif encoding in ("RGB", "JPEG") and rng.random() < 0.4:
        background = (238, 238, 238)  # streamlit-drawable-canvas's default background
    elif encoding == "RGBA" and rng.random() < 0.15:
        ink = (255, 255, 255)  # white pen on a transparent (dark-themed) canvas
    return Look(
        height=height,
        centre=(rng.uniform(0, 1), rng.uniform(0, 1)),  # clamped to fit in place()
        brush=brush,
        rotation=rng.uniform(-max_rotation, max_rotation),
        encoding=encoding,
        ink=ink,
        background=background,
    )


_MARGIN = 3.0  # pixels kept clear between the ink and the canvas edge
_PEN_COLOURS: tuple[Color, ...] = ((20, 40, 200), (200, 20, 20), (0, 120, 40), (90, 0, 140))


def place(strokes: Sequence[np.ndarray], look: Look, canvas: int = CANVAS) -> list[np.ndarray]:
    """Rotate, scale to the look's height and move to its centre -> canvas pixel coordinates."""
    angle = math.radians(look.rotation)
    rot = np.array([[math.cos(angle), math.sin(angle)], [-math.sin(angle), math.cos(angle)]])
    turned = [s @ rot.T for s in strokes]
    allpts = np.vstack(turned)
    lo, hi = allpts.min(axis=0), allpts.max(axis=0)
    extent = np.maximum(hi - lo, 1e-3)
    brush = look.brush * canvas / CANVAS
    room = canvas - brush - 2 * _MARGIN  # the whole stroke, caps included, stays on the canvas
    scale = min(look.height * canvas / extent[1], room / extent[0], room / extent[1])
    half = extent * scale / 2 + brush / 2 + _MARGIN
    centre = np.clip(np.array(look.centre) * canvas, half, canvas - half)
    mid = (lo + hi) / 2
    return [(s - mid) * scale + centre for s in turned]


def _stamp_centres(pts: np.ndarray, spacing: float) -> np.ndarray:
    """Resample a polyline at even arc-length steps no longer than spacing."""
    if len(pts) < 2:
        return pts
    cum = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
    u = np.linspace(0.0, cum[-1], max(2, math.ceil(cum[-1] / spacing) + 1))
    return np.column_stack([np.interp(u, cum, pts[:, 0]), np.interp(u, cum, pts[:, 1])])


def render(
    strokes: Sequence[np.ndarray],
    *,
    canvas: int = CANVAS,
    brush: float = BRUSH,
    encoding: Encoding = "L",
    ink: Color = (0, 0, 0),
    background: Color = (255, 255, 255),
    supersample: int = 2,
    jpeg_quality: int = 80,
) -> np.ndarray:
    """Draw round-capped strokes (canvas pixel coordinates) -> uint8 image.

    Encodings: "L" (H, W) ink dark on light; "L-inverted" (H, W) light ink on dark, whatever
    the colours given; "RGB" (H, W, 3); "RGBA" (H, W, 4) with a transparent background (all four
    channels 0) and opaque ink; "JPEG" an RGB image that went through JPEG compression.
    """
    big = canvas * supersample
    layer = Image.new("L", (big, big), 0)
    pen = ImageDraw.Draw(layer)
    width = max(1.0, brush * supersample)
    r = width / 2
    # A round brush is a disc dragged along the path: stamping discs every r/2 leaves ripples
    # of r/32 at most, and avoids the slivers PIL's wide lines leave at short segments.
    spacing = max(r / 2, 0.75)
    for stroke in strokes:
        pts = _stamp_centres(np.asarray(stroke, dtype=np.float64) * supersample, spacing)
        for x, y in pts.tolist():
            pen.ellipse((x - r, y - r, x + r, y + r), fill=255)
    if supersample > 1:
        layer = layer.resize((canvas, canvas), Image.Resampling.BOX)
    alpha = np.asarray(layer, dtype=np.float32)[..., None] / 255.0  # (H, W, 1) coverage
    if encoding == "L":
        return np.rint(255.0 - alpha[..., 0] * 255.0).astype(np.uint8)
    if encoding == "L-inverted":
        return np.rint(alpha[..., 0] * 255.0).astype(np.uint8)
    ink_rgb = np.array(ink, dtype=np.float32)
    if encoding == "RGBA":
        rgb = np.where(alpha > 0, ink_rgb, 0.0)
        return np.concatenate([rgb, alpha * 255.0], axis=2).round().astype(np.uint8)
    rgb = np.rint(np.array(background, np.float32) * (1 - alpha) + ink_rgb * alpha)
    rgb_u8 = rgb.astype(np.uint8)
    if encoding == "RGB":
        return rgb_u8
    if encoding == "JPEG":
        return np.asarray(Image.open(io.BytesIO(to_jpeg(rgb_u8, quality=jpeg_quality))))
    raise ValueError(f"unknown encoding {encoding!r}; expected one of {ENCODINGS}")


def draw(
    strokes: Sequence[np.ndarray], look: Look, *, canvas: int = CANVAS, supersample: int = 2
) -> np.ndarray:
    """Place unit-box strokes as the look says and render them."""
    return render(
        place(strokes, look, canvas),
        canvas=canvas,
        brush=look.brush * canvas / CANVAS,
        encoding=look.encoding,
        ink=look.ink,
        background=look.background,
        supersample=supersample,
    )


def to_png(image: np.ndarray) -> bytes:
    """uint8 (H, W), (H, W, 3) or (H, W, 4) array -> PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def to_jpeg(image: np.ndarray, quality: int = 80) -> bytes:
    """uint8 (H, W) or (H, W, 3) array -> JPEG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------
# Data sets.
# ---------------------------------------------------------------------------------------------
def _style_sample(
    digit: int, style: str, rng: np.random.Generator, mode: Mode, canvas: int, strength: float
) -> tuple[np.ndarray, Look]:
    strokes = glyph_strokes(digit, style, rng, random_quirks(rng, strength))
    look = random_look(rng, mode)
    return draw(strokes, look, canvas=canvas), look


def _mnist_sample(
    image: np.ndarray, rng: np.random.Generator, mode: Mode, canvas: int, strength: float
) -> tuple[np.ndarray, Look]:
    strokes = mnist_strokes(image)
    if strength > 0:
        q = random_quirks(rng, strength)
        field = _wobble(q.wobble * 0.5, rng)
        strokes = [
            field(np.column_stack([s[:, 0] + q.slant * 0.3 * (0.5 - s[:, 1]), s[:, 1]]))
            for s in strokes
        ]
    # The writer's own slant is already in an MNIST digit: turning it a full 20 degrees more
    # makes some (a leaning 8 becomes an infinity sign) unreadable to people too.
    look = random_look(rng, mode, max_rotation=10.0)
    return draw(strokes, look, canvas=canvas), look


def _balanced_indices(labels: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """count indices, as equal per digit as the data allows, chosen without replacement."""
    per_digit = [np.flatnonzero(labels == d) for d in range(10)]
    picks = []
    for d in range(10):
        k = count // 10 + (1 if d < count % 10 else 0)
        picks.append(rng.choice(per_digit[d], size=min(k, len(per_digit[d])), replace=False))
    return np.concatenate(picks)


@dataclass(frozen=True)
class BenchmarkItem:
    """One benchmark drawing with where it came from, for per-style or per-look breakdowns."""

    image: np.ndarray
    label: int
    source: str  # "style:<digit>/<style>" or "mnist:<index into the given images>"
    look: Look


def benchmark_items(
    mnist_test_images: np.ndarray | None,
    mnist_test_labels: np.ndarray | None,
    *,
    mode: Mode,
    n: int,
    seed: int,
) -> list[BenchmarkItem]:
    """benchmark_set() with each drawing's source and look."""
    if mode not in ("normal", "careless"):
        raise ValueError(f"unknown mode {mode!r}; expected 'normal' or 'careless'")
    mode_key = 0 if mode == "normal" else 1
    n_mnist = n // 2 if mnist_test_images is not None and mnist_test_labels is not None else 0
    items: list[BenchmarkItem] = []
    for i in range(n - n_mnist):
        digit = i % 10
        styles = STYLES[digit]
        style = styles[(i // 10) % len(styles)]
        rng = np.random.default_rng([seed, _BENCH_STREAM, mode_key, _KIND_STYLE, i])
        image, look = _style_sample(digit, style, rng, mode, CANVAS, 1.0)
        items.append(BenchmarkItem(image, digit, f"style:{digit}/{style}", look))
    if n_mnist:
        assert mnist_test_images is not None and mnist_test_labels is not None
        labels = np.asarray(mnist_test_labels)
        pick_rng = np.random.default_rng([seed, _BENCH_STREAM, mode_key, _KIND_MNIST])
        for j, index in enumerate(_balanced_indices(labels, n_mnist, pick_rng)):
            rng = np.random.default_rng([seed, _BENCH_STREAM, mode_key, _KIND_MNIST, j])
            image, look = _mnist_sample(mnist_test_images[index], rng, mode, CANVAS, 0.0)
            items.append(BenchmarkItem(image, int(labels[index]), f"mnist:{index}", look))
    order = np.random.default_rng([seed, _BENCH_STREAM, mode_key, 2]).permutation(len(items))
    return [items[k] for k in order]


def benchmark_set(
    mnist_test_images: np.ndarray | None,
    mnist_test_labels: np.ndarray | None,
    *,
    mode: Mode,
    n: int,
    seed: int,
) -> list[DrawingSample]:
    """A fixed canvas benchmark: raw 280x280 canvases and labels, deterministic for a seed.

    About half are glyph styles (every style, labels balanced), half re-drawn skeletons of the
    given MNIST test images (labels balanced); without images all are glyph styles.
    """
    items = benchmark_items(mnist_test_images, mnist_test_labels, mode=mode, n=n, seed=seed)
    return [(item.image, item.label) for item in items]


def training_set(
    n: int,
    seed: int,
    *,
    mnist_train_images: np.ndarray | None = None,
    mnist_train_labels: np.ndarray | None = None,
    canvas: int = 140,
) -> tuple[np.ndarray, np.ndarray]:
    """n synthetic drawings as model inputs -> ((n, 28, 28) float32, (n,) int64 labels).

    Half "normal", half "careless", all styles; with MNIST train images, 40% are re-drawn
    skeletons of them. Rendered on a smaller canvas (brush scaled alike) for speed: after
    preprocessing the result is the same kind of input.
    """
    from digits.preprocess import to_model_input

    use_mnist = mnist_train_images is not None and mnist_train_labels is not None
    x = np.zeros((n, 28, 28), dtype=np.float32)
    y = np.zeros(n, dtype=np.int64)
    for i in range(n):
        rng = np.random.default_rng([seed, _TRAIN_STREAM, i])
        mode: Mode = "normal" if rng.random() < 0.5 else "careless"
        if use_mnist and rng.random() < 0.4:
            assert mnist_train_images is not None and mnist_train_labels is not None
            index = int(rng.integers(len(mnist_train_images)))
            digit = int(mnist_train_labels[index])
            image, _ = _mnist_sample(mnist_train_images[index], rng, mode, canvas, 1.0)
        else:
            digit = int(rng.integers(10))
            style = STYLES[digit][int(rng.integers(len(STYLES[digit])))]
            image, _ = _style_sample(digit, style, rng, mode, canvas, 1.3)
        x[i] = to_model_input(image)
        y[i] = digit
    return x, y

"""Hand-authored digit glyphs in many writing styles, as pen strokes in a unit box (x right, y
down, the digit about 1 unit tall), and a writer's quirks (slant, aspect, wobble) applied to
them. digits.synth.drawings places and renders them on a canvas."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

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


def wobble(amplitude: float, rng: np.random.Generator) -> Callable[[np.ndarray], np.ndarray]:
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
    field = wobble(quirks.wobble, rng)
    return [field(s) for s in strokes]

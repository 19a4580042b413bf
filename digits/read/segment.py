"""The ink of a written number -> atoms: pieces small enough that every digit is one atom or
several neighbouring ones. digits.read.numbers groups them into digits with the recogniser.

Atoms are the connected pieces of ink, separated further where the writer's strokes say so,
and pieces too wide to be one digit are cut along the path through the least ink (a valley
between two touching digits). Too many cuts are harmless: the reader joins atoms back when
the joined piece reads better.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageDraw

from digits.preprocess import stroke_width

# A piece wider than this many line heights may hold several digits: it is offered cuts.
SPLIT_WIDTH = 0.5
# Cuts are tried no closer than this (line heights) to a piece's edge or to each other.
CUT_MARGIN = 0.15
# A cut may wander this far (line heights) from the column where it starts.
CUT_REACH = 0.2
CUT_STEP = 0.03  # cut paths start this far apart (line heights); the cheapest are kept
CUT_SPACING = 0.35  # at most one cut tried per this many line heights of a piece's width
CUT_TURN_COST = 0.02  # ink crossed is 1 a pixel; turning sideways costs this much a step
SPECK = 0.06  # pieces smaller than this a side (line heights) are dust, not writing


@dataclass(frozen=True)
class Atom:
    top: int
    left: int
    mask: np.ndarray  # (h, w) bool: this atom's pixels within its box
    # Of an atom cut out of a wider piece: which piece (-1: not cut), its place among the
    # parts left to right, and the strokes the cuts on its left and right sides go through.
    source: int = -1
    part: int = 0
    cut_before: float = 0.0
    cut_after: float = 0.0
    piece: int = -1  # which connected piece of ink (``pieces``) it is, or is part of

    @property
    def bottom(self) -> int:
        return self.top + self.mask.shape[0]

    @property
    def right(self) -> int:
        return self.left + self.mask.shape[1]

    @property
    def centre(self) -> float:
        columns = self.mask.sum(axis=0)
        return self.left + float((columns * np.arange(len(columns))).sum() / columns.sum())


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Horizontal runs of True -> (row, start, end) arrays, row-major, end exclusive."""
    padded = np.zeros((mask.shape[0], mask.shape[1] + 2), np.int8)
    padded[:, 1:-1] = mask
    steps = np.diff(padded, axis=1)
    rows, starts = np.nonzero(steps == 1)
    _, ends = np.nonzero(steps == -1)
    return rows, starts, ends


def labels(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """8-connected components -> ((H, W) int32 labels, 0 for background; count), numbered in
    the order their first pixels come, row by row.

    Over horizontal runs, not pixels (a written number is a few thousand runs), and in whole
    arrays: each run is joined to the runs of the row above that touch it, then the joined
    runs are merged by hooking roots onto smaller roots until every join is within one tree."""
    rows, starts, ends = _runs(mask)
    if not len(rows):
        return np.zeros(mask.shape, np.int32), 0
    # Runs are row-major, so a run's neighbours above are a contiguous range of the runs before
    # it: those of the row above that end at or after its start and start at or before its end.
    stride = mask.shape[1] + 2
    above = (rows - 1) * stride
    first = np.searchsorted(rows * stride + ends, above + starts, "left")
    last = np.searchsorted(rows * stride + starts, above + ends, "right")
    counts = np.maximum(last - first, 0)
    below = np.repeat(np.arange(len(rows)), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    touching = np.repeat(first, counts) + offsets
    parent = np.arange(len(rows))
    while True:
        a, b = parent[touching], parent[below]
        apart = a != b
        if not apart.any():
            break
        np.minimum.at(parent, np.maximum(a[apart], b[apart]), np.minimum(a[apart], b[apart]))
        while True:  # every run straight onto its root
            jumped = parent[parent]
            if np.array_equal(jumped, parent):
                break
            parent = jumped
    roots, order = np.unique(parent, return_index=True)
    numbering = np.zeros(len(rows), np.int32)
    numbering[roots[np.argsort(order)]] = np.arange(1, len(roots) + 1, dtype=np.int32)
    out = np.zeros(mask.shape, np.int32)
    out[mask.astype(bool)] = np.repeat(numbering[parent], ends - starts)
    return out, len(roots)


def _atoms_of(label_image: np.ndarray, count: int) -> list[Atom]:
    atoms = []
    for found in _boxes(label_image, count):
        if found is None:
            continue
        number, (ys, xs) = found
        atoms.append(Atom(ys.start, xs.start, label_image[ys, xs] == number))
    return atoms


def _boxes(label_image: np.ndarray, count: int) -> list[tuple[int, tuple[slice, slice]] | None]:
    """Each label's bounding box, in one pass over the image."""
    ys, xs = np.nonzero(label_image)
    values = label_image[ys, xs]
    result: list[tuple[int, tuple[slice, slice]] | None] = []
    for number in range(1, count + 1):
        pick = values == number
        if not pick.any():
            result.append(None)
            continue
        y, x = ys[pick], xs[pick]
        result.append(
            (number, (slice(int(y.min()), int(y.max()) + 1), slice(int(x.min()), int(x.max()) + 1)))
        )
    return result


def _by_strokes(atom: Atom, strokes: Sequence[np.ndarray], width: float) -> list[Atom]:
    """An atom crossed by several strokes -> one atom per stroke: each pixel goes to the last
    stroke drawn over it, within a brush and a half of its line."""
    h, w = atom.mask.shape
    layer = Image.new("I", (w, h), 0)
    pen = ImageDraw.Draw(layer)
    line = max(3, round(1.5 * width))
    offset = np.array([atom.left, atom.top], np.float64)
    for number, stroke in enumerate(strokes, start=1):
        points = [tuple(p) for p in (np.asarray(stroke, np.float64) - offset).tolist()]
        if len(points) == 1:
            points = points * 2
        pen.line(points, fill=number, width=line, joint="curve")
        for x, y in (points[0], points[-1]):
            pen.ellipse((x - line / 2, y - line / 2, x + line / 2, y + line / 2), fill=number)
    owner = np.asarray(layer, np.int32) * atom.mask
    found = [int(n) for n in np.unique(owner) if n]
    if len(found) < 2:
        return [atom]
    unowned = atom.mask & (owner == 0)
    if unowned.any():  # pixels no stroke line reached join the stroke with the most ink
        owner[unowned] = max(found, key=lambda n: int((owner == n).sum()))
    return [
        Atom(atom.top + ys.start, atom.left + xs.start, owner[ys, xs] == n, piece=atom.piece)
        for n, (ys, xs) in (b for b in _boxes(owner, max(found)) if b is not None)
    ]


def _cut_paths(ink: np.ndarray, columns: list[int], reach: int) -> list[np.ndarray]:
    """For each column, the top-to-bottom path through the least ink that stays within
    ``reach`` of it -> the path's column in each row. All the windows step down the rows
    together: one pass of small array operations a row, whatever the number of cuts."""
    width = 2 * reach + 1
    padded = np.pad(ink.astype(np.float64), ((0, 0), (reach, reach)), constant_values=np.inf)
    starts = np.array(columns)
    cost = np.stack([padded[:, c : c + width] for c in starts], axis=1)  # (H, cuts, width)
    total = cost[0].copy()
    came = np.zeros(cost.shape, np.int8)
    shifted = np.full(total.shape, np.inf)
    for y in range(1, len(cost)):
        from_left = shifted.copy()
        from_left[:, 1:] = total[:, :-1] + CUT_TURN_COST
        from_right = shifted.copy()
        from_right[:, :-1] = total[:, 1:] + CUT_TURN_COST
        best = np.minimum(total, np.minimum(from_left, from_right))
        came[y] = np.where(best == total, 0, np.where(best == from_left, -1, 1))
        total = best + cost[y]
    paths = np.empty((len(starts), len(cost)), np.int64)
    paths[:, -1] = total.argmin(axis=1)
    cuts = np.arange(len(starts))
    for y in range(len(cost) - 1, 0, -1):
        paths[:, y - 1] = paths[:, y] + came[y, cuts, paths[:, y]]
    return list(paths + (starts - reach)[:, None])


def _cuts(local: np.ndarray, height: float) -> list[np.ndarray]:
    """The cheapest cut paths through a wide atom's ink (``local``), apart from each other and
    from its edges, at most one per CUT_SPACING line heights of its width, left to right."""
    margin = max(1, round(CUT_MARGIN * height))
    span = local.shape[1]
    starts = list(range(margin, span - margin, max(1, round(CUT_STEP * height))))
    if not starts:
        return []
    paths = _cut_paths(local, starts, max(1, round(CUT_REACH * height)))
    rows = np.arange(len(local))
    costs = [float(local[rows, p].sum()) for p in paths]
    wanted = int(span / (CUT_SPACING * height))
    chosen: list[np.ndarray] = []
    for k in np.argsort(costs, kind="stable"):
        if len(chosen) >= wanted:
            break
        centre = paths[k].mean()
        inside = margin <= centre <= span - margin
        if inside and all(abs(centre - c.mean()) >= margin for c in chosen):
            chosen.append(paths[k])
    return sorted(chosen, key=lambda p: float(p.mean()))


def _split(atom: Atom, ink: np.ndarray, height: float, width: float, source: int) -> list[Atom]:
    """A wide atom -> the parts between its cut paths, left to right."""
    if atom.mask.shape[1] <= SPLIT_WIDTH * height:
        return [atom]
    local = ink[atom.top : atom.bottom, atom.left : atom.right] * atom.mask
    paths = _cuts(local, height)
    if not paths:
        return [atom]
    rows = np.arange(len(local))
    crossed = [0.0] + [float(atom.mask[rows, p].sum()) / max(width, 1.0) for p in paths] + [0.0]
    grid = np.arange(atom.mask.shape[1])[None, :]
    part = np.zeros(atom.mask.shape, np.int32)
    for p in paths:
        part += grid >= p[:, None]
    pieces = []
    for n in range(len(paths) + 1):
        mask = atom.mask & (part == n)
        if mask.any():
            ys, xs = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
            pieces.append(
                Atom(
                    atom.top + int(ys[0]),
                    atom.left + int(xs[0]),
                    mask[ys[0] : ys[-1] + 1, xs[0] : xs[-1] + 1],
                    source,
                    n,
                    crossed[n],
                    crossed[n + 1],
                    atom.piece,
                )
            )
    return pieces


def pieces(ink: np.ndarray) -> tuple[list[Atom], float]:
    """(H, W) ink -> (its connected pieces, dust left out; the line height in pixels)."""
    label_image, count = labels(ink > 0)
    found = _atoms_of(label_image, count)
    rows = np.flatnonzero(ink.max(axis=1) > 0)
    height = float(rows[-1] - rows[0] + 1)
    kept = [a for a in found if max(a.mask.shape) >= SPECK * height] or found
    return [replace(a, piece=n) for n, a in enumerate(kept)], height


def atoms(
    ink: np.ndarray,
    found: Sequence[Atom],
    height: float,
    strokes: Sequence[np.ndarray] | None = None,
    whole: Sequence[bool] | None = None,
) -> list[Atom]:
    """The ``pieces`` of ``ink`` -> atoms left to right by centre of mass. A piece marked
    ``whole`` is kept as it is (the same object), neither split by strokes nor cut."""
    width = stroke_width(ink)
    kept: list[tuple[Atom, bool]] = []
    for piece, keep in zip(found, whole or [False] * len(found), strict=True):
        if keep or not strokes:
            kept.append((piece, keep))
        else:
            kept += [(part, False) for part in _by_strokes(piece, strokes, width)]
    parts = [
        part
        for n, (a, keep) in enumerate(kept)
        for part in ([a] if keep else _split(a, ink, height, width, n))
    ]
    # Slivers a stroke or a cut leaves behind are less than a dab of the pen: not writing.
    parts = [a for a in parts if a.mask.sum() >= width**2 / 2] or parts
    return sorted(parts, key=lambda a: a.centre)

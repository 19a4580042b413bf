"""MNIST digits as pen strokes: upsample, threshold, thin (Zhang-Suen), trace the skeleton into
smoothed pen paths, so that an MNIST training digit can be re-drawn with a canvas brush."""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image

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

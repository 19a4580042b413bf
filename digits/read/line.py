"""A second opinion on a written number: a small sequence network that reads the whole line at
once, trained with CTC (connectionist temporal classification) on `train` writers' digits and
letters composed into numbers (digits.training.line trains it).

The segmenting reader (digits.read.numbers) decides where each digit is and reads it with the
digit network; this one sees two touching digits, or a 1 glued to its neighbour, as the line
they are, and says how likely each count of digits is. The reader weighs its best split into
each count of digits by how likely this network finds that string (``log_likelihoods``), and
counts a number as holding a letter when this network reads one.

It runs on ONNX Runtime, as the digit network does: serving needs no torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from digits.config import PACKAGE_DIR
from digits.predict import inference_session

LINE_FILE = PACKAGE_DIR / "weights" / "line.onnx"
# The same network trained again from another seed (``--seed 7``): the reader weighs each count's
# digits by both models' likelihoods, averaged (digits.read.numbers). Either alone misreads
# some hands the other reads; together they count unseen writers' spaced numbers wrong about
# half as often.
SECOND_LINE_FILE = PACKAGE_DIR / "weights" / "line-seed7.onnx"
# Its outputs, per column of the line: CTC's blank, the ten digits, "a letter".
BLANK, LETTER = 0, 11
CLASSES = 12
HEIGHT = 32  # the line is read this many pixels high...
INK_HEIGHT = 28  # ...its ink this high, centred
PAD = 2
MIN_WIDTH, MAX_WIDTH = 12, 768
STRIDE = 4  # input columns per output column


@dataclass(frozen=True)
class LineInput:
    image: np.ndarray  # (HEIGHT, W) float32, W a multiple of STRIDE
    left: int  # the ink's first column, in the line's pixels
    scale: float  # the image's pixels per pixel of the line

    def line_x(self, column: float) -> float:
        """Where output column ``column`` starts (a whole number) or lies (a fraction), in the
        line's pixels."""
        return self.left + (STRIDE * column - PAD) / self.scale


def line_input(ink: np.ndarray) -> LineInput:
    """(H, W) ink, 0 to 1, of a written line -> its ink box scaled to INK_HEIGHT pixels high,
    the width in proportion, padded by PAD pixels a side and to a multiple of STRIDE. Raises
    ValueError for a line without ink."""
    rows, cols = np.flatnonzero(ink.max(axis=1) > 0), np.flatnonzero(ink.max(axis=0) > 0)
    if not len(rows):
        raise ValueError("the line holds no ink")
    crop = np.ascontiguousarray(ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1], np.float32)
    scale = INK_HEIGHT / crop.shape[0]
    width = int(np.clip(round(crop.shape[1] * scale), MIN_WIDTH, MAX_WIDTH - 2 * PAD))
    pil = Image.frombytes("F", crop.shape[::-1], crop.tobytes())
    resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR
    small = np.asarray(pil.resize((width, INK_HEIGHT), resample), np.float32)
    padded_width = -(-(width + 2 * PAD) // STRIDE) * STRIDE
    out = np.zeros((HEIGHT, padded_width), np.float32)
    top = (HEIGHT - INK_HEIGHT) // 2
    out[top : top + INK_HEIGHT, PAD : PAD + width] = small
    return LineInput(out, int(cols[0]), width / crop.shape[1])


class LineModel:
    def __init__(self, graph: bytes | Path) -> None:
        self._session = inference_session(graph.read_bytes() if isinstance(graph, Path) else graph)

    def log_probs(self, line: np.ndarray) -> np.ndarray:
        """(HEIGHT, W) from ``line_input`` -> (W / STRIDE, CLASSES) log-probabilities."""
        (out,) = self._session.run(None, {"line": line[None, None].astype(np.float32)})
        result: np.ndarray = out[0]
        return result


@lru_cache(maxsize=2)
def shipped(path: Path) -> LineModel:
    """A shipped line model (LINE_FILE or SECOND_LINE_FILE), loaded once a process: the path is
    the cache's key, so callers name it (``shipped()`` and ``shipped(LINE_FILE)`` would be two
    keys, two sessions of one model). Raises FileNotFoundError when the package lacks it (a
    broken install: the reader would count digits worse without it)."""
    if not path.exists():
        raise FileNotFoundError(f"the line model is missing: {path}")
    return LineModel(path)


@dataclass(frozen=True)
class Emission:
    """One character of the best path: its label (0-9 a digit, 10 a letter) and the output
    columns first..last that say it."""

    label: int
    first: int
    last: int


def emissions(log_probs: np.ndarray) -> list[Emission]:
    """Best path: the most likely class of each column, repeats merged, blanks dropped."""
    best = log_probs.argmax(axis=1).tolist()
    result: list[Emission] = []
    for t, c in enumerate(best):
        if c == BLANK:
            continue
        if t and best[t - 1] == c:
            result[-1] = Emission(c - 1, result[-1].first, t)
        else:
            result.append(Emission(c - 1, t, t))
    return result


def greedy(log_probs: np.ndarray) -> list[int]:
    """The labels of the best path (0-9 digits, 10 a letter)."""
    return [e.label for e in emissions(log_probs)]


def log_likelihoods(log_probs: np.ndarray, strings: Sequence[Sequence[int]]) -> np.ndarray:
    """(T, CLASSES) log-probabilities, or (M, T, CLASSES) of M models reading one line, and
    label strings (0-9 digits, 10 a letter) -> (S,) or (M, S): the log of each string's
    probability, CTC's forward algorithm, every string (and model) at once."""
    if log_probs.ndim == 2:
        result: np.ndarray = log_likelihoods(log_probs[None], strings)[0]
        return result
    count = len(strings)
    longest = max((len(s) for s in strings), default=0)
    states = 2 * longest + 1
    # Each string with blanks between and around its labels; padding states never start.
    extended = np.full((count, states), BLANK, np.int64)
    lengths = np.array([2 * len(s) + 1 for s in strings])
    for k, string in enumerate(strings):
        extended[k, 1 : 2 * len(string) : 2] = np.asarray(string, np.int64) + 1
    # A label may follow the one two states back when it differs from it (no blank needed).
    skip = np.zeros((count, states), bool)
    skip[:, 2:] = (extended[:, 2:] != BLANK) & (extended[:, 2:] != extended[:, :-2])
    # alpha[m, s, state]: the log-probability of the paths so far that end in that state
    alpha = np.full((len(log_probs), count, states), -np.inf)
    alpha[:, :, 0] = log_probs[:, 0, BLANK, None]
    has_label = lengths > 1
    alpha[:, has_label, 1] = log_probs[:, 0][:, extended[has_label, 1]]
    for t in range(1, log_probs.shape[1]):
        step = alpha.copy()
        step[..., 1:] = np.logaddexp(step[..., 1:], alpha[..., :-1])
        step[..., 2:] = np.where(
            skip[:, 2:], np.logaddexp(step[..., 2:], alpha[..., :-2]), step[..., 2:]
        )
        alpha = step + log_probs[:, t][:, extended]
    rows = np.arange(count)
    last = alpha[:, rows, lengths - 1]
    before = np.where(lengths > 1, alpha[:, rows, np.maximum(lengths - 2, 0)], -np.inf)
    result = np.logaddexp(last, before)
    return result

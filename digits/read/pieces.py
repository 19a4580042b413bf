"""Is a piece of a written number one character, or parts of two?

The network is taught two digits drawn as one as "not a digit", as it is taught letters, so its
not-a-digit probability cannot tell the reader which of the two a piece is: keep it whole (a
letter, and the number is not a number) or cut it (two touching digits). A logistic probe on
the penultimate features of the same forward pass says how much of that probability is a single
character's. It is fitted on `train` writers' digits and letters composed into numbers, cut into
pieces by the reader itself, and checked on `validation` writers':

    .venv/bin/python -m digits.read.pieces [--model PATH] [--out PATH]

The same pieces teach the probe's pair heads, linear on the same features: which pieces wide
enough to be two characters are exactly two (complete, nothing else), and what their left and
right characters are (a digit, or a letter). The reader reads a piece the heads call a pair as
two digits: touching digits that no cut sets apart cleanly (a 1 tucked under a 7's bar).

A probe belongs to the model version whose features it read; the reader uses the shipped one
only for that version, and a fixed share of the not-a-digit probability for any other (a
promoted model, until this is run for it).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from digits.config import SHIPPED_WEIGHTS
from digits.data import pen
from digits.predict import Predictor, softmax
from digits.read import numbers
from digits.read.probe import PAIR_SIDE, PROBE_FILE, Probe
from digits.schemas import NOT_A_DIGIT
from digits.synth import pen_numbers

SEED = 20_261_205
# Pieces the network gives less not-a-digit probability than this are not what the probe is
# for: it is fitted on the others.
MIN_NOT_A_DIGIT = 0.2
# The composed numbers it is fitted on: two to four characters, half of them with a letter,
# touching gaps over-represented (they make the pieces that hold two digits).
FIT_LENGTHS = (2, 4)
FIT_LETTER_SHARE = 0.5
FIT_GAP_SHARES: dict[pen_numbers.GapStyle, float] = {"touching": 0.5, "normal": 0.35, "wide": 0.15}
L2 = 0.01
STEPS = 400
LEARNING_RATE = 0.05


@dataclass(frozen=True)
class Pieces:
    """The pieces the reader weighs on some numbers, with what each truly is."""

    features: np.ndarray  # (N, D)
    single: np.ndarray  # (N,) bool: one whole character, or part of a letter
    kinds: list[str]  # "multi", "digit-part", "digit-whole", "letter-part", "letter-whole"
    # Every piece at least numbers.PAIR_MIN_WIDTH line heights wide, for the pair heads:
    pair_features: np.ndarray  # (M, D)
    pair_sides: np.ndarray  # (M, 2) int: a pair's characters (a digit, or 10: a letter); -1 else


def pieces(
    predictor: Predictor, role: pen.Role, count: int, seed: int, *, show_progress: bool = True
) -> Pieces:
    """``count`` numbers composed from ``role`` writers' characters, cut into candidate pieces
    as the reader cuts them; the pieces with some not-a-digit probability."""
    writers = pen_numbers.eligible_writers(role)
    letters = pen_numbers.writer_letters(role)
    names = [w for w in writers if letters.get(w)]
    features, single, kinds = [], [], []
    pair_features, pair_sides = [], []
    for i in tqdm(range(count), desc=f"pieces of {role} numbers", disable=not show_progress):
        rng = np.random.default_rng([seed, i])
        writer = names[int(rng.integers(len(names)))]
        own = writers[writer]
        length = int(rng.integers(FIT_LENGTHS[0], FIT_LENGTHS[1] + 1))
        chosen = [own[int(j)] for j in rng.choice(len(own), size=length, replace=False)]
        if rng.random() < FIT_LETTER_SHARE:
            pool = letters[writer]
            chosen[int(rng.integers(length))] = pool[int(rng.integers(len(pool)))]
        item = pen_numbers.compose(chosen, rng, pen_numbers.gap_style(rng, FIT_GAP_SHARES))
        found = numbers.candidates(item.image, predictor)
        owners = _owners(found, item.boxes)
        not_a_digit = softmax(found.logits)[:, NOT_A_DIGIT]
        wide = numbers.span_widths(found) >= numbers.PAIR_MIN_WIDTH
        for k, (start, end) in enumerate(found.spans):
            if wide[k]:
                pair_features.append(found.features[k])
                pair_sides.append(_pair_sides(owners, start, end, item.samples))
            if not_a_digit[k] < MIN_NOT_A_DIGIT:
                continue
            kind = _kind(owners, start, end, item.samples)
            features.append(found.features[k])
            single.append(kind != "multi" and kind != "digit-part")
            kinds.append(kind)
    return Pieces(
        np.array(features, np.float32),
        np.array(single),
        kinds,
        np.array(pair_features, np.float32).reshape(len(pair_features), -1),
        np.array(pair_sides, np.int64).reshape(-1, 2),
    )


def _owners(found: numbers.Candidates, boxes: tuple[tuple[int, int, int, int], ...]) -> list[int]:
    """Each atom -> the character whose ink box holds most of its pixels."""
    result = []
    for atom in found.atoms:
        ys, xs = np.nonzero(atom.mask)
        ys, xs = (ys + atom.top) * found.shrink, (xs + atom.left) * found.shrink
        inside = [
            ((xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)).sum() for x0, y0, x1, y1 in boxes
        ]
        result.append(int(np.argmax(inside)))
    return result


def _kind(owners: list[int], start: int, end: int, samples: tuple[pen.PenSample, ...]) -> str:
    inside = set(owners[start:end])
    if len(inside) > 1:
        return "multi"
    (character,) = inside
    whole = character not in owners[:start] + owners[end:]
    letter = samples[character].digit is None
    return f"{'letter' if letter else 'digit'}-{'whole' if whole else 'part'}"


def _pair_sides(
    owners: list[int], start: int, end: int, samples: tuple[pen.PenSample, ...]
) -> tuple[int, int]:
    """Atoms owners[start:end] -> the two characters they are, exactly and completely (a digit,
    or PAIR_SIDE - 1 for a letter); (-1, -1) when they are anything else."""
    inside = sorted(set(owners[start:end]))
    if len(inside) != 2 or inside[1] != inside[0] + 1:
        return -1, -1
    if set(owners[:start] + owners[end:]) & set(inside):
        return -1, -1
    left, right = (samples[c].digit for c in inside)
    letter = PAIR_SIDE - 1
    return (letter if left is None else left), (letter if right is None else right)


def fit(train: Pieces, model_version: str) -> Probe:
    weights, bias = logistic_regression(train.features, train.single, l2=L2)
    pair = train.pair_sides[:, 0] >= 0
    kind_w, kind_b = softmax_regression(train.pair_features, pair.astype(np.int64), 2, l2=L2)
    left_w, left_b = softmax_regression(
        train.pair_features[pair], train.pair_sides[pair, 0], PAIR_SIDE, l2=L2
    )
    right_w, right_b = softmax_regression(
        train.pair_features[pair], train.pair_sides[pair, 1], PAIR_SIDE, l2=L2
    )
    return Probe(
        model_version,
        weights.astype(np.float32),
        bias,
        np.hstack([kind_w, left_w, right_w]).astype(np.float32),
        np.concatenate([kind_b, left_b, right_b]).astype(np.float32),
    )


def fit_for(predictor: Predictor, numbers: int) -> Probe:
    """A probe for the model ``predictor`` runs (a retraining's candidate), from ``numbers``
    composed `train` numbers, quietly."""
    found = pieces(predictor, "train", numbers, SEED, show_progress=False)
    return fit(found, predictor.version)


def logistic_regression(
    x: np.ndarray, y: np.ndarray, *, l2: float = 0.0, steps: int = STEPS
) -> tuple[np.ndarray, float]:
    """(N, D) inputs, (N,) bool outcomes -> (weights (D,), bias) of the L2-regularised logistic
    regression, fitted by full-batch Adam on standardised inputs (the standardisation folded
    into what it returns)."""
    mean = x.mean(axis=0)
    scale = x.std(axis=0) + 1e-3
    design = np.hstack([(x - mean) / scale, np.ones((len(x), 1))]).astype(np.float32)
    target = y.astype(np.float32)
    decay = np.full(design.shape[1], l2, np.float32)
    decay[-1] = 0.0  # the bias is not shrunk
    w = np.zeros(design.shape[1], np.float32)
    moments = (np.zeros_like(w), np.zeros_like(w))
    for step in range(1, steps + 1):
        error = 1.0 / (1.0 + np.exp(-(design @ w))) - target
        _adam_step(w, design.T @ error / len(target) + decay * w, *moments, step)
    weights = w[:-1] / scale
    return weights, float(w[-1] - mean @ weights)


def softmax_regression(
    x: np.ndarray, y: np.ndarray, classes: int, *, l2: float = 0.0, steps: int = STEPS
) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) inputs, (N,) labels in range(classes) -> (weights (D, classes), bias (classes,))
    of the L2-regularised multinomial logistic regression, fitted as ``logistic_regression``
    is."""
    mean = x.mean(axis=0)
    scale = x.std(axis=0) + 1e-3
    design = ((x - mean) / scale).astype(np.float32)
    target = np.eye(classes, dtype=np.float32)[y]
    w = np.zeros((design.shape[1], classes), np.float32)
    b = np.zeros(classes, np.float32)
    w_moments = (np.zeros_like(w), np.zeros_like(w))
    b_moments = (np.zeros_like(b), np.zeros_like(b))
    for step in range(1, steps + 1):
        error = (softmax(design @ w + b) - target) / len(target)
        _adam_step(w, design.T @ error + l2 * w, *w_moments, step)
        _adam_step(b, error.sum(axis=0), *b_moments, step)
    weights = w / scale[:, None]
    return weights, b - mean @ weights


def _adam_step(
    param: np.ndarray, grad: np.ndarray, first: np.ndarray, second: np.ndarray, step: int
) -> None:
    """One Adam step (step counts from 1) on ``param``, its moments ``first`` and ``second``
    updated in place with it."""
    first *= 0.9
    first += 0.1 * grad
    second *= 0.999
    second += 0.001 * grad**2
    param -= (
        LEARNING_RATE * (first / (1 - 0.9**step)) / (np.sqrt(second / (1 - 0.999**step)) + 1e-8)
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=SHIPPED_WEIGHTS)
    parser.add_argument("--out", type=Path, default=PROBE_FILE)
    parser.add_argument("--numbers", type=int, default=3000, help="train numbers composed")
    args = parser.parse_args()
    predictor = Predictor.from_checkpoint(args.model)
    probe = fit(pieces(predictor, "train", args.numbers, SEED), predictor.version)
    check = pieces(predictor, "validation", args.numbers // 5, SEED + 1)
    said = probe.single_share(check.features) > 0.5
    sys.stdout.write(f"validation pieces: {np.mean(said == check.single):.2%} told apart\n")
    for kind in sorted(set(check.kinds)):
        pick = np.array([k == kind for k in check.kinds])
        sys.stdout.write(f"  {kind:13} n={pick.sum():5}  said single {said[pick].mean():.1%}\n")
    read = probe.pairs(check.pair_features)
    if read is not None:
        pair = check.pair_sides[:, 0] >= 0
        sides = np.stack([read.left.argmax(axis=1), read.right.argmax(axis=1)], axis=1)
        sys.stdout.write(
            f"validation wide pieces: {np.mean((read.pair > 0.5) == pair):.2%} told pair or not; "
            f"pairs read right {np.mean((sides[pair] == check.pair_sides[pair]).all(axis=1)):.2%}\n"
        )
    probe.save(args.out)
    sys.stdout.write(f"wrote {args.out} for model {probe.model_version}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

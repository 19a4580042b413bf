"""Reading a whole handwritten number: the ink is cut into atoms (digits.read.segment), the atoms
are grouped into digits by the recogniser itself, and each digit is framed exactly as a single
drawing is (digits.preprocess.frame) and read by the same Predictor. A connected piece of ink
that the network surely reads as one digit is one atom; only the others are cut.

Grouping: every run of up to MAX_GROUP neighbouring atoms is a candidate digit, read by the
network; dynamic programming picks the split of the line whose pieces read best. A piece's
score is the log of its best digit's probability plus a share of the not-a-digit probability
(so a letter stays one piece rather than being split into digit-like strokes, while two digits
read as one "pair" piece lose to reading them apart), less a cost for pieces too short to be
a digit of this line and for the ink cut to make them. A piece wide enough may also be read as
two digits at once, by the probe's pair heads (digits.read.probe): two touching digits that no
cut sets apart cleanly are read together rather than as two damaged halves.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from digits import decode, preprocess
from digits.config import DEFAULT_MAX_NUMBER_DIGITS
from digits.errors import EmptyImageError, InvalidInputError, StrokesError, TooManyDigitsError
from digits.predict import Prediction, Predictor, softmax
from digits.read import line, probe, segment
from digits.schemas import NOT_A_DIGIT, NUM_DIGITS

NumberStatus = Literal["ok", "uncertain", "not_a_number"]
# A number's digit predictions, left to right -> the same, maybe answered anew.
Adapt = Callable[[list[Prediction]], list[Prediction]]

# The line is read shrunk to about this many pixels high: the framing brings every digit down
# to 20x20 anyway, and segmenting a quarter of the pixels takes a quarter of the time.
WORK_HEIGHT = 100
MAX_STROKES = 64
MAX_STROKE_POINTS = 4096
MAX_GROUP = 6  # a digit is at most this many atoms
MAX_GROUP_WIDTH = 1.6  # line heights: no group of atoms wider than this is read as one digit
# A piece of ink as wide as this may still be read whole as one digit (a 2 written as a long
# Z): 10 of 3,715 `train` writers' digits drawn alone are wider than MAX_GROUP_WIDTH, 4 wider
# than this. Only whole pieces: wider groups of atoms as well would read a fifth more
# candidates, about 1.5 ms more per 6-digit number, for no more counted right on `validation`.
MAX_PIECE_WIDTH = 2.0
# How pieces are scored, tuned on `validation` writers' numbers (benchmarks/numbers_bench.py
# --role validation): the share of the not-a-digit probability a piece is credited with (none
# lets letters be split into digit-like strokes), the cost of a piece shorter than this share
# of the line (a 5's flag alone), and of each stroke a cut goes through (a cut through a 0
# crosses two, one between touching digits mostly one).
NOT_A_DIGIT_SHARE = 0.5
SHORT_HEIGHT, SHORT_COST = 0.55, 10.0
CUT_COST = 0.3
# The pieces' scores are not log-likelihoods; scaled by this they weigh one count of digits
# against another about as well as they can.
SPLIT_SHARPNESS = 3.0
# A piece of ink no wider than WHOLE_WIDTH line heights that the network reads as one digit
# this surely (its softmax share) is one digit: it is neither cut nor split by strokes.
WHOLE_WIDTH = 1.1
WHOLE_SURE = 0.99
# Pairs: a piece at least this many line heights wide may be read as two digits by the probe's
# pair heads, scored as the log of both sides' best digit probabilities plus PAIR_WEIGHT times
# the log of the probability that it is a pair; either side this likely a letter makes it
# not a digit (a letter touching a digit reads as a pair too). Tuned on `validation` writers.
PAIR_MIN_WIDTH = 0.5
PAIR_WEIGHT = 1.0
PAIR_LETTER = 0.15
# A piece the network gives this much not-a-digit probability, counting only the probe's share
# of it (one character, not parts of two), is a letter in a number: not a digit, though alone
# its probability would fall short of the predictor's threshold. Tuned on `validation` writers.
LETTER_SURE = 0.5
# The line model (digits.read.line): how much its log-probability of a split's digits weighs
# beside the split's score when choosing the count of digits, by how much its own reading must
# be likelier than the split's to be answered instead (``_choose``), and how sure it must be of
# a letter for the number to hold one. Tuned on `validation` writers.
LINE_WEIGHT = 1.0
LINE_MARGIN = 3.0
LINE_LETTER = 0.5
# A split that cuts one piece of ink into digits where it leaves clear gaps (boxes more than
# SPACED_GAP line heights apart) between its other digits most likely reads a stroke of a
# digit as a digit of its own: a 0 begun with a lead-in stroke as "10", a tail as a 1. Both
# networks read some hands' strokes so; the writer's spacing says otherwise. Its count costs
# SPACED_CUT_COST (in log-probability) times its cuts times the share of its other boundaries
# (between pieces of ink) that are clear gaps (``_spaced_cuts``): its own cuts say nothing of
# how the writer spaces digits. Counted among all its boundaries, a wide hand's 6 cut into
# "10" in a 5-digit number paid half as much; on `validation` numbers written wide
# (numbers_bench.py --role validation --stretch 1.2 1.8 --n 3000) that counts 39 of 2,262
# spaced ones wrong rather than 40, on two scratch sets of such numbers 13 of 2,289 rather
# than 20; the benchmark's own `validation` sets count their spaced numbers the same. The
# cost was tuned on `validation` writers with the share of all boundaries: on two sets of
# 6,000 numbers it left 7 and 10 of about 4,500 spaced ones counted wrong, not 24 and 19, and
# touching ones as they were; from 8 to 20 counted about as many right, 40 undid half of it
# (some spaced digits touch all the same, and must be cut). A gap wider than 1 % of the line
# (a pixel of the line as read) is clear: digits written a hair apart are spaced too. On 3,000
# `validation` numbers written so (numbers_bench.py --role validation --style close --n 3000)
# it counts 19 wrong rather than 22 at 2 %, on two other sets of 3,000 such numbers 51 rather
# than 61; two sets of the benchmark's `validation` numbers (6,000 and 8,000), whose gaps are
# wider than 2 % of the line all but always, count the same.
SPACED_GAP = 0.01
SPACED_CUT_COST = 12.0
# A digit's own ink next to never leaves a clear gap between its columns (10 of 3,715 `train`
# writers' digits drawn alone as the real-pen benchmark draws them): a piece that reads ink
# across one as one digit pays GAP_COST for each (``_shape_cost``). Without it the line
# model's count merged a digit with its neighbour across the gap where one hand's digits read
# oddly to it ("614" as "64": a `loop` writer's numbers showed it, 15 of 2,239 spaced ones
# counted wrong, 4 with the cost).
# Tuned on `validation` writers: on two sets of 6,000 numbers it leaves 5 and 8 of about 4,500
# spaced ones counted wrong, not 7 and 10, and touching ones as they were; 4 counts the same,
# 25 splits the few digits that do leave a gap.
GAP_COST = 10.0
# The whole number's confidence: a logistic regression on how sure the count of digits is (c),
# the product of the digits' calibrated confidences (q) and the line models' probability of the
# digits read among those weighed (a), each as log p and log(1 - p), and whether the line
# model's own reading was answered (``confidence_terms``), fitted on `validation` writers'
# numbers: numbers_bench.py --role validation --n 6000 prints the fit. 6,000, not the default
# 1,500: a fit on 1,500 was off by 3.0 % (expected calibration error) on the next 1,500
# numbers of the same writers; this one is off by 0.9 % on its 6,000 and on 3,000 others.
CONFIDENCE_WEIGHTS = np.array([-0.16, 2.365, 0.205, 0.043, -0.509, -0.073, -2.793])
CONFIDENCE_BIAS = 1.492
# A number is answered `ok` from this confidence up: the lowest at which no `validation` writer's
# numbers are answered `ok` and wrong more often than 1.5 % (0.28 % of all of them; 61 % are
# answered `ok`), chosen with the weights above in place (numbers_bench.py prints it too).
# Writer by writer, not over all: over all 11 writers 0.5 % once chose 0.96, which answered
# 1.7 % of `test` writers' numbers `ok` and wrong.
OK_CONFIDENCE = 0.98


@dataclass(frozen=True)
class DigitReading:
    prediction: Prediction
    box: tuple[int, int, int, int]  # (x0, y0, x1, y1) in input pixels, x1 and y1 exclusive
    paired: bool = False  # read with a neighbour as a pair: the box is half of theirs

    def as_dict(self) -> dict[str, Any]:
        return self.prediction.as_dict() | {"box": list(self.box)}


@dataclass(frozen=True)
class NumberReading:
    number: str
    confidence: float
    status: NumberStatus
    digits: tuple[DigitReading, ...]
    certainty: float  # how sure the count of digits is: the share of splits that agree on it
    agreement: float = 1.0  # the line model's probability of these digits, among those weighed
    from_line: bool = False  # the line model's own reading, not a split's

    def as_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "confidence": self.confidence,
            "status": self.status,
            "digits": [d.as_dict() for d in self.digits],
        }


def parse_strokes(strokes: Any) -> list[np.ndarray]:
    """``[[[x, y], ...], ...]`` in canvas pixels -> a (K, 2) float array per stroke."""
    if not isinstance(strokes, list) or len(strokes) > MAX_STROKES:
        raise StrokesError(f"strokes must be a list of at most {MAX_STROKES} strokes")
    try:
        arrays = [np.asarray(s, dtype=np.float64).reshape(-1, 2) for s in strokes]
    except (TypeError, ValueError) as exc:
        raise StrokesError("each stroke must be a list of [x, y] points") from exc
    if sum(len(a) for a in arrays) > MAX_STROKE_POINTS:
        raise StrokesError(f"strokes may hold at most {MAX_STROKE_POINTS} points in all")
    if any(not np.isfinite(a).all() for a in arrays):
        raise StrokesError("stroke points must be finite numbers")
    return [a for a in arrays if len(a)]


class NumberReader:
    def __init__(
        self, predictor: Predictor, *, max_digits: int = DEFAULT_MAX_NUMBER_DIGITS
    ) -> None:
        self.predictor = predictor
        self.max_digits = max_digits
        self.probe = probe.for_checkpoint(predictor.checkpoint)
        self.line: line.LineModel | None = line.shipped(line.LINE_FILE)
        # weighs the counts beside the first (digits.read.line says why); reads nothing itself
        self.second_line: line.LineModel | None = line.shipped(line.SECOND_LINE_FILE)

    def read(
        self,
        image: decode.ImageInput,
        *,
        strokes: Sequence[np.ndarray] | None = None,
        adapt: Adapt | None = None,
        **limits: int,
    ) -> NumberReading:
        """``adapt`` answers the chosen pieces' predictions anew (a session's memory,
        digits.api.memory); the number, its status and confidence follow its answers.

        Raises digits.errors.InvalidInputError: EmptyImageError for a blank drawing,
        TooManyDigitsError past max_digits pieces, the other PreprocessErrors for an image that
        cannot be read."""
        found = candidates(image, self.predictor, strokes, max_digits=self.max_digits, **limits)
        atoms, spans, features = found.atoms, found.spans, found.features
        share = NOT_A_DIGIT_SHARE if self.probe is None else self.probe.single_share(features)
        probs = softmax(found.logits)
        scores = _scores(probs, share) - [_shape_cost(atoms[i:j], found.height) for i, j in spans]
        pairs = None if self.probe is None else self.probe.pairs(features)
        options = _options(spans, scores, pairs, span_widths(found))
        splits, shares = _best_splits(options, len(atoms))
        seen = None if self.line is None else self._line_read(found.ink)
        choice = _choose(splits, options, probs, pairs, atoms, found.height, seen)
        read = None
        if choice.from_line:
            assert seen is not None
            read = self._line_digits(found, seen)
        if read is None:
            choice = choice.fallen_back()
            read = self._split_digits(found, options, splits[choice.count][0], probs, share, pairs)
        expanded, boxes, paired = read
        if len(expanded) > self.max_digits:
            raise TooManyDigitsError(_too_many(len(expanded), self.max_digits))
        if seen is not None:
            expanded = _line_letter(seen, expanded, boxes)
        if adapt is not None:  # after the split: the memory never decides where digits are
            expanded = adapt(expanded)
        height_px, width_px = found.size
        digits = []
        for prediction, box, two in zip(expanded, boxes, paired, strict=True):
            x0, y0, x1, y1 = (v * found.shrink for v in box)
            scaled = (x0, y0, min(x1, width_px), min(y1, height_px))
            digits.append(DigitReading(prediction, scaled, two))
        certainty = float(shares[len(digits)]) if len(digits) < len(shares) else 0.0
        return self._reading(digits, certainty, choice.agreement, choice.from_line)

    def _split_digits(
        self,
        found: Candidates,
        options: list[_Option],
        chosen: list[int],
        probs: np.ndarray,
        share: float | np.ndarray,
        pairs: probe.PairReading | None,
    ) -> tuple[list[Prediction], list[tuple[int, int, int, int]], list[bool]]:
        """The digits of a split: each chosen piece's prediction (two for a pair), box, and
        whether it was read as half of a pair."""
        atoms, spans = found.atoms, found.spans
        pieces = [options[k].span for k in chosen]
        predictions = self.predictor.predictions(
            found.inputs[pieces], found.logits[pieces], found.features[pieces]
        )
        letter = None if self.probe is None else probs[:, NOT_A_DIGIT] * share
        expanded: list[Prediction] = []
        boxes: list[tuple[int, int, int, int]] = []
        paired: list[bool] = []
        for k, prediction in zip(chosen, predictions, strict=True):
            start, end = spans[options[k].span]
            box = _box(atoms[start:end])
            if options[k].digits == 1:
                if letter is not None and letter[options[k].span] >= LETTER_SURE:
                    prediction = replace(prediction, status="not_a_digit")
                expanded.append(prediction)
                boxes.append(box)
                paired.append(False)
            else:
                assert pairs is not None
                halves = _halves(found.ink, atoms[start:end])
                expanded += _pair_predictions(
                    self.predictor, prediction, pairs, options[k].span, halves
                )
                middle = (box[0] + box[2]) // 2  # where the two digits meet is not known
                boxes += [(box[0], box[1], middle, box[3]), (middle, box[1], box[2], box[3])]
                paired += [True, True]
        return expanded, boxes, paired

    def _line_digits(
        self, found: Candidates, seen: _LineSeen
    ) -> tuple[list[Prediction], list[tuple[int, int, int, int]], list[bool]] | None:
        """The digits of the line model's best path: the line is cut halfway between the
        columns that say one digit and those that say the next; each part's ink is framed and
        read by the digit network for its features (what a session's memory compares), while
        its digit and probabilities are the line model's where it says it most surely. None
        when a part holds no ink."""
        said = line.emissions(seen.log_probs)
        ink = found.ink
        # Halfway, not where the line holds least ink: on `validation` touching numbers that
        # puts 99 % of the boxes over their own digit, not 95 % (the first line model).
        cuts = [
            round(seen.input.line_x((a.last + 1 + b.first) / 2))
            for a, b in itertools.pairwise(said)
        ]
        bounds = [0, *cuts, ink.shape[1]]
        crops, boxes = [], []
        for x0, x1 in itertools.pairwise(bounds):
            part = ink[:, x0:x1] > preprocess.BBOX_THRESHOLD
            if not part.any():
                return None
            rows, cols = np.flatnonzero(part.any(axis=1)), np.flatnonzero(part.any(axis=0))
            box = (x0 + int(cols[0]), int(rows[0]), x0 + int(cols[-1]) + 1, int(rows[-1]) + 1)
            crops.append(preprocess.frame(ink[box[1] : box[3], box[0] : box[2]]))
            boxes.append(box)
        inputs = np.stack(crops)
        logits, features = self.predictor.logits_and_features(inputs)
        predictions = []
        for emission, prediction in zip(
            said, self.predictor.predictions(inputs, logits, features), strict=True
        ):
            columns = seen.log_probs[emission.first : emission.last + 1]
            peak = columns[int(columns[:, emission.label + 1].argmax())]
            digit_probs = np.exp(peak[1 : 1 + NUM_DIGITS])
            digit_probs /= digit_probs.sum()
            values = [float(p) for p in digit_probs]
            predictions.append(
                replace(
                    prediction,
                    digit=emission.label,
                    confidence=values[emission.label],
                    probabilities=values,
                    status=self.predictor.status(digit_probs, 0.0),
                    reject=0.0,
                )
            )
        return predictions, boxes, [False] * len(predictions)

    def _line_read(self, ink: np.ndarray) -> _LineSeen:
        assert self.line is not None
        seen = line.line_input(ink)
        second = None if self.second_line is None else self.second_line.log_probs(seen.image)
        return _LineSeen(self.line.log_probs(seen.image), seen, second)

    def _reading(
        self,
        digits: list[DigitReading],
        certainty: float,
        agreement: float = 1.0,
        from_line: bool = False,
    ) -> NumberReading:
        terms = confidence_terms(
            certainty, [d.prediction.confidence for d in digits], agreement, from_line
        )
        confidence = float(1.0 / (1.0 + np.exp(-(terms @ CONFIDENCE_WEIGHTS + CONFIDENCE_BIAS))))
        status: NumberStatus
        statuses = {d.prediction.status for d in digits}
        if "not_a_digit" in statuses:
            status = "not_a_number"
        elif "uncertain" in statuses or confidence < OK_CONFIDENCE:
            status = "uncertain"
        else:
            status = "ok"
        number = "".join(str(d.prediction.digit) for d in digits)
        return NumberReading(
            number, confidence, status, tuple(digits), certainty, agreement, from_line
        )


@dataclass(frozen=True)
class _LineSeen:
    """What the line model (digits.read.line) reads in the whole line."""

    log_probs: np.ndarray  # (T, line.CLASSES)
    input: line.LineInput
    second: np.ndarray | None = None  # the second line model's log_probs

    def likelihoods(self, strings: Sequence[Sequence[int]]) -> np.ndarray:
        """(S,) the log of each string's probability, averaged over the line models."""
        models = [self.log_probs] if self.second is None else [self.log_probs, self.second]
        result: np.ndarray = line.log_likelihoods(np.stack(models), strings).mean(axis=0)
        return result


@dataclass(frozen=True)
class _Choice:
    count: int  # the digits of the split read (of the best split, where the line model's wins)
    from_line: bool  # the line model's own reading (its best path), not a split's
    agreement: float  # the line model's probability of the digits read, among those weighed
    split_agreement: float  # the same of the split's digits

    def fallen_back(self) -> _Choice:
        """The split's reading instead of the line model's."""
        return replace(self, from_line=False, agreement=self.split_agreement)


def _choose(
    splits: dict[int, tuple[list[int], float]],
    options: list[_Option],
    probs: np.ndarray,
    pairs: probe.PairReading | None,
    atoms: list[segment.Atom],
    height: float,
    seen: _LineSeen | None,
) -> _Choice:
    """How many digits the line holds, and whose reading to answer. The count whose best split
    scores best, its score raised by LINE_WEIGHT times the log of the line model's probability
    for that count (``_count_evidence``): of the digits that split reads, or of its own reading
    of as many characters. Then, where that split joins touching ink (a pair, or pieces whose
    boxes meet), the line model's own reading when it finds it likelier by more than
    LINE_MARGIN (in log-probability): it reads touching digits better than any split, and
    digits apart worse. A split that cuts ink where it spaces its other digits pays for it
    (``_spaced_cuts``)."""
    scores = {
        digits: score - SPACED_CUT_COST * _spaced_cuts(options, chosen, atoms, height)
        for digits, (chosen, score) in splits.items()
    }
    if seen is None:
        return _Choice(max(scores, key=lambda digits: scores[digits]), False, 1.0, 1.0)
    counts = list(splits)
    strings = [_string(options, splits[c][0], probs, pairs) for c in counts]
    said = line.greedy(seen.log_probs)
    likelihoods = seen.likelihoods([*strings, said]).tolist()
    for digits, evidence in zip(counts, _count_evidence(counts, likelihoods, said), strict=True):
        scores[digits] += LINE_WEIGHT * evidence
    best = max(scores, key=lambda digits: scores[digits])
    k = counts.index(best)
    from_line = (
        bool(said)
        and line.LETTER - 1 not in said
        and said != strings[k]
        and likelihoods[-1] - likelihoods[k] > LINE_MARGIN
        and _joined(options, splits[best][0], atoms)
    )
    weighed = dict(zip(map(tuple, [*strings, said]), likelihoods, strict=True))
    total = np.logaddexp.reduce(list(weighed.values()))
    split = float(np.exp(likelihoods[k] - total))
    mine = float(np.exp(likelihoods[-1] - total)) if from_line else split
    return _Choice(best, from_line, mine, split)


def _count_evidence(counts: list[int], likelihoods: list[float], said: list[int]) -> list[float]:
    """The line model's log-probability for each count of digits: of what that count's split
    reads (``likelihoods``, in the order of ``counts``), or of its own reading (``said``, whose
    log-probability ends ``likelihoods``) where that holds as many characters, whichever is
    likelier. It counts better than it reads every hand's digits (a 6 whose stem curls into
    its loop it reads as a 0; a letter the digit network takes for a digit): its doubt about
    what a character is is no vote against the count."""
    return [
        max(likelihood, likelihoods[-1]) if len(said) == digits else likelihood
        for digits, likelihood in zip(counts, likelihoods, strict=False)
    ]


def _spaced_cuts(
    options: list[_Option], chosen: list[int], atoms: list[segment.Atom], height: float
) -> float:
    """How far a split reads a stroke as a digit: how many of its boundaries between pieces
    go through one piece of ink, times the share of its other boundaries (between pieces of
    ink) that are clear gaps."""
    groups = [atoms[options[k].start : options[k].end] for k in chosen]
    cuts = clear = 0
    for left, right in itertools.pairwise(groups):
        shared = {a.piece for a in left} & {a.piece for a in right}
        if shared - {-1}:  # -1: an atom made without its piece known
            cuts += 1
        elif _box(right)[0] - _box(left)[2] > SPACED_GAP * height:
            clear += 1
    return cuts * clear / max(len(groups) - 1 - cuts, 1)


def _joined(options: list[_Option], chosen: list[int], atoms: list[segment.Atom]) -> bool:
    """Whether a split reads touching ink: a pair, or neighbouring pieces whose boxes meet."""
    if any(options[k].digits == 2 for k in chosen):
        return True
    boxes = [_box(atoms[options[k].start : options[k].end]) for k in chosen]
    return any(a[2] >= b[0] for a, b in itertools.pairwise(boxes))


def _string(
    options: list[_Option], chosen: list[int], probs: np.ndarray, pairs: probe.PairReading | None
) -> list[int]:
    """The best digit of each piece of a split, both of a pair's."""
    result = []
    for k in chosen:
        option = options[k]
        if option.digits == 1:
            result.append(int(probs[option.span, :NUM_DIGITS].argmax()))
        else:
            assert pairs is not None
            result += [
                int(pairs.left[option.span, :NUM_DIGITS].argmax()),
                int(pairs.right[option.span, :NUM_DIGITS].argmax()),
            ]
    return result


def _line_letter(
    seen: _LineSeen, predictions: list[Prediction], boxes: list[tuple[int, int, int, int]]
) -> list[Prediction]:
    """Where the line model reads a letter as surely as LINE_LETTER, the digit nearest it is
    not a digit."""
    letter = np.exp(seen.log_probs[:, line.LETTER])
    column = int(letter.argmax())
    if letter[column] < LINE_LETTER:
        return predictions
    x = seen.input.line_x(column + 0.5)
    nearest = int(np.argmin([abs((x0 + x1) / 2 - x) for x0, _, x1, _ in boxes]))
    result = list(predictions)
    result[nearest] = replace(result[nearest], status="not_a_digit")
    return result


@dataclass(frozen=True)
class _Option:
    """One way to read atoms[start:end]: candidate ``span`` as one digit, or as two."""

    start: int
    end: int
    span: int
    digits: int
    score: float


def _options(
    spans: list[tuple[int, int]],
    scores: np.ndarray,
    pairs: probe.PairReading | None,
    widths: np.ndarray,
) -> list[_Option]:
    """Every span read as one digit, and those wide enough read as two by the pair heads."""
    options = [_Option(i, j, k, 1, float(scores[k])) for k, (i, j) in enumerate(spans)]
    if pairs is None:
        return options
    both = pairs.left[:, :NUM_DIGITS].max(axis=1) * pairs.right[:, :NUM_DIGITS].max(axis=1)
    paired = np.log(both + 1e-12) + PAIR_WEIGHT * np.log(pairs.pair + 1e-6)
    for k in np.flatnonzero(widths >= PAIR_MIN_WIDTH).tolist():
        options.append(_Option(*spans[k], k, 2, float(paired[k])))
    return options


def _pair_predictions(
    predictor: Predictor,
    whole: Prediction,
    pairs: probe.PairReading,
    k: int,
    halves: np.ndarray,
) -> list[Prediction]:
    """The two digits the pair heads read in candidate k; a side as likely a letter as
    PAIR_LETTER is not a digit. Each keeps its half of the ink as its input, and that half's
    penultimate features (one more forward pass of two inputs): what a session's memory
    (digits.api.memory) compares, as it compares the features of a digit read alone."""
    _, features = predictor.logits_and_features(halves)
    sides = []
    for side, half, own in zip((pairs.left[k], pairs.right[k]), halves, features, strict=True):
        probs = side[:NUM_DIGITS] / side[:NUM_DIGITS].sum()
        digit = int(probs.argmax())
        letter = float(side[NUM_DIGITS])
        status = predictor.status(probs, 0.0) if letter < PAIR_LETTER else "not_a_digit"
        values = [float(p) for p in probs]
        sides.append(
            replace(
                whole,
                digit=digit,
                confidence=values[digit],
                probabilities=values,
                status=status,
                model_input=half,
                reject=letter,
                features=own,
            )
        )
    return sides


def span_widths(found: Candidates) -> np.ndarray:
    """(len(found.spans),) how wide each candidate is, in line heights."""
    return np.array(
        [
            (max(a.right for a in found.atoms[i:j]) - min(a.left for a in found.atoms[i:j]))
            / found.height
            for i, j in found.spans
        ]
    )


def confidence_terms(
    certainty: float, confidences: Sequence[float], agreement: float = 1.0, from_line: bool = False
) -> np.ndarray:
    """What the number's confidence is a logistic function of (CONFIDENCE_WEIGHTS)."""
    joint = float(np.prod(confidences))
    clipped = np.clip([certainty, joint, agreement], 1e-12, 1.0 - 1e-6)
    return np.concatenate([np.log(clipped), np.log1p(-clipped), [float(from_line)]])


@dataclass(frozen=True)
class Candidates:
    """A written line cut into atoms, every run of them that could be one digit, and what one
    forward pass of the network reads in each."""

    size: tuple[int, int]  # (height, width) of the input, in its pixels
    shrink: int  # input pixels per pixel of the line as read
    height: float  # the line's height, as read
    atoms: list[segment.Atom]
    spans: list[tuple[int, int]]  # atoms[i:j] that could be one digit
    inputs: np.ndarray  # (len(spans), 28, 28): each span framed as a single drawing is
    logits: np.ndarray  # (len(spans), classes)
    features: np.ndarray  # (len(spans), D) penultimate features
    ink: np.ndarray  # (H, W) the line as read: the atoms' coordinates are its pixels


def candidates(
    image: decode.ImageInput,
    predictor: Predictor,
    strokes: Sequence[np.ndarray] | None = None,
    *,
    max_digits: int = DEFAULT_MAX_NUMBER_DIGITS,
    **limits: int,
) -> Candidates:
    """Raises the PreprocessErrors of ``preprocess.ink_map``, and TooManyDigitsError before
    reading anything when the pieces are more than max_digits digits could be."""
    full = preprocess.ink_map(image, **limits)
    ink, shrink = working_ink(full)
    if strokes:
        strokes = [np.asarray(s, np.float64) / shrink for s in strokes]
    pieces, height = segment.pieces(ink)
    if len(pieces) > MAX_GROUP * max_digits:
        raise TooManyDigitsError(_too_many(len(pieces), max_digits))
    # Most digits are one piece of ink, and reading every way of cutting them is most of the
    # work: a piece that surely reads as one digit is left whole (POST /api/numbers answers a
    # 6-digit number within 15 ms, not 45, and as many numbers are read right).
    reads = _Reads(predictor, ink)
    whole = np.zeros(len(pieces), bool)
    narrow = [k for k, p in enumerate(pieces) if p.mask.shape[1] <= WHOLE_WIDTH * height]
    if narrow:
        _, logits, _ = reads.of([[pieces[k]] for k in narrow])
        whole[narrow] = softmax(logits)[:, :NUM_DIGITS].max(axis=1) >= WHOLE_SURE
    atoms = segment.atoms(ink, pieces, height, strokes, whole.tolist())
    if len(atoms) > MAX_GROUP * max_digits:
        raise TooManyDigitsError(_too_many(len(atoms), max_digits))
    spans = _spans(atoms, height)
    inputs, logits, features = reads.of([atoms[i:j] for i, j in spans])
    return Candidates(full.shape[:2], shrink, height, atoms, spans, inputs, logits, features, ink)


class _Reads:
    """Runs of atoms framed as a single drawing is and read by the network, each run once: a
    piece read to judge it whole is read already as a candidate digit."""

    def __init__(self, predictor: Predictor, ink: np.ndarray) -> None:
        self.predictor = predictor
        self.ink = ink
        # the atoms' ids -> (28, 28) input, logits, features
        self._done: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def of(
        self, groups: Sequence[Sequence[segment.Atom]]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """-> (inputs, logits, features) of the groups, those not read yet in one batch."""
        keys = [tuple(id(a) for a in group) for group in groups]
        new = {k: g for k, g in zip(keys, groups, strict=True) if k not in self._done}
        if new:
            inputs = np.stack([_framed(self.ink, group) for group in new.values()])
            logits, features = self.predictor.logits_and_features(inputs)
            self._done |= zip(new, zip(inputs, logits, features, strict=True), strict=True)
        found = [self._done[k] for k in keys]
        inputs, logits, features = (np.stack(c) for c in zip(*found, strict=True))
        return inputs, logits, features


def _too_many(count: int, max_digits: int) -> str:
    return f"the drawing holds {count} pieces; a number has at most {max_digits} digits"


def working_ink(full: np.ndarray) -> tuple[np.ndarray, int]:
    """preprocess.ink_map's ink -> (the line as read, input pixels per pixel of it)."""
    shrink = _shrink_factor(full)
    return _shrunk(full, shrink), shrink


def _shrink_factor(ink: np.ndarray) -> int:
    """The whole factor that brings the written line to about WORK_HEIGHT pixels high."""
    rows = np.flatnonzero(ink.max(axis=1) > 0)
    return max(1, round((rows[-1] - rows[0] + 1) / WORK_HEIGHT))


def _shrunk(ink: np.ndarray, factor: int) -> np.ndarray:
    """Mean of each factor x factor block (the edges padded with no ink), noise floor kept."""
    if factor == 1:
        return ink
    h, w = -(-ink.shape[0] // factor) * factor, -(-ink.shape[1] // factor) * factor
    padded = np.zeros((h, w), np.float32)
    padded[: ink.shape[0], : ink.shape[1]] = ink
    small = preprocess.block_mean(padded, factor)
    small[small < preprocess.NOISE_FLOOR] = 0.0
    return small


def _spans(atoms: list[segment.Atom], height: float) -> list[tuple[int, int]]:
    """Every run atoms[i:j] that could be one digit: single atoms, runs of up to MAX_GROUP no
    wider than MAX_GROUP_WIDTH line heights, and the atoms of one piece of ink up to
    MAX_PIECE_WIDTH wide."""
    spans = []
    for i in range(len(atoms)):
        left, right = atoms[i].left, atoms[i].right
        for j in range(i + 1, min(i + MAX_GROUP, len(atoms)) + 1):
            left, right = min(left, atoms[j - 1].left), max(right, atoms[j - 1].right)
            if j > i + 1 and right - left > MAX_GROUP_WIDTH * height:
                break
            spans.append((i, j))
    for piece in sorted({a.piece for a in atoms} - {-1}):
        where = [k for k, a in enumerate(atoms) if a.piece == piece]
        i, j = where[0], where[-1] + 1
        x0, _, x1, _ = _box(atoms[i:j])
        # its atoms side by side, none of another piece's among them
        whole = len(where) == j - i <= MAX_GROUP and x1 - x0 <= MAX_PIECE_WIDTH * height
        if whole and (i, j) not in spans:
            spans.append((i, j))
    return spans


def _box(atoms: Sequence[segment.Atom]) -> tuple[int, int, int, int]:
    return (
        min(a.left for a in atoms),
        min(a.top for a in atoms),
        max(a.right for a in atoms),
        max(a.bottom for a in atoms),
    )


def _framed(ink: np.ndarray, atoms: Sequence[segment.Atom]) -> np.ndarray:
    """Atoms -> their ink alone, cropped and framed as a single drawing is -> (28, 28)."""
    return _frame_crop(_crop(ink, atoms))


def _halves(ink: np.ndarray, atoms: Sequence[segment.Atom]) -> np.ndarray:
    """Atoms read as a pair -> the ink of each half of their box, framed -> (2, 28, 28): what
    is kept as each digit's input (the network never reads it)."""
    crop = _crop(ink, atoms)
    middle = crop.shape[1] // 2
    halves = []
    for half in (crop[:, :middle], crop[:, middle:]):
        try:
            halves.append(_frame_crop(half))
        except EmptyImageError:  # next to no ink on this side: the pair's ink stands for it
            halves.append(_frame_crop(crop))
    return np.stack(halves)


def _crop(ink: np.ndarray, atoms: Sequence[segment.Atom]) -> np.ndarray:
    """Atoms -> their ink alone within their box."""
    x0, y0, x1, y1 = _box(atoms)
    crop = np.zeros((y1 - y0, x1 - x0), np.float32)
    for a in atoms:
        window = np.s_[a.top - y0 : a.bottom - y0, a.left - x0 : a.right - x0]
        crop[window] = np.maximum(crop[window], ink[a.top : a.bottom, a.left : a.right] * a.mask)
    return crop


def _frame_crop(crop: np.ndarray) -> np.ndarray:
    strong = crop > preprocess.BBOX_THRESHOLD
    if strong.any():
        rows, cols = np.flatnonzero(strong.any(axis=1)), np.flatnonzero(strong.any(axis=0))
        crop = crop[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    return preprocess.frame(crop)


def _scores(probs: np.ndarray, share: float | np.ndarray) -> np.ndarray:
    """(N, 11) probabilities (the logits' softmax) -> (N,) how well each candidate piece reads
    as one character, crediting it with ``share`` of its not-a-digit probability (a constant,
    or the probe's (N,) shares)."""
    digit = probs[:, :NUM_DIGITS].max(axis=1)
    other = probs[:, NOT_A_DIGIT] if probs.shape[1] > NUM_DIGITS else np.zeros(len(probs))
    result: np.ndarray = np.log(digit + share * other + 1e-12)
    return result


def _shape_cost(atoms: Sequence[segment.Atom], height: float) -> float:
    """What speaks against the atoms being one digit: too short for the line, the strokes cut
    to set them apart from the rest of their piece (half of each cut: the piece on its other
    side pays the other half), and clear gaps in their ink."""
    _, y0, _, y1 = _box(atoms)
    short = max(0.0, SHORT_HEIGHT - (y1 - y0) / height)
    parts = {(a.source, a.part) for a in atoms}
    cut = sum(
        (a.cut_before if (a.source, a.part - 1) not in parts else 0.0)
        + (a.cut_after if (a.source, a.part + 1) not in parts else 0.0)
        for a in atoms
        if a.source >= 0
    )
    return SHORT_COST * short + CUT_COST * cut / 2 + GAP_COST * _gaps(atoms, height)


def _gaps(atoms: Sequence[segment.Atom], height: float) -> int:
    """How many clear gaps (wider than SPACED_GAP line heights) the atoms' ink leaves between
    its columns."""
    extents = sorted((a.left, a.right) for a in atoms)
    gaps, reach = 0, extents[0][1]
    for left, right in extents[1:]:
        gaps += left - reach > SPACED_GAP * height
        reach = max(reach, right)
    return gaps


def _best_splits(
    options: list[_Option], count: int
) -> tuple[dict[int, tuple[list[int], float]], np.ndarray]:
    """For each count of digits, the options (indices) that cover atoms 0..count-1 in order
    with the highest total score, and that score; and each count's share of all splits (scores
    read as log-likelihoods): how sure a count of digits is. Splits that differ only in where a
    sliver goes agree on the count, so they do not make it less sure."""
    most = 2 * count
    best = np.full((count + 1, most + 1), -np.inf)
    best[0, 0] = 0.0
    last = np.full((count + 1, most + 1), -1)
    # every[j, c]: log of the summed likelihood of the splits of atoms[:j] into c digits.
    every = np.full((count + 1, most + 1), -np.inf)
    every[0, 0] = 0.0
    for k in sorted(range(len(options)), key=lambda k: options[k].end):
        i, j, n, score = options[k].start, options[k].end, options[k].digits, options[k].score
        every[j, n:] = np.logaddexp(every[j, n:], every[i, :-n] + SPLIT_SHARPNESS * score)
        better = best[i, :-n] + score > best[j, n:]
        best[j, n:][better] = best[i, :-n][better] + score
        last[j, n:][better] = k
    splits = {}
    for digits in np.flatnonzero(np.isfinite(best[count])).tolist():
        chosen, j, c = [], count, digits
        while j > 0:
            k = int(last[j, c])
            chosen.append(k)
            j, c = options[k].start, c - options[k].digits
        splits[digits] = (chosen[::-1], float(best[count, digits]))
    shares: np.ndarray = np.exp(every[count] - np.logaddexp.reduce(every[count]))
    return splits, shares


def read_files(reader: NumberReader, files: Sequence[Path]) -> Iterator[dict[str, Any]]:
    """`digits read --json`: one record a file, in order. A file that cannot be read is an
    ``error`` record, a blank one ``empty``; neither stops the rest."""
    for path in files:
        line: dict[str, Any] = {"file": str(path), "number": None, "confidence": None}
        try:
            line |= reader.read(path.read_bytes()).as_dict()
        except EmptyImageError:
            line |= {"status": "empty", "digits": []}
        except (InvalidInputError, OSError) as exc:
            line |= {"status": "error", "digits": [], "error": str(exc)}
        yield line

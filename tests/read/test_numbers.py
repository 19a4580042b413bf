"""Reading whole numbers (digits.read.numbers) with the shipped weights, on real pen digits composed
into numbers (digits.synth.pen_numbers). `validation` writers only: the `test` writers are the
benchmark's (benchmarks/numbers_bench.py)."""

from __future__ import annotations

import dataclasses
import itertools
import uuid
from collections import deque

import numpy as np
import pytest

from digits import memory, preprocess
from digits.config import SHIPPED_WEIGHTS
from digits.data import pen
from digits.errors import EmptyImageError, StrokesError, TooManyDigitsError
from digits.predict import Prediction, Predictor
from digits.read import numbers, segment
from digits.synth import pen_numbers

SEED = 5
BENCHMARK_SEED = 20_261_205  # benchmarks/numbers_bench.py's SEED (benchmarks is no package)


@pytest.fixture(scope="module")
def reader() -> numbers.NumberReader:
    return numbers.NumberReader(Predictor.from_checkpoint(SHIPPED_WEIGHTS))


@pytest.fixture(scope="module")
def split_reader() -> numbers.NumberReader:
    """The reader without the line model (digits.read.line): how the splits alone read."""
    reader = numbers.NumberReader(Predictor.from_checkpoint(SHIPPED_WEIGHTS))
    reader.line = None
    return reader


@pytest.fixture(scope="module")
def spaced() -> list[pen_numbers.NumberDrawing]:
    """Numbers with normal or wide gaps whose digits the model reads right one by one."""
    writers = pen_numbers.eligible_writers("validation")
    rng = np.random.default_rng(SEED)
    predictor = Predictor.from_checkpoint(SHIPPED_WEIGHTS)
    result = []
    for writer in list(writers)[:6]:
        own = writers[writer]
        for _ in range(4):
            chosen = [own[int(i)] for i in rng.choice(len(own), size=4, replace=False)]
            alone = [predictor.predict(pen.draw(s.strokes, rng)).digit == s.digit for s in chosen]
            if all(alone):
                style: pen_numbers.GapStyle = "normal" if rng.random() < 0.5 else "wide"
                result.append(pen_numbers.compose(chosen, rng, style))
    assert len(result) >= 15
    return result


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection over union of two boxes."""
    w = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / area


def test_spaced_numbers_are_read_whole_with_a_box_per_digit(
    reader: numbers.NumberReader, spaced: list[pen_numbers.NumberDrawing]
) -> None:
    readings = [reader.read(item.image) for item in spaced]
    right = [r.number == item.label for r, item in zip(readings, spaced, strict=True)]
    assert np.mean(right) >= 0.9, [
        (i.label, r.number) for i, r in zip(spaced, readings, strict=True)
    ]
    for reading, item in zip(readings, spaced, strict=True):
        for digit in reading.digits:
            assert len(digit.prediction.probabilities) == 10
            assert sum(digit.prediction.probabilities) == pytest.approx(1.0, abs=1e-5)
        if reading.number == item.label:
            for digit, truth in zip(reading.digits, item.boxes, strict=True):
                assert _overlap(digit.box, truth) > 0.7, (digit.box, truth)


def test_the_confidence_weighs_every_digit_and_the_line_models_view(
    reader: numbers.NumberReader, spaced: list[pen_numbers.NumberDrawing]
) -> None:
    for item in spaced[:5]:
        reading = reader.read(item.image)
        digits = list(reading.digits)
        if reading.status == "ok":
            assert reading.confidence >= numbers.OK_CONFIDENCE
        assert not reading.from_line
        seen = (reading.certainty, reading.agreement, reading.from_line)
        assert reader._reading(digits, *seen).confidence == reading.confidence
        doubtful = dataclasses.replace(digits[0].prediction, confidence=0.6)
        one_less_sure = [dataclasses.replace(digits[0], prediction=doubtful), *digits[1:]]
        assert reader._reading(one_less_sure, *seen).confidence < reading.confidence
        less_agreed = reader._reading(digits, reading.certainty, reading.agreement / 2)
        assert less_agreed.confidence < reading.confidence
        from_line = reader._reading(digits, reading.certainty, reading.agreement, True)
        assert from_line.confidence < reading.confidence


def test_every_canvas_encoding_reads_the_same(
    reader: numbers.NumberReader, spaced: list[pen_numbers.NumberDrawing]
) -> None:
    item = spaced[0]
    white_on_black = item.image
    dark_on_light = 255 - white_on_black
    transparent = np.zeros((*white_on_black.shape, 4), np.uint8)
    transparent[..., 3] = white_on_black  # black ink on a transparent canvas
    expected = reader.read(white_on_black)
    for image in (dark_on_light, transparent):
        reading = reader.read(image)
        assert reading.number == expected.number
        assert [d.box for d in reading.digits] == [d.box for d in expected.digits]


def test_one_digit_is_a_number_of_length_one(reader: numbers.NumberReader) -> None:
    sample = pen.load("digits", "validation")[3]
    image = pen.draw(sample.strokes, np.random.default_rng(1))
    reading = reader.read(image)
    single = reader.predictor.predict(image)
    assert reading.number == str(single.digit)
    # The line is read shrunk (numbers.WORK_HEIGHT), so the framing differs by a pixel or so.
    assert reading.digits[0].prediction.confidence == pytest.approx(single.confidence, abs=0.02)


def test_a_letter_makes_it_not_a_number(reader: numbers.NumberReader) -> None:
    items = pen_numbers.number_set("validation", 10, SEED, with_letter=True)
    statuses = [reader.read(item.image).status for item in items]
    assert statuses.count("not_a_number") >= 9


def test_blank_and_oversized_inputs(reader: numbers.NumberReader) -> None:
    with pytest.raises(EmptyImageError):
        reader.read(np.zeros((280, 600), np.uint8))
    item = pen_numbers.number_set("validation", 1, SEED)[0]
    small = numbers.NumberReader(reader.predictor, max_digits=len(item.label) - 1)
    with pytest.raises(TooManyDigitsError, match="at most"):
        small.read(item.image)


def test_strokes_are_checked_and_separate_touching_digits(
    split_reader: numbers.NumberReader,
) -> None:
    with pytest.raises(StrokesError):
        numbers.parse_strokes([[[0, 0]]] * (numbers.MAX_STROKES + 1))
    with pytest.raises(StrokesError):
        numbers.parse_strokes([[[0, 0]] * (numbers.MAX_STROKE_POINTS + 1)])
    with pytest.raises(StrokesError):
        numbers.parse_strokes([[[0, "a"]]])
    with pytest.raises(StrokesError):
        numbers.parse_strokes({"x": 1})
    touching = [
        item
        for item in pen_numbers.number_set("validation", 80, SEED)
        if item.gap_style == "touching"
    ][:12]
    strokes = [numbers.parse_strokes([s.tolist() for s in item.strokes]) for item in touching]
    with_strokes = sum(
        len(split_reader.read(item.image, strokes=s).number) == len(item.label)
        for item, s in zip(touching, strokes, strict=True)
    )
    without = sum(len(split_reader.read(item.image).number) == len(item.label) for item in touching)
    assert with_strokes >= 9 and with_strokes > without


def _flood_labels(mask: np.ndarray) -> np.ndarray:
    """Reference 8-connected labelling, pixel by pixel."""
    out = np.zeros(mask.shape, np.int32)
    count = 0
    for y, x in zip(*np.nonzero(mask), strict=True):
        if out[y, x]:
            continue
        count += 1
        out[y, x] = count
        queue = deque([(y, x)])
        while queue:
            cy, cx = queue.popleft()
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    ny, nx = cy + dy, cx + dx
                    inside = 0 <= ny < mask.shape[0] and 0 <= nx < mask.shape[1]
                    if inside and mask[ny, nx] and not out[ny, nx]:
                        out[ny, nx] = count
                        queue.append((ny, nx))
    return out


def test_connected_pieces_match_a_flood_fill() -> None:
    rng = np.random.default_rng(0)
    for density in (0.2, 0.4, 0.55):
        mask = rng.random((40, 60)) < density
        labels, count = segment.labels(mask)
        reference = _flood_labels(mask)
        assert count == reference.max()
        # The same partition: each label of one maps to exactly one label of the other.
        pairs = set(zip(labels[mask].tolist(), reference[mask].tolist(), strict=True))
        assert len(pairs) == count


def test_ink_map_agrees_with_the_single_digit_framing() -> None:
    sample = pen.load("digits", "validation")[0]
    image = pen.draw(sample.strokes, np.random.default_rng(2))
    ink = preprocess.ink_map(image)
    assert ink.shape == image.shape[:2] and ink.max() == pytest.approx(1.0)
    rows = np.flatnonzero((ink > preprocess.BBOX_THRESHOLD).any(axis=1))
    cols = np.flatnonzero((ink > preprocess.BBOX_THRESHOLD).any(axis=0))
    framed = preprocess.frame(ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1])
    assert np.allclose(framed, preprocess.to_model_input(image), atol=1e-6)


def _touching(count: int, seed: int) -> list[pen_numbers.NumberDrawing]:
    items = pen_numbers.number_set("validation", count, seed)
    return [item for item in items if item.gap_style == "touching"]


def test_touching_digits_are_read_as_pairs(split_reader: numbers.NumberReader) -> None:
    touching = _touching(400, 12)
    without = numbers.NumberReader(split_reader.predictor)
    without.line = None
    assert without.probe is not None
    without.probe = dataclasses.replace(without.probe, pair_weights=None, pair_bias=None)

    def right(r: numbers.NumberReader) -> int:
        return sum(r.read(item.image).number == item.label for item in touching)

    assert len(touching) >= 80
    assert right(split_reader) >= right(without) + 4


def _read_with_pair(
    reader: numbers.NumberReader,
) -> tuple[pen_numbers.NumberDrawing, numbers.NumberReading]:
    """A touching number read right, with a pair among its digits."""
    for item in _touching(120, 13):
        reading = reader.read(item.image)
        if _pairs(reading) and reading.number == item.label:
            return item, reading
    pytest.fail("no number read right with a pair")


def test_a_pair_is_two_digits_with_a_box_each(split_reader: numbers.NumberReader) -> None:
    _, reading = _read_with_pair(split_reader)
    digits, pairs = reading.digits, _pairs(reading)
    assert len(reading.number) == len(digits)
    for left, right in itertools.pairwise(digits):
        assert left.box[0] < right.box[0] and left.box[2] <= right.box[2]
    for left, right in pairs:
        assert left.box[2] == right.box[0] and left.box[1::2] == right.box[1::2]
        assert set(left.as_dict()) == {"digit", "confidence", "probabilities", "status", "box"}
        assert sum(left.prediction.probabilities) == pytest.approx(1.0)
        assert left.prediction.model_input.shape == (28, 28)
        assert not np.array_equal(left.prediction.model_input, right.prediction.model_input)
        for side in (left, right):  # what a session's memory compares: its own half's
            _, own = split_reader.predictor.logits_and_features(side.prediction.model_input[None])
            assert side.prediction.features is not None
            np.testing.assert_allclose(side.prediction.features, own[0], rtol=1e-4, atol=1e-5)


def test_a_pairs_digits_learn_from_the_sessions_memory(split_reader: numbers.NumberReader) -> None:
    item, reading = _read_with_pair(split_reader)
    k = reading.digits.index(_pairs(reading)[0][1])  # the right digit of the first pair
    seen = reading.digits[k].prediction
    assert seen.features is not None
    # The person labelled a drawing just like it as another digit.
    label = (seen.digit + 1) % 10
    entries = [memory.Entry(uuid.uuid4(), seen.features, label)]

    def remembered(predictions: list[Prediction]) -> list[Prediction]:
        answers = []
        for p in predictions:
            if p.features is not None:
                a = memory.adapt(
                    np.asarray(p.probabilities),
                    p.reject,
                    p.features,
                    entries,
                    status=split_reader.predictor.status,
                )
                p = dataclasses.replace(p, digit=a.digit, adapted=a.adapted)
            answers.append(p)
        return answers

    adapted = split_reader.read(item.image, adapt=remembered).digits[k]
    assert adapted.paired and adapted.prediction.adapted
    assert adapted.prediction.digit == label


def test_a_letter_the_network_half_rejects_is_not_a_digit(
    split_reader: numbers.NumberReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = pen_numbers.number_set("validation", 60, 14, with_letter=True)
    with_rule = _turned_down(split_reader, items)
    monkeypatch.setattr(numbers, "LETTER_SURE", 2.0)  # never
    assert with_rule >= _turned_down(split_reader, items) + 1


def _turned_down(reader: numbers.NumberReader, items: list[pen_numbers.NumberDrawing]) -> int:
    """How many of the numbers are read as not a number."""
    return sum(reader.read(item.image).status == "not_a_number" for item in items)


def _pairs(reading: numbers.NumberReading) -> list[tuple[numbers.DigitReading, ...]]:
    """The digits read two at a time, as pairs."""
    found, k = [], 0
    while k < len(reading.digits):
        if reading.digits[k].paired:
            found.append(reading.digits[k : k + 2])
            k += 1
        k += 1
    return found


def test_a_pair_half_without_ink_keeps_the_pairs_ink() -> None:
    ink = np.zeros((40, 80), np.float32)
    ink[5:35, 5:12] = 1.0  # a stroke at the far left; the box reaches far right by a speck
    ink[20, 70] = 0.05
    atom = segment.Atom(0, 0, ink > 0)
    halves = numbers._halves(ink, [atom])
    assert halves.shape == (2, 28, 28)
    assert halves[0].max() > 0.5 and halves[1].max() > 0.5


def test_the_second_line_model_counts_what_the_first_miscounts(
    reader: numbers.NumberReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two `validation` numbers (the 311th and 1,551st of numbers_bench's seed) that the first
    line model alone counts a digit off, "44" as "414" and "20171" as "2171": each count's
    digits weighed by both models' likelihoods count them right."""
    items = _benchmark_numbers(310, 1550)
    assert [item.label for item in items] == ["44", "20171"]
    assert all(len(reader.read(item.image).number) == len(item.label) for item in items)
    monkeypatch.setattr(reader, "second_line", None)
    assert all(len(reader.read(item.image).number) != len(item.label) for item in items)


def test_the_line_model_counts_and_reads_touching_digits(
    reader: numbers.NumberReader, split_reader: numbers.NumberReader
) -> None:
    touching = _touching(200, 21)

    def read(r: numbers.NumberReader) -> tuple[int, int]:
        readings = [r.read(item.image) for item in touching]
        return (
            sum(len(x.number) == len(i.label) for x, i in zip(readings, touching, strict=True)),
            sum(x.number == i.label for x, i in zip(readings, touching, strict=True)),
        )

    (counted, right), (split_counted, split_right) = read(reader), read(split_reader)
    assert len(touching) >= 40
    # measured on these: 51 and 48 of 51 with the line model, 44 and 42 without
    assert counted >= split_counted + 3 and right >= split_right + 4


def test_a_number_read_by_the_line_model_has_a_digit_and_a_box_each(
    reader: numbers.NumberReader,
) -> None:
    found = []
    for item in _touching(400, 22):
        reading = reader.read(item.image)
        if reading.from_line and reading.number == item.label:
            found.append((item, reading))
    assert len(found) >= 3
    own = []
    for item, reading in found:
        boxes = [d.box for d in reading.digits]
        for left, right in itertools.pairwise(boxes):
            assert left[0] < right[0] and left[2] <= right[2]
        for k, box in enumerate(boxes):
            overlaps = [_overlap(box, truth) for truth in item.boxes]
            own.append(int(np.argmax(overlaps)) == k)
        for digit in reading.digits:
            p = digit.prediction
            assert sum(p.probabilities) == pytest.approx(1.0)
            assert p.digit == int(np.argmax(p.probabilities))
            assert p.confidence == p.probabilities[p.digit]
            _, features = reader.predictor.logits_and_features(p.model_input[None])
            assert p.features is not None  # what a session's memory compares: its own part's
            np.testing.assert_allclose(p.features, features[0], rtol=1e-4, atol=1e-5)
    # a box lies over its own digit more than over any other (measured: all of 253 boxes)
    assert np.mean(own) >= 0.9


@pytest.fixture(scope="module")
def lettered() -> list[pen_numbers.NumberDrawing]:
    return pen_numbers.number_set("validation", 200, 15, with_letter=True)


def test_a_letter_the_line_model_reads_makes_it_not_a_number(
    reader: numbers.NumberReader,
    lettered: list[pen_numbers.NumberDrawing],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    items = lettered
    with_line = _turned_down(reader, items)
    monkeypatch.setattr(numbers, "LINE_LETTER", 2.0)  # never
    assert with_line >= _turned_down(reader, items) + 3


def _spaced_with(writer: str, digit: int, count: int) -> list[pen_numbers.NumberDrawing]:
    """``count`` numbers of three of a `validation` writer's digits, normal gaps, each holding
    one of the writer's ``digit``s (each in turn) among two of their other digits."""
    own = pen_numbers.eligible_writers("validation")[writer]
    wanted = [s for s in own if s.digit == digit]
    return _spaced_around(wanted, [s for s in own if s.digit != digit], count)


def _spaced_around(
    wanted: list[pen.PenSample], others: list[pen.PenSample], count: int
) -> list[pen_numbers.NumberDrawing]:
    """``count`` numbers of three digits, normal gaps, each holding one of ``wanted`` (each in
    turn) among two of ``others``."""
    rng = np.random.default_rng(3)
    items = []
    for k in range(count):
        chosen = [others[int(i)] for i in rng.integers(len(others), size=2)]
        chosen.insert(int(rng.integers(3)), wanted[k % len(wanted)])
        items.append(pen_numbers.compose(chosen, rng, "normal"))
    return items


def test_a_digit_the_line_model_misreads_still_counts_as_one(
    reader: numbers.NumberReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A `validation` writer whose 6's stem curls down into its loop: the line model reads it
    as a 0 (or a 1 and a 0), the digit network as a 6. The spaced-cut rule, weighing a
    split's cuts by its clear gaps between pieces of ink, counts most of these right on its
    own: it is left out, to weigh this rule alone."""
    items = _spaced_with("apb/70db7d3ad1", 6, 24)
    _first_line_model_only(reader, monkeypatch)
    monkeypatch.setattr(numbers, "SPACED_CUT_COST", 0.0)

    def right() -> int:
        return sum(reader.read(item.image).number == item.label for item in items)

    weighed = right()
    monkeypatch.setattr(numbers, "_count_evidence", _split_digits_evidence)
    # measured: 23 of these 24 read right, 12 by the split's digits alone (21 with the
    # spaced-cut rule)
    assert weighed >= 21 and weighed >= right() + 6


@pytest.fixture(scope="module")
def touching_200() -> list[pen_numbers.NumberDrawing]:
    """The touching numbers (60) among 200 `validation` ones."""
    return _touching(200, 7)


def _counted_without(
    reader: numbers.NumberReader,
    monkeypatch: pytest.MonkeyPatch,
    cost: str,
    spaced: list[pen_numbers.NumberDrawing],
    touching: list[pen_numbers.NumberDrawing],
) -> tuple[int, int]:
    """How many of the ``spaced`` numbers are read with as many digits as they hold, with the
    reader's ``cost`` as it is and set to 0. The ``touching`` ones must count the same either
    way: their digits leave no clear gap for the cost to weigh."""
    _first_line_model_only(reader, monkeypatch)

    def counted(items: list[pen_numbers.NumberDrawing]) -> int:
        return sum(len(reader.read(i.image).number) == len(i.label) for i in items)

    paid = counted(spaced), counted(touching)
    monkeypatch.setattr(numbers, cost, 0.0)
    free = counted(spaced), counted(touching)
    assert paid[1] == free[1]
    return paid[0], free[0]


def test_a_stroke_cut_from_a_digit_is_no_digit_where_the_others_are_spaced(
    reader: numbers.NumberReader,
    touching_200: list[pen_numbers.NumberDrawing],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A `validation` writer who begins a 0 with a stroke down its left side: both networks
    read the stroke cut off as a 1 ("10"), in numbers whose other digits stand apart."""
    spaced = _spaced_with("apb/9848af7956", 0, 30)
    paid, free = _counted_without(reader, monkeypatch, "SPACED_CUT_COST", spaced, touching_200)
    # measured: all 30 counted right, 24 without the cost; the touching ones (60 of those
    # 200) 58 either way: their cuts leave no clear gaps to weigh against
    assert paid >= 28 and paid >= free + 4


def test_digits_a_hair_apart_are_spaced_too(
    reader: numbers.NumberReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four `validation` numbers written with their digits 0 to 5 % of the height apart (of
    numbers_bench.py --role validation --style close): two hands whose 0 and 6 the line models
    read as "00" and "10" where nothing says the digits are spaced. A gap of a little over 1 %
    of the line says so; at 2 % each is counted a digit off."""
    items = _benchmark_numbers(814, 1265, 1800, 2900, style="close")
    assert [item.label for item in items] == ["81703", "372820", "530", "668"]
    assert all(len(reader.read(item.image).number) == len(item.label) for item in items)
    monkeypatch.setattr(numbers, "SPACED_GAP", 0.02)
    assert all(len(reader.read(item.image).number) == len(item.label) + 1 for item in items)


def test_a_wide_hands_digit_is_not_cut_where_the_digits_between_pieces_stand_apart(
    reader: numbers.NumberReader,
) -> None:
    """Three `validation` numbers written wide (numbers_bench.py --role validation --stretch 1.2
    1.8): the line models read a wide 6 as "10" and a wide 4's tail as a digit. A split that
    cuts one piece of ink pays for the clear gaps among its boundaries between pieces, not
    among all its boundaries (its own cuts are no sign of how the writer spaces digits). With
    the share of all boundaries each is counted a digit over."""
    items = _benchmark_numbers(232, 499, 2788, stretch=(1.2, 1.8))
    assert [item.label for item in items] == ["11658", "48", "046687"]
    assert [reader.read(item.image).number for item in items] == ["11658", "48", "046687"]


def test_no_digit_is_read_across_a_clear_gap(
    reader: numbers.NumberReader,
    touching_200: list[pen_numbers.NumberDrawing],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A `loop` writer whose 6 lies wide and low, and whose numbers the line model counts a
    digit short: it reads a digit and its neighbour as one across the gap between them."""
    own = pen_numbers.eligible_writers("loop")["apb/84e0a52f87"]
    rng = np.random.default_rng(3)
    spaced = []
    for _ in range(150):
        chosen = rng.choice(len(own), size=int(rng.integers(2, 7)), replace=False)
        spaced.append(pen_numbers.compose([own[int(i)] for i in chosen], rng, "normal"))
    paid, free = _counted_without(reader, monkeypatch, "GAP_COST", spaced, touching_200)
    # measured: all 150 counted right, 144 without the cost; touching digits leave no gap
    assert paid >= 148 and paid >= free + 4


def test_a_piece_wider_than_a_group_may_be_one_digit(
    reader: numbers.NumberReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A `loop` writer's 2 written as a long Z, wider than MAX_GROUP_WIDTH: cut into atoms, it
    could only be read as two digits, or one and a stroke joined to a neighbour."""
    own = pen_numbers.eligible_writers("loop")["apb/84e0a52f87"]
    twos = [s for s in own if s.digit == 2]
    width, height = np.array([np.ptp(np.vstack(s.strokes), axis=0) for s in twos]).T
    wide = twos[int(np.argmax(width / height))]
    items = _spaced_around([wide], [s for s in own if s is not wide], 20)

    def right() -> int:
        return sum(reader.read(item.image).number == item.label for item in items)

    whole = right()
    monkeypatch.setattr(numbers, "MAX_PIECE_WIDTH", 0.0)
    # measured: all 20 read right, 11 without
    assert whole >= 19 and whole >= right() + 5


def test_a_letter_read_as_a_digit_still_counts_as_one_character(
    reader: numbers.NumberReader,
    lettered: list[pen_numbers.NumberDrawing],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    items = lettered
    _first_line_model_only(reader, monkeypatch)

    def counted() -> int:
        readings = [reader.read(item.image) for item in items]
        return sum(len(r.number) == len(i.label) for r, i in zip(readings, items, strict=True))

    weighed = counted()
    monkeypatch.setattr(numbers, "_count_evidence", _split_digits_evidence)
    # measured on these 200: 188 counted right, 178 by the split's digits alone (174 before
    # GAP_COST: the split alone counts them better since)
    assert weighed >= counted() + 6


def _benchmark_numbers(
    *where: int,
    style: pen_numbers.GapStyle | None = None,
    stretch: tuple[float, float] | None = None,
) -> list[pen_numbers.NumberDrawing]:
    """The numbers at these places of numbers_bench.py --role validation [--style]
    [--stretch]'s set, without composing the others."""
    return [
        pen_numbers.number_set(
            "validation", 1, BENCHMARK_SEED, start=k, style=style, stretch=stretch
        )[0]
        for k in where
    ]


def _first_line_model_only(reader: numbers.NumberReader, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reader as it was when a rule was measured, before the second line model: the two
    models together count most of these hands right with or without the rule (on 6,000
    `validation` numbers each rule still counts spaced ones better: 1 wrong, not 3 to 9)."""
    monkeypatch.setattr(reader, "second_line", None)


def _split_digits_evidence(
    counts: list[int], likelihoods: list[float], said: list[int]
) -> list[float]:
    """numbers._count_evidence as it was: each count weighed by its split's digits alone."""
    return likelihoods[: len(counts)]


def test_the_line_models_letter_falls_on_the_nearest_digit(reader: numbers.NumberReader) -> None:
    item = pen_numbers.number_set("validation", 1, SEED)[0]
    digits = reader.read(item.image).digits
    predictions = [d.prediction for d in digits]
    ink = np.zeros((50, 400), np.float32)
    ink[10:40, 100:300] = 1.0
    seen = numbers.line.line_input(ink)
    columns = seen.image.shape[1] // numbers.line.STRIDE
    log_probs = np.full((columns, numbers.line.CLASSES), np.log(0.01))
    log_probs[:, numbers.line.BLANK] = np.log(0.89)
    column = next(t for t in range(columns) if seen.line_x(t + 0.5) > 250)  # 150 into the ink
    log_probs[column, numbers.line.LETTER] = np.log(0.9)
    boxes = [(110 + 60 * k, 10, 150 + 60 * k, 40) for k in range(len(predictions))]
    marked = numbers._line_letter(numbers._LineSeen(log_probs, seen), predictions, boxes)
    nearest = int(np.argmin([abs((b[0] + b[2]) / 2 - seen.line_x(column + 0.5)) for b in boxes]))
    assert [p.status == "not_a_digit" for p in marked] == [
        k == nearest for k in range(len(predictions))
    ]


def test_the_best_split_of_each_count_is_the_best_of_all_splits_of_that_count() -> None:
    rng = np.random.default_rng(3)
    atoms = 5
    options = [
        numbers._Option(i, j, k, digits, float(rng.normal()))
        for k, (i, j, digits) in enumerate(
            (i, j, d) for i in range(atoms) for j in range(i + 1, atoms + 1) for d in (1, 2)
        )
    ]
    splits, shares = numbers._best_splits(options, atoms)

    def every(start: int) -> list[list[int]]:
        if start == atoms:
            return [[]]
        return [
            [k, *rest] for k, o in enumerate(options) if o.start == start for rest in every(o.end)
        ]

    by_count: dict[int, float] = {}
    for split in every(0):
        count = sum(options[k].digits for k in split)
        score = sum(options[k].score for k in split)
        by_count[count] = max(by_count.get(count, -np.inf), score)
    assert set(splits) == set(by_count)
    for count, (chosen, score) in splits.items():
        assert score == pytest.approx(by_count[count])
        assert sum(options[k].digits for k in chosen) == count
        assert score == pytest.approx(sum(options[k].score for k in chosen))
    assert shares.sum() == pytest.approx(1.0)


def test_a_line_reading_with_an_inkless_part_falls_back_to_the_split(
    reader: numbers.NumberReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    from_line = [item for item in _touching(200, 21) if reader.read(item.image).from_line]
    assert len(from_line) >= 3
    monkeypatch.setattr(numbers.NumberReader, "_line_digits", lambda *_: None)
    fallen_back = [reader.read(item.image) for item in from_line]
    monkeypatch.setattr(numbers, "LINE_MARGIN", np.inf)  # the split, as if never outread
    for item, reading in zip(from_line, fallen_back, strict=True):
        assert not reading.from_line
        split = reader.read(item.image)
        assert reading.number == split.number
        assert [d.box for d in reading.digits] == [d.box for d in split.digits]
        assert reading.confidence == split.confidence

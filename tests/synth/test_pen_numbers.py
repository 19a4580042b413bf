"""Numbers composed of real pen digits (digits.synth.pen_numbers): the sets the benchmark, the
tuning and the tests read."""

from __future__ import annotations

import numpy as np

from digits.synth import pen_numbers


def test_a_set_is_the_same_every_time_and_its_numbers_can_be_drawn_alone() -> None:
    whole = pen_numbers.number_set("validation", 6, 3)
    again = pen_numbers.number_set("validation", 6, 3)
    tail = pen_numbers.number_set("validation", 2, 3, start=4)
    other = pen_numbers.number_set("validation", 6, 4)
    assert [n.label for n in whole] == [n.label for n in again]
    for a, b in zip(whole[4:], tail, strict=True):
        assert a.label == b.label and a.gap_style == b.gap_style
        np.testing.assert_array_equal(a.image, b.image)
    assert [n.label for n in whole] != [n.label for n in other]
    for number in whole:
        assert pen_numbers.LENGTHS[0] <= len(number.label) <= pen_numbers.LENGTHS[1]
        assert number.image.shape[0] == pen_numbers.HEIGHT
        assert number.image.shape[1] <= pen_numbers.MAX_WIDTH


def test_a_wide_hands_set_writes_the_same_digits_in_the_same_gap_styles_wider() -> None:
    drawn = pen_numbers.number_set("validation", 8, 3)
    wide = pen_numbers.number_set("validation", 8, 3, stretch=(1.2, 1.8))
    assert [(n.label, n.gap_style) for n in wide] == [(n.label, n.gap_style) for n in drawn]
    for plain, widened in zip(drawn, wide, strict=True):
        # each character's strokes (unit height) as they were, one factor wider for them all
        factors = [
            np.ptp(np.vstack(w.strokes), axis=0) / np.ptp(np.vstack(p.strokes), axis=0)
            for p, w in zip(plain.samples, widened.samples, strict=True)
        ]
        assert np.allclose([f[1] for f in factors], 1.0)
        across = [f[0] for f in factors]
        assert 1.2 <= across[0] <= 1.8 and np.allclose(across, across[0])


def test_a_set_in_one_gap_style_writes_the_same_digits_that_far_apart() -> None:
    drawn = pen_numbers.number_set("validation", 8, 3)
    close = pen_numbers.number_set("validation", 8, 3, style="close")
    assert [n.label for n in close] == [n.label for n in drawn]
    assert [[s.writer for s in n.samples] for n in close] == [
        [s.writer for s in n.samples] for n in drawn
    ]
    low, high = pen_numbers.GAPS["close"]
    for number in close:
        assert number.gap_style == "close"
        boxes = np.array(number.boxes)
        # the gap is drawn between the strokes' boxes, in fractions of their common height:
        # the ink boxes (a brush wider) stand apart by at most the widest gap the style allows
        gaps = boxes[1:, 0] - boxes[:-1, 2]
        assert (gaps <= high * pen_numbers.HEIGHT).all()
        assert (gaps >= low * pen_numbers.HEIGHT - 2).all()

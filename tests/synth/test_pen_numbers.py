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

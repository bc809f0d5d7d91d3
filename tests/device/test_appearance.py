"""Colour signatures: alike for one coat, unlike for two; none for a box too small; only a box
nobody else stands in is clean."""

import numpy as np

from device.appearance import appearance, looks_of, unlike
from device.detector import Detection


def _frame(colour: tuple[int, int, int], x1: int = 40, x2: int = 60) -> np.ndarray:
    image = np.full((100, 100, 3), 128, np.uint8)
    image[20:80, x1:x2] = colour
    return image


def test_the_same_coat_is_alike_and_another_is_not() -> None:
    box = (0.4, 0.2, 0.6, 0.8)
    red, red_again, blue = (appearance(_frame(c), box) for c in ((0, 0, 220), (10, 10, 230), (220, 60, 0)))
    assert red is not None and red_again is not None and blue is not None
    d = unlike(np.array([red]), np.array([red_again, blue]))[0]
    assert d[0] < 0.2 and d[1] > 0.8


def test_a_box_too_small_says_nothing() -> None:
    assert appearance(_frame((0, 0, 200)), (0.4, 0.2, 0.42, 0.24)) is None


def test_only_a_box_nobody_else_stands_in_is_clean() -> None:
    image = _frame((0, 0, 200))
    alone = Detection("person", 0.8, (0.05, 0.2, 0.2, 0.8))
    a = Detection("person", 0.8, (0.4, 0.2, 0.6, 0.8))
    b = Detection("person", 0.7, (0.5, 0.2, 0.7, 0.8))  # half over a
    clean = [c for _, c in looks_of([alone, a, b], image)]
    assert clean == [True, False, False]
    assert looks_of([alone], None) == [(None, False)]

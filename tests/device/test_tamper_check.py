"""One tamper check on its own: a textured scene judged against its reference, each kind made by hand.

The watch's tests (test_tamper.py) run real footage through persistence and alerts; these pin what
a single check says of a view, so a change to a threshold shows here first.
"""

import cv2
import numpy as np

from device.tamper_check import Reference, judge, measure, small_grey
from matthan_wire.config import TamperConfig

CONFIG = TamperConfig()


def scene(seed: int = 1) -> np.ndarray:
    """A 320×240 street-like view: blobs of every size, so it has coarse and fine detail."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (240, 320), np.uint8).astype(np.float32)
    grey = cv2.GaussianBlur(noise, (0, 0), 6) * 4 + cv2.GaussianBlur(noise, (0, 0), 1.2)
    grey = cv2.normalize(grey, None, 20, 235, cv2.NORM_MINMAX)
    return cv2.cvtColor(grey.astype(np.uint8), cv2.COLOR_GRAY2BGR)


def reference_of(image: np.ndarray) -> Reference:
    grey = small_grey(image)
    m = measure(grey)
    return Reference(grey.copy(), m.std, m.sharpness, m.detail)


def check(ref: Reference | None, image: np.ndarray) -> str | None:
    grey = small_grey(image)
    return judge(CONFIG, ref, grey, measure(grey)).kind


def test_the_reference_view_itself_is_fine_and_matches_in_place() -> None:
    view = scene()
    ref = reference_of(view)
    grey = small_grey(view)
    result = judge(CONFIG, ref, grey, measure(grey))
    assert result.kind is None
    assert result.scores.match > 0.9 and abs(result.scores.shift_x) < 0.02


def test_covered_and_blinded_need_no_reference() -> None:
    dark = np.full((240, 320, 3), 12, np.uint8)
    bright = np.full((240, 320, 3), 250, np.uint8)
    assert check(None, dark) == "covered"
    assert check(None, bright) == "blinded"
    assert check(None, scene()) is None


def test_a_blurred_view_is_defocused() -> None:
    view = scene()
    assert check(reference_of(view), cv2.GaussianBlur(view, (0, 0), 4)) == "defocused"


def test_a_view_shifted_by_a_tenth_is_moved() -> None:
    view = scene()
    shifted = np.roll(view, 40, axis=1)  # 40 of 320 px to the right
    assert check(reference_of(view), shifted) == "moved"


def test_another_scene_altogether_is_moved() -> None:
    assert check(reference_of(scene(1)), scene(2)) == "moved"

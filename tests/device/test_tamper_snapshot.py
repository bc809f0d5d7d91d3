"""The camera_tamper start's snapshot: the reference and the view now, side by side."""

from datetime import UTC, datetime

import cv2
import numpy as np

from device.tamper_snapshot import before_after_jpeg


def test_snapshot_shows_reference_and_current_side_by_side() -> None:
    ref = np.full((360, 480, 3), 200, np.uint8)
    cur = np.zeros((720, 960, 3), np.uint8)
    jpeg = before_after_jpeg(ref, cur, "covered", datetime(2026, 11, 24, 8, 0, tzinfo=UTC))
    assert jpeg is not None
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert img is not None
    assert img.shape == (360, 480 * 2 + 6)
    assert img[200:, :400].mean() > 180 and img[200:, 500:].mean() < 20

"""The picture of a camera_tamper start: the reference view (before) beside the view now (after)."""

from datetime import datetime

import cv2
import numpy as np

SNAPSHOT_WIDTH = 480  # each half of the before/after snapshot
JPEG_QUALITY = 85


def shrink(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    if w <= SNAPSHOT_WIDTH:
        return image.copy()
    step = max(1, w // (2 * SNAPSHOT_WIDTH))
    size = (SNAPSHOT_WIDTH, round(h * SNAPSHOT_WIDTH / w))
    return cv2.resize(image[::step, ::step], size, interpolation=cv2.INTER_AREA)


def before_after_jpeg(
    reference: np.ndarray | None, current: np.ndarray, kind: str, since: datetime
) -> bytes | None:
    """The snapshot of a camera_tamper start: the reference view (before) and the view now (after)."""
    after = shrink(current)
    before = reference if reference is not None else np.zeros_like(after)
    if before.shape != after.shape:
        before = cv2.resize(before, (after.shape[1], after.shape[0]), interpolation=cv2.INTER_AREA)
    if before.ndim == 2:
        before = cv2.cvtColor(before, cv2.COLOR_GRAY2BGR)
    if after.ndim == 2:
        after = cv2.cvtColor(after, cv2.COLOR_GRAY2BGR)
    gap = np.full((after.shape[0], 6, 3), 255, dtype=np.uint8)
    both = np.hstack([before, gap, after])
    for x, text in ((6, "reference"), (before.shape[1] + 12, f"{kind} since {since:%H:%M:%S} UTC")):
        cv2.putText(both, text, (x, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(both, text, (x, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    ok, data = cv2.imencode(".jpg", both, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    return data.tobytes() if ok else None

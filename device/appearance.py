"""What an object looks like: colour signatures of boxes, and how unlike two of them are.

Colour is what the device has (no re-identification network fits the budget, and none ships with
the model): on the annotated clips it tells a red jacket from a black coat walking beside it, but
not two dark coats, and people on the far path are 10-15 px wide (bench/RESULTS.md).
"""

import numpy as np

from device.detector import Detection
from device.geometry import Box

# A detection's signature (None: box too small) and whether it is clean (no other box over it).
Look = tuple[np.ndarray | None, bool]


def appearance(image: np.ndarray, box: Box) -> np.ndarray | None:
    """A colour signature of the object: hue/saturation/value histograms of the upper and the
    lower half of the box's middle (torso and legs: a red jacket over jeans is told from a black
    coat over dark trousers), L1-normalised. None for a box too small to say anything."""
    import cv2

    h, w = image.shape[:2]
    x1, y1, x2, y2 = box
    bw, bh = (x2 - x1) * w, (y2 - y1) * h
    xa, xb = int(round(x1 * w + 0.25 * bw)), int(round(x2 * w - 0.25 * bw))
    ya, ym, yb = int(round(y1 * h + 0.15 * bh)), int(round(y1 * h + 0.5 * bh)), int(round(y2 * h - 0.1 * bh))
    if xb - xa < 3 or ym - ya < 3 or yb - ym < 3:
        return None
    hsv = cv2.cvtColor(np.ascontiguousarray(image[ya:yb, xa:xb]), cv2.COLOR_BGR2HSV)
    parts = []
    for half in (hsv[: ym - ya], hsv[ym - ya :]):
        hist = cv2.calcHist([half], [0, 1, 2], None, [6, 3, 4], [0, 180, 0, 256, 0, 256]).ravel()
        parts.append(hist / max(float(hist.sum()), 1.0))
    return np.concatenate(parts) / 2.0


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in a (N×4) with every box in b (M×4)."""
    ix = np.maximum(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0.0)
    iy = np.maximum(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0.0)
    inter = ix * iy
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    # Divided where the union is empty too (by 1, then zeroed): cheaper than silencing the warning.
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def looks_of(dets: list[Detection], image: np.ndarray | None) -> list[Look]:
    """Each detection's signature and whether it is clean: only a box nobody else stands in
    teaches a track its colours."""
    if image is None or not dets:
        return [(None, False)] * len(dets)
    boxes = np.array([d.bbox for d in dets])
    ov = iou_matrix(boxes, boxes)
    np.fill_diagonal(ov, 0.0)
    clean = (ov.max(axis=1) < 0.1).tolist()
    return [(appearance(image, d.bbox), c) for d, c in zip(dets, clean, strict=True)]


def unlike(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1 − histogram intersection of every signature in a (N×F) with every one in b (M×F)."""
    return 1.0 - np.minimum(a[:, None, :], b[None, :, :]).sum(axis=2)  # type: ignore[no-any-return]

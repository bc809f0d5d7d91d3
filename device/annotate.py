"""The debug overlay: every track with its id, label, score and trail, every zone and line.

For `device detect --annotate`, the video a technician watches to tune a zone. The alert's
snapshot is drawn apart, with only the evidence (device/evidence_snapshot.py).
"""

from collections.abc import Iterable, Sequence

import cv2
import numpy as np

from device.geometry import Box
from device.rules import Violation
from device.tracker import Track
from matthan_wire.config import CameraConfig

GREEN = (80, 200, 80)
RED = (40, 40, 230)
YELLOW = (0, 210, 255)
GREY = (160, 160, 160)


def _px(box: Box, w: int, h: int) -> tuple[tuple[int, int], tuple[int, int]]:
    return (int(box[0] * w), int(box[1] * h)), (int(box[2] * w), int(box[3] * h))


def draw_places(image: np.ndarray, camera: CameraConfig, alarmed: set[str]) -> None:
    h, w = image.shape[:2]
    for zone in camera.zones:
        pts = np.array([[int(x * w), int(y * h)] for x, y in zone.polygon], dtype=np.int32)
        colour = RED if zone.name in alarmed else YELLOW
        cv2.polylines(image, [pts], True, colour, 2)
        cv2.putText(image, zone.name, tuple(pts[0]), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)
    for line in camera.lines:
        (x1, y1), (x2, y2) = line.points
        colour = RED if line.name in alarmed else YELLOW
        a, b = (int(x1 * w), int(y1 * h)), (int(x2 * w), int(y2 * h))
        cv2.line(image, a, b, colour, 2)
        cv2.putText(image, line.name, a, cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)


def draw_tracks(image: np.ndarray, tracks: Iterable[Track], highlight: set[int]) -> None:
    h, w = image.shape[:2]
    for t in tracks:
        if not t.confirmed:
            continue
        colour = RED if t.id in highlight else (GREEN if t.seen_now else GREY)
        p1, p2 = _px(t.box, w, h)
        cv2.rectangle(image, p1, p2, colour, 2)
        # The trail of its feet: what a line rule sees when it decides a direction.
        trail = np.array([[int(x * w), int(y * h)] for _, (x, y) in t.path], dtype=np.int32)
        if len(trail) > 1:
            cv2.polylines(image, [trail], False, colour, 1)
        text = f"#{t.id} {t.label} {t.median_score:.2f}"
        cv2.putText(
            image,
            text,
            (p1[0], p1[1] - 4 if p1[1] > 14 else p1[1] + 12),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.4,
            colour,
            1,
            cv2.LINE_AA,
        )


def draw_violations(image: np.ndarray, active: Sequence[Violation]) -> None:
    for i, v in enumerate(active):
        cv2.putText(
            image,
            f"{v.type} {v.place} n={v.object_count}",
            (8, 18 + 16 * i),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.5,
            RED,
            1,
            cv2.LINE_AA,
        )


def annotated(
    image: np.ndarray, camera: CameraConfig, tracks: Iterable[Track], active: Sequence[Violation]
) -> np.ndarray:
    out = image.copy()
    draw_places(out, camera, {v.place for v in active})
    draw_tracks(out, tracks, {tid for v in active for tid in v.track_ids})
    draw_violations(out, active)
    return out

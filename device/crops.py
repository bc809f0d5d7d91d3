"""The violating object cut from the record stream's high-resolution picture.

A camera that records another stream than it detects on (a main stream, inputs with roles) gets,
besides the alert's snapshot (the detect frame, sent within the second), a crop of the object:
once the segment holding the event's first moment is closed, ffmpeg decodes that one frame from it
(from the segment's keyframe on, hardware decoding when the recorder has it), and the box of the
alert, with a margin, is cut out of it into `{event_id}-crop.jpg` (upload kind `crop`).
"""

from __future__ import annotations

import subprocess
from datetime import datetime

import cv2
import numpy as np

from device.ffmpeg import FFMPEG
from device.segment_cache import Segment

CROP_MARGIN = 0.15  # of the box's size on each side: the object's surroundings identify it too
CROP_MIN_PX = 96
CROP_JPEG_QUALITY = 92


def crop_box(bbox: list[float], width: int, height: int) -> tuple[int, int, int, int]:
    """The pixel rectangle (x1, y1, x2, y2) to cut for a normalised box: a margin around it, at
    least CROP_MIN_PX on a side, inside the picture."""
    x1, y1, x2, y2 = bbox
    mx, my = (x2 - x1) * CROP_MARGIN, (y2 - y1) * CROP_MARGIN
    px1, px2 = int((x1 - mx) * width), int(round((x2 + mx) * width))
    py1, py2 = int((y1 - my) * height), int(round((y2 + my) * height))
    grow_x, grow_y = max(0, CROP_MIN_PX - (px2 - px1)), max(0, CROP_MIN_PX - (py2 - py1))
    px1, px2 = px1 - grow_x // 2, px2 + grow_x - grow_x // 2
    py1, py2 = py1 - grow_y // 2, py2 + grow_y - grow_y // 2
    px1, py1 = max(0, px1), max(0, py1)
    return px1, py1, min(width, max(px2, px1 + 1)), min(height, max(py2, py1 + 1))


def holding_segment(segments: list[Segment], at: datetime) -> Segment | None:
    """The segment that surely began at or before the moment, and is closed (a later one began)."""
    holding = [s for s in segments if s.complete and s.start_lo <= at <= s.end]
    return holding[-1] if holding else None


def frame_at(segment: Segment, at: datetime, hwaccel: str | None = None) -> np.ndarray | None:
    """The decoded picture of `segment` at wall time `at` (BGR), None when ffmpeg cannot give it."""
    offset = max(0.0, (at - segment.start).total_seconds())
    cmd = [FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin"]
    if hwaccel is not None:
        cmd += ["-hwaccel", hwaccel]
    # -ss after -i: decoded from the segment's first keyframe up to the exact frame.
    cmd += ["-i", str(segment.path), "-ss", f"{offset:.3f}", "-frames:v", "1", "-f", "image2pipe"]
    cmd += ["-c:v", "png", "pipe:1"]
    try:
        out = subprocess.run(cmd, capture_output=True, timeout=30, check=False)
    except subprocess.TimeoutExpired:
        return None
    if out.returncode != 0 or not out.stdout:
        # A hardware decoder that refuses this stream: once more in software.
        return frame_at(segment, at) if hwaccel is not None else None
    image = cv2.imdecode(np.frombuffer(out.stdout, np.uint8), cv2.IMREAD_COLOR)
    return image if image is not None and image.size else None


def crop_jpeg(image: np.ndarray, bbox: list[float]) -> tuple[bytes, tuple[int, int, int, int]] | None:
    """The JPEG of the box's crop (crop_box) of `image`, and the rectangle; None if encoding failed."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = crop_box(bbox, w, h)
    ok, buf = cv2.imencode(".jpg", image[y1:y2, x1:x2], [cv2.IMWRITE_JPEG_QUALITY, CROP_JPEG_QUALITY])
    return (buf.tobytes(), (x1, y1, x2, y2)) if ok else None

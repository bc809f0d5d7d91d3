"""The alert's evidence picture: what an officer needs to see, and nothing else.

The frame at the camera's full resolution with only the violating object(s) boxed and the zone or
line the rule watches drawn, above a caption band (site, local time with its zone, rule, zone) so
no pixel of the scene is hidden. Every other track, trail and score stays in the technician's
debug overlay (`device detect --annotate`, device/annotate.py).

OpenCV's putText draws ASCII only ("Bến Thành" would come out as "B?n Th?nh"), so the caption is
set with Pillow and a TrueType font: DejaVu Sans from Debian's fonts-dejavu-core (installed by
dev.sh and Dockerfile.device), or the file named by MATTHAN_FONT.
"""

import logging
import os
from collections.abc import Iterable
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from device.geometry import Box
from device.rules import Violation
from device.tracker import Track
from matthan.display import local_time, rule_words, site_line
from matthan_wire.config import CameraConfig, Site

log = logging.getLogger("matthan.device.snapshot")

RED = (40, 40, 230)  # BGR
AMBER = (0, 190, 255)
JPEG_QUALITY = 85
# The cloud refuses a snapshot over 1 MiB (4 × MAX_PAYLOAD_BYTES); a busy 4K scene gets a lower quality.
MAX_JPEG_BYTES = 900 * 1024
FONT_PATHS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",  # Debian/Ubuntu/Raspberry Pi OS: fonts-dejavu-core
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",  # Fedora, Alpine
    "/usr/share/fonts/TTF/DejaVuSans.ttf",  # Arch
)


@lru_cache(maxsize=8)
def caption_font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans at `size` px; Pillow's own font (Latin only) with a warning when none is found."""
    candidates = [os.environ["MATTHAN_FONT"]] if os.environ.get("MATTHAN_FONT") else []
    for path in [*candidates, *FONT_PATHS]:
        if Path(path).is_file():
            return ImageFont.truetype(path, size)
    log.warning(
        "no TrueType font found (install fonts-dejavu-core or set MATTHAN_FONT); "
        "Vietnamese in snapshot captions will lose its diacritics"
    )
    return ImageFont.load_default(size)


def caption_lines(
    site: Site | None,
    at: datetime,
    tz: str,
    rule_type: str,
    rule_title: str | None,
    place: str,
    place_title: str | None,
    count: int,
    camera: str,
) -> list[str]:
    where = site_line(site) or f"camera {camera}"
    return [
        where,
        f"{local_time(at, tz)}   ·   camera {camera}",
        f"{rule_words(rule_type, rule_title)}   ·   {place_title or place}   ·   {count} đối tượng (objects)",
    ]


def _place_points(camera: CameraConfig, place: str, w: int, h: int) -> tuple[np.ndarray, bool] | None:
    for zone in camera.zones:
        if zone.name == place:
            return np.array([[round(x * w), round(y * h)] for x, y in zone.polygon], np.int32), True
    for line in camera.lines:
        if line.name == place:
            return np.array([[round(x * w), round(y * h)] for x, y in line.points], np.int32), False
    return None


def _box_px(box: Box, w: int, h: int) -> tuple[tuple[int, int], tuple[int, int]]:
    x1, y1, x2, y2 = (min(1.0, max(0.0, c)) for c in box)
    return (round(x1 * w), round(y1 * h)), (round(x2 * w), round(y2 * h))


def evidence_jpeg(
    image: np.ndarray,
    camera: CameraConfig,
    tracks: Iterable[Track],
    violation: Violation,
    *,
    tz: str,
    rule_title: str | None = None,
    place_title: str | None = None,
) -> bytes:
    """The evidence JPEG for one violation (the source frame is not changed)."""
    h, w = image.shape[:2]
    scene = image.copy()
    thick = max(2, round(w / 640))
    place = _place_points(camera, violation.place, w, h)
    if place is not None:
        pts, closed = place
        cv2.polylines(scene, [pts], closed, AMBER, thick, cv2.LINE_AA)
    boxes = [t.box for t in tracks if t.id in set(violation.track_ids)]
    if not boxes and violation.bbox is not None:
        boxes = [violation.bbox]
    for box in boxes:
        p1, p2 = _box_px(box, w, h)
        cv2.rectangle(scene, p1, p2, RED, thick + 1, cv2.LINE_AA)

    size = max(14, round(w / 64))
    font = caption_font(size)
    lines = caption_lines(
        camera.site,
        violation.started_at,
        tz,
        violation.type,
        rule_title,
        violation.place,
        place_title,
        violation.object_count,
        camera.id,
    )
    pad = size // 2
    band_h = pad * 2 + len(lines) * round(size * 1.35)
    band = Image.new("RGB", (w, band_h), (24, 24, 24))
    draw = ImageDraw.Draw(band)
    y = pad
    for i, text in enumerate(lines):
        draw.text(
            (pad, y),
            _fit(draw, text, font, w - 2 * pad),
            font=font,
            fill=(255, 255, 255) if i != 2 else (255, 200, 80),
        )
        y += round(size * 1.35)
    caption = cv2.cvtColor(np.asarray(band), cv2.COLOR_RGB2BGR)
    picture = np.vstack([scene, caption])
    for quality in (JPEG_QUALITY, 70, 55, 40):
        ok, buf = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        if len(buf) <= MAX_JPEG_BYTES:
            break
    return buf.tobytes()


def _fit(
    draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int
) -> str:
    """The text, shortened with an ellipsis when a long address would run off the band."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"

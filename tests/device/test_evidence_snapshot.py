"""The evidence snapshot: only the violating objects boxed, its zone drawn, a caption in Vietnamese."""

from datetime import UTC, datetime

import cv2
import numpy as np
from PIL import ImageFont

from device.detector import Detection
from device.evidence_snapshot import AMBER, caption_font, caption_lines, evidence_jpeg
from device.rules import Violation
from device.tracker import Tracker
from matthan_wire.config import CameraConfig, Site

T0 = datetime(2026, 11, 24, 8, 30, 12, tzinfo=UTC)
SITE = Site(name="Ngã tư Bến Thành", address="Lê Lợi, phường Bến Thành, Quận 1", lat=10.7725, lon=106.698)
CAM = CameraConfig.model_validate({
    "id": "cam-1", "source": "x.mp4", "site": SITE.model_dump(),
    "zones": [{"name": "walkway", "title": "vỉa hè cửa phường",
               "polygon": [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]}],
})  # fmt: skip


def _two_tracks():  # type: ignore[no-untyped-def]
    tr = Tracker()
    dets = [Detection("person", 0.8, (0.2, 0.3, 0.3, 0.6)), Detection("dog", 0.7, (0.6, 0.3, 0.7, 0.6))]
    for i in range(3):
        tracks = tr.update(T0.replace(second=i), dets)
    return sorted(tracks, key=lambda t: t.box[0])


def _decode(jpeg: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)


def test_only_the_violating_object_is_boxed_and_the_frame_keeps_its_resolution() -> None:
    person, dog = _two_tracks()
    v = Violation("e1", "walkway.intrusion", "intrusion", "walkway", ("person",), 1, 0.8,
                  person.box, T0, None, (person.id,))  # fmt: skip
    frame = np.full((720, 1280, 3), 60, np.uint8)
    out = _decode(evidence_jpeg(frame, CAM, [person, dog], v, tz="Asia/Ho_Chi_Minh"))
    assert out.shape[1] == 1280 and out.shape[0] > 720  # full width; the caption band below the scene
    assert not (frame != 60).any()  # the source frame is untouched
    left = round(person.box[0] * 1280)
    assert out[400, left - 1 : left + 2, 2].max() > 150  # the person's left edge, red
    dog_left = round(dog.box[0] * 1280)
    assert abs(int(out[400, dog_left, 2]) - 60) < 12  # the dog is not boxed
    top = round(0.1 * 720)
    assert np.abs(out[top, 640].astype(int) - AMBER).max() < 40  # the zone's top edge


def test_the_caption_names_site_local_time_with_zone_and_rule_in_words() -> None:
    lines = caption_lines(
        SITE, T0, "Asia/Ho_Chi_Minh", "crowd", None, "walkway", "vỉa hè cửa phường", 6, "cam-1"
    )
    assert lines[0] == "Ngã tư Bến Thành, Lê Lợi, phường Bến Thành, Quận 1 (10.77250, 106.69800)"
    assert lines[1].startswith("2026-11-24 15:30:12 +07 (Asia/Ho_Chi_Minh)")
    assert "Tụ tập đông người" in lines[2] and "vỉa hè cửa phường" in lines[2] and "6 " in lines[2]


def test_vietnamese_diacritics_have_glyphs() -> None:
    font = caption_font(24)
    assert isinstance(font, ImageFont.FreeTypeFont)  # not Pillow's Latin-only bitmap fallback
    plain, marked = font.getmask("e"), font.getmask("ế")
    assert marked.size[1] > plain.size[1]  # the circumflex and acute stand above the letter
    assert bytes(font.getmask("ư")) != bytes(font.getmask("u"))

"""Snapshot benchmark: what the alert's evidence picture costs, against the debug overlay it replaced.

    .venv/bin/python -m bench.snapshot

A real frame of the reference footage (traffic_frames.mp4, 960x540), at its own size and scaled up
to 1280x720 and 1920x1080 (a camera main stream): the debug overlay (every track, trail and score,
device/annotate.py, JPEG by OpenCV) side by side with the evidence snapshot (only the violating
objects, the zone, a caption band set with Pillow in DejaVu Sans, device/evidence_snapshot.py).
Median of RUNS renderings each, JPEG quality 85, one thread of this machine.
"""

import statistics
import time
from datetime import UTC, datetime, timedelta

import cv2
import numpy as np

from device.annotate import annotated
from device.detector import Detection
from device.evidence_snapshot import evidence_jpeg
from device.rules import Violation
from device.tracker import Track, Tracker
from matthan import assets
from matthan_wire.config import CameraConfig

RUNS = 15
SIZES = [(960, 540), (1280, 720), (1920, 1080)]
T0 = datetime(2026, 11, 26, 8, 18, tzinfo=UTC)
CAMERA = CameraConfig.model_validate({
    "id": "cam-1", "source": "x.mp4",
    "site": {"name": "Ngã tư Bến Thành", "address": "Lê Lợi, phường Bến Thành, Quận 1, TP. Hồ Chí Minh",
             "lat": 10.7725, "lon": 106.698},
    "zones": [{"name": "walkway", "title": "vỉa hè cửa phường",
               "polygon": [[0.05, 0.5], [0.95, 0.5], [0.95, 0.98], [0.05, 0.98]],
               "rules": [{"type": "crowd", "min_count": 3, "labels": ["car"]}]}],
})  # fmt: skip


def frame() -> np.ndarray:
    cap = cv2.VideoCapture(str(assets.path("video/traffic_frames.mp4")))
    for _ in range(10):
        ok, image = cap.read()
    cap.release()
    if not ok:
        raise SystemExit("could not read traffic_frames.mp4")
    return image


def tracks() -> list[Track]:
    tracker = Tracker()
    dets = [Detection("car", 0.6 + 0.03 * i, (0.08 * i, 0.55, 0.08 * i + 0.07, 0.7)) for i in range(10)]
    out: list[Track] = []
    for k in range(4):
        out = tracker.update(T0 + timedelta(seconds=k), dets)
    return out


def median_ms(fn) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    times, size = [], 0
    for _ in range(RUNS):
        started = time.perf_counter()
        size = len(fn())
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), size


def main() -> None:
    base, all_tracks = frame(), tracks()
    v = Violation("e1", "walkway.crowd", "crowd", "walkway", ("car",), 3, 0.7, (0.0, 0.55, 0.23, 0.7),
                  T0, None, tuple(t.id for t in all_tracks[:3]))  # fmt: skip
    print("## snapshot: evidence picture vs debug overlay (per alert)\n")
    print("| frame | debug overlay ms | KiB | evidence ms | KiB | evidence / overlay time |")
    print("| --- | --- | --- | --- | --- | --- |")
    for w, h in SIZES:
        image = cv2.resize(base, (w, h)) if (w, h) != base.shape[1::-1] else base

        def debug(image: np.ndarray = image) -> bytes:
            out = annotated(image, CAMERA, all_tracks, [v])
            return bytes(cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, 85])[1])

        def evidence(image: np.ndarray = image) -> bytes:
            return evidence_jpeg(image, CAMERA, all_tracks, v, tz="Asia/Ho_Chi_Minh",
                                 place_title="vỉa hè cửa phường")  # fmt: skip

        d_ms, d_size = median_ms(debug)
        e_ms, e_size = median_ms(evidence)
        kib = f"{d_size / 1024:.0f} | {e_ms:.1f} | {e_size / 1024:.0f}"
        print(f"| {w}x{h} | {d_ms:.1f} | {kib} | {e_ms / d_ms:.2f} |")


if __name__ == "__main__":
    main()

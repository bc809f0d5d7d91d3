"""Vision pipeline benchmark: `python -m bench.pipeline` prints a Markdown section.

Measured side by side in one run, on the same clip, with the same warm detector:
- raw: decode + resize + invoke for every sampled frame (what the model alone costs);
- pipeline: the same frames through motion gate → detector → tracker → rules → events, with the
  gate off (the detector runs on every frame, so the difference is the pipeline's own overhead)
  and with it on;
- detector runs with and without the motion gate on each clip (and whether any event was lost);
- milliseconds per frame per stage; peak RSS of this process.
Goals (issue #3): pipeline ≥ 0.9 × raw; the gate saves ≥ 3× on a static scene, losing no event.
"""

import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from device.camera_worker import Pipeline
from device.capture import Capture
from device.detector import Detector, load_detector
from device.events import DetectedEvent
from device.frames import Frame
from matthan import assets
from matthan_wire.config import CameraConfig, DeviceIdentity, ModelConfig

DEVICE = DeviceIdentity(id="bench", ward="bench")
FPS = 5.0
ROUNDS = 3  # raw and pipeline alternate; the best round of each is kept (least disturbed)

VTEST_ZONES: dict[str, Any] = {
    "zones": [
        {"name": "walkway", "polygon": [[0, 0.2], [1, 0.2], [1, 1], [0, 1]],
         "rules": [{"type": "crowd", "labels": ["person"], "min_count": 6, "min_duration_s": 10},
                   {"type": "loitering", "labels": ["person"], "min_duration_s": 60}]},
        {"name": "curb", "polygon": [[0.8, 0], [1, 0], [1, 0.3], [0.8, 0.3]],
         "rules": [{"type": "illegal_parking", "labels": ["car", "truck"], "min_duration_s": 20}]},
    ],
    "lines": [{"name": "mid", "points": [[0.45, 0.2], [0.45, 0.6]],
               "rules": [{"type": "wrong_way", "labels": ["person"], "direction": "right"}]}],
}  # fmt: skip
OBO_ZONES: dict[str, Any] = {
    "zones": [{"name": "table", "polygon": [[0.4, 0.75], [0.75, 0.75], [0.75, 1], [0.4, 1]],
               "rules": [{"type": "loitering", "labels": ["person"], "min_duration_s": 15}]}],
    "lines": [{"name": "exit", "points": [[0.7, 0.5], [0.7, 1.0]],
               "rules": [{"type": "wrong_way", "labels": ["person"], "direction": "left"}]}],
}  # fmt: skip
LANE_ZONES: dict[str, Any] = {
    "zones": [{"name": "lane", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]],
               "rules": [{"type": "intrusion", "labels": ["car", "truck", "cell phone"]}]}],
}  # fmt: skip


def asset(name: str) -> Path:
    return assets.path(name)  # where the tests and the demo find them too (assets.default_dir)


def camera(source: Path, places: dict[str, Any], gate: bool) -> CameraConfig:
    return CameraConfig.model_validate(
        {"id": "bench", "source": str(source), "detect": {"fps": FPS}, "motion": {"enabled": gate}} | places
    )


def timed_frames(source: Path) -> Iterator[tuple[Frame, float]]:
    """The sampled frames of a file, each with the seconds its decode took."""
    it = iter(
        Capture(
            str(source), FPS, threading.Event(), paced=False, start_time=datetime(2026, 1, 1, tzinfo=UTC)
        ).frames()
    )
    while True:
        t0 = time.perf_counter()
        frame = next(it, None)
        if frame is None:
            return
        yield frame, time.perf_counter() - t0


def side_by_side(source: Path, detector: Detector, places: dict[str, Any]) -> dict[str, Any]:
    """Each sampled frame is decoded once, then goes through the raw path (resize + invoke), the
    pipeline with the gate off and the pipeline with the gate on, one right after the other: the
    three see the same machine load (other work on the two cores cannot favour one of them)."""
    seq = iter(range(1, 1 << 30))
    off = Pipeline(DEVICE, camera(source, places, False), detector, lambda e: None, lambda: next(seq))
    on = Pipeline(DEVICE, camera(source, places, True), detector, lambda e: None, lambda: next(seq))
    decode = raw = t_off = t_on = 0.0
    n = 0
    for frame, took in timed_frames(source):
        n += 1
        decode += took
        t0 = time.perf_counter()
        detector.detect(frame.image)
        t1 = time.perf_counter()
        off.process(frame)
        t2 = time.perf_counter()
        on.process(frame)
        t3 = time.perf_counter()
        raw, t_off, t_on = raw + t1 - t0, t_off + t2 - t1, t_on + t3 - t2
    return {"frames": n, "decode": decode, "raw": raw, "off": t_off, "on": t_on, "p_off": off, "p_on": on}


def pipeline(source: Path, detector: Detector, cam: CameraConfig) -> tuple[Pipeline, list[DetectedEvent]]:
    events: list[DetectedEvent] = []
    seq = iter(range(1, 1 << 30))
    p = Pipeline(DEVICE, cam, detector, events.append, lambda: next(seq))
    for frame, _ in timed_frames(source):
        p.process(frame)
    p.finish()
    return p, events


def static_clip(source: Path, out_dir: Path) -> Path:
    """A static scene from real footage: the empty first 4 s of the car lane, played 8 times."""
    first = out_dir / "lane_4s.mp4"
    out = out_dir / "static_lane.mp4"
    for cmd in (
        ["ffmpeg", "-v", "error", "-i", str(source), "-t", "4", "-an", "-c:v", "libx264",
         "-preset", "veryfast", "-y", str(first)],
        ["ffmpeg", "-v", "error", "-stream_loop", "7", "-i", str(first), "-c", "copy", "-y", str(out)],
    ):  # fmt: skip
        subprocess.run(cmd, check=True, timeout=120)
    return out


def main() -> int:
    model = ModelConfig(path=str(asset(assets.DEFAULT_MODEL)), labels=str(asset(assets.DEFAULT_LABELS)))
    detector = load_detector(model)
    video = asset("video/vtest_480x360.mp4")
    obo = asset("video/one-by-one-person-detection.mp4")
    lane = asset("video/car-detection.mp4")
    for frame, _ in zip(timed_frames(video), range(10), strict=False):
        detector.detect(frame[0].image)  # warm up

    best: dict[str, Any] | None = None
    for _ in range(ROUNDS):
        r = side_by_side(video, detector, VTEST_ZONES)
        if best is None or r["raw"] + r["off"] < best["raw"] + best["off"]:
            best = r
    assert best is not None
    n = best["frames"]
    fps_raw = n / (best["decode"] + best["raw"])
    fps_off = n / (best["decode"] + best["off"])
    fps_on = n / (best["decode"] + best["on"])

    print("## Vision pipeline (`python -m bench.pipeline`)\n")
    print(
        f"Clip `vtest_480x360.mp4` (795 frames, 10 fps) sampled at {FPS:g} fps = {n} frames; "
        f"SSD MobileNet v1 quant, LiteRT {detector.delegate}, {model.threads} threads. "
        "Each frame is decoded once and then run "
        f"through the three paths back to back; least-disturbed of {ROUNDS} rounds.\n"
    )
    print("| path | frames/s | × raw |")
    print("| --- | ---: | ---: |")
    print(f"| raw: decode + resize + invoke | {fps_raw:.1f} | 1.00 |")
    print(f"| pipeline, motion gate off (detector every frame) | {fps_off:.1f} | {fps_off / fps_raw:.2f} |")
    print(f"| pipeline, motion gate on | {fps_on:.1f} | {fps_on / fps_raw:.2f} |")
    print("\nMilliseconds per frame per stage:\n")
    print("| stage | gate off | gate on |")
    print("| --- | ---: | ---: |")
    print(f"| decode (shared) | {best['decode'] / n * 1000:.2f} | {best['decode'] / n * 1000:.2f} |")
    for stage in ("motion", "detect", "track", "rules", "events"):
        ms_off = getattr(best["p_off"].times, stage) / n * 1000
        ms_on = getattr(best["p_on"].times, stage) / n * 1000
        print(f"| {stage} | {ms_off:.2f} | {ms_on:.2f} |")

    print("\nDetector runs with and without the motion gate (events must not change):\n")
    print("| clip | frames | runs, gate off | runs, gate on | saved × | events off → on |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        clips = [("vtest (busy walkway)", video, VTEST_ZONES), ("one-by-one (indoor visits)", obo, OBO_ZONES),
                 ("car-detection (lane, cars pass)", lane, LANE_ZONES),
                 ("static lane (empty 4 s of car-detection ×8)", static_clip(lane, Path(tmp)),
                  LANE_ZONES)]  # fmt: skip
        for name, clip, places in clips:
            off, ev_off = pipeline(clip, detector, camera(clip, places, False))
            on, ev_on = pipeline(clip, detector, camera(clip, places, True))
            starts_off = sorted(e.alert.rule for e in ev_off if e.alert.phase == "start")
            starts_on = sorted(e.alert.rule for e in ev_on if e.alert.phase == "start")
            same = "same" if starts_off == starts_on else "DIFFERENT"
            print(f"| {name} | {off.frames} | {off.detector_runs} | {on.detector_runs} | "
                  f"{off.detector_runs / max(on.detector_runs, 1):.1f} | "
                  f"{len(starts_off)} → {len(starts_on)} ({same}) |")  # fmt: skip

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nPeak RSS of this process: {peak_mb:.0f} MB.\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Camera tamper benchmark: `python -m bench.tamper` prints a Markdown section.

Measured in one run, on the real clips (tampering applied by ffmpeg filters, tests/support/tamper_clips.py):
- CPU per camera per check (the detect thread's CPU time in `TamperWatch.observe`) for the frame
  sizes a detect loop hands over, for a normal view and for a moved one (which also fits the turn
  with ORB);
- the detect loop's rate on the same frames with the check off, on at its default period (1 s) and
  on at every frame (its upper bound), interleaved frame by frame so the three see the same load;
- detection delay per kind with the default config (learn 60 s, persist 60 s) and with the tests'
  shorter one (learn 8 s, persist 10 s): tampering starts at a known time, delay = raised − start;
- false alarms per hour of untampered footage: each of the four clips looped for an hour (decoded
  once, fed with advancing time, so every loop point is a jump in the scene as well), with both
  configs; the day-to-dusk ramp and the 30 s bus with both configs.
Goals (issue #17): each kind raised within the persistence time; nothing on untampered footage,
dusk or the bus; the check does not measurably lower the detect rate.
"""

import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np

from bench.pipeline import asset, timed_frames
from device.camera_worker import Pipeline
from device.detector import load_detector
from device.events import DetectedEvent
from device.frames import Frame
from device.tamper import TamperWatch
from matthan import assets
from matthan_wire.config import CameraConfig, DeviceIdentity, ModelConfig
from tests.support.tamper_clips import BENIGN, KINDS, make_clip

DEVICE = DeviceIdentity(id="bench", ward="bench")
T0 = datetime(2026, 1, 1, tzinfo=UTC)
CLIPS = [
    "vtest_480x360.mp4",
    "person-bicycle-car-detection_reencoded.mp4",
    "one-by-one-person-detection.mp4",
    "car-detection.mp4",
]
TAMPERED = CLIPS[:2]  # textured street, plain parking lot
DEFAULT: dict[str, float] = {}
SHORT = {"learn_s": 8.0, "persist_s": 10.0, "clear_s": 5.0, "adapt_s": 60.0}
CONFIGS = {"default (persist 60 s)": DEFAULT, "tests (persist 10 s)": SHORT}
HOUR_S = 3600.0
DETECT_FRAMES = 150  # 30 s at 5 fps per clip for the detect-rate comparison


def cam(
    tamper: dict[str, float] | dict[str, bool], source: str = "bench.mp4", **fields: object
) -> CameraConfig:
    return CameraConfig.model_validate({"id": "bench", "source": source, "tamper": tamper, **fields})


def streamed(clip: Path) -> Iterator[tuple[int, np.ndarray, float]]:
    cap = cv2.VideoCapture(str(clip))
    fps = cap.get(cv2.CAP_PROP_FPS)
    i = 0
    try:
        while True:
            ok, image = cap.read()
            if not ok:
                return
            yield i, image, i / fps
            i += 1
    finally:
        cap.release()


def decoded(clip: Path) -> tuple[list[np.ndarray], float]:
    cap = cv2.VideoCapture(str(clip))
    fps = cap.get(cv2.CAP_PROP_FPS)
    images: list[np.ndarray] = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        images.append(image)
    cap.release()
    return images, fps


class Fed:
    """A TamperWatch fed frames with their clip time; records when each event was raised."""

    def __init__(self, tamper: dict[str, float]) -> None:
        self.now = 0.0
        self.raised: list[tuple[float, DetectedEvent]] = []
        self.suspect = 0
        seq = iter(range(1, 1 << 40))
        self.watch = TamperWatch(
            DEVICE, cam(tamper), lambda e: self.raised.append((self.now, e)), lambda: next(seq)
        )

    def feed(self, image: np.ndarray, t: float, index: int) -> None:
        ts = T0 + timedelta(seconds=t)
        if self.watch.due(ts):
            self.now = t
            self.watch.observe(Frame(image, ts, index))
            self.suspect += self.watch.status().state in ("suspect", "tampered")

    def starts(self) -> list[tuple[float, DetectedEvent]]:
        return [(t, e) for t, e in self.raised if e.alert.phase == "start"]


def cpu_per_check(work: Path) -> list[str]:
    normal_clip = asset("video/person-bicycle-car-detection_reencoded.mp4")
    moved_clip = make_clip(
        asset("video/vtest_480x360.mp4"), work / "cpu-moved.mp4", "moved", 10.0, 40.0, fps=5
    )
    rows = ["| frame handed over | normal view: ms CPU per check (median / p95) | moved view (+ ORB turn) | "
            "CPU of one camera at 1 check/s |", "|---|---:|---:|---:|"]  # fmt: skip
    for w, h in ((480, 270), (768, 432), (1280, 720), (1920, 1080)):
        normal = _check_times(normal_clip, (w, h), SHORT)
        moved = _check_times(moved_clip, (w, h), SHORT, only_moved=True)
        med = statistics.median(normal)
        rows.append(
            f"| {w}×{h} | {med:.2f} / {_p95(normal):.2f} | "
            f"{statistics.median(moved):.2f} / {_p95(moved):.2f} | {med / 10:.3f} % of a core |"
        )
    return rows


def _check_times(
    clip: Path, size: tuple[int, int], tamper: dict[str, float], only_moved: bool = False, limit: int = 300
) -> list[float]:
    """CPU ms of each check (after learning) on the clip's frames scaled to `size`, one check per
    frame; frames are decoded and scaled one at a time, so no pile of 1080p frames is ever held."""
    fed = Fed({**tamper, "learn_s": 2.0, "persist_s": 3600.0, "check_every_s": 1.0})
    out: list[float] = []
    for i, image, _ in streamed(clip):
        if i >= limit:
            break
        scaled = cv2.resize(image, size)
        before = fed.watch.cpu_s
        fed.feed(scaled, float(i), i)  # one check per frame
        kind = fed.watch.last.kind if fed.watch.last is not None else None
        if fed.watch.status().state != "learning" and (not only_moved or kind == "moved"):
            out.append((fed.watch.cpu_s - before) * 1000.0)
    return out or [float("nan")]


def _p95(values: list[float]) -> float:
    return sorted(values)[min(len(values) - 1, int(0.95 * len(values)))]


def detect_rate() -> list[str]:
    model = ModelConfig(path=str(asset(assets.DEFAULT_MODEL)), labels=str(asset(assets.DEFAULT_LABELS)))
    rows = ["| clip | frames | frames/s (wall): off / on, every 1 s / on, every frame | CPU ms per frame: "
            "off / on 1 s / every frame | CPU on (1 s) ÷ off | the check's share of the loop's CPU (1 s) |",
            "|---|---:|---|---|---:|---:|"]  # fmt: skip
    for name in TAMPERED:
        source = asset(f"video/{name}")
        detector = load_detector(model)
        configs: dict[str, dict[str, float] | dict[str, bool]] = {
            "off": {"enabled": False},
            "on": {},
            "every": {"check_every_s": 0.2},
        }
        pipes = {
            key: Pipeline(DEVICE, cam(tamper, str(source)), detector, _drop, _counter())
            for key, tamper in configs.items()
        }
        frames: list[Frame] = []
        for frame, _ in timed_frames(source):
            frames.append(frame)
            if len(frames) >= DETECT_FRAMES:
                break
        wall = dict.fromkeys(pipes, 0.0)
        cpu = dict.fromkeys(pipes, 0.0)
        order = list(pipes)
        for i, frame in enumerate(frames):
            order = order[1:] + order[:1]  # who goes first rotates: none is favoured by a warm cache
            for key in order:
                w0, c0 = time.perf_counter(), time.process_time()
                pipes[key].process(frame)
                wall[key] += time.perf_counter() - w0
                cpu[key] += time.process_time() - c0  # with the detector's own threads
            if i == 0:  # the first frame loads caches for everyone
                wall, cpu = dict.fromkeys(pipes, 0.0), dict.fromkeys(pipes, 0.0)
        n = len(frames) - 1
        ms = {k: v / n * 1000.0 for k, v in cpu.items()}
        share = pipes["on"].tamper.cpu_s / cpu["on"] * 100.0
        rows.append(
            f"| {name} | {n} | {n / wall['off']:.1f} / {n / wall['on']:.1f} / {n / wall['every']:.1f} | "
            f"{ms['off']:.1f} / {ms['on']:.1f} / {ms['every']:.1f} | {ms['on'] / ms['off']:.3f} | "
            f"{share:.2f} % |"
        )
    return rows


def _drop(_event: DetectedEvent) -> None:
    return None


def _counter() -> Callable[[], int]:
    seq = iter(range(1, 1 << 40))
    return lambda: next(seq)


def delays(work: Path) -> tuple[list[str], list[str]]:
    rows = ["| kind | clip | config | raised after the start (s) | persist_s | kind right |",
            "|---|---|---|---:|---:|---|"]  # fmt: skip
    benign = ["| footage | clip | config | alerts | checks suspect |", "|---|---|---|---:|---:|"]
    at = 75.0
    for name in TAMPERED:
        for kind in (*KINDS, *BENIGN):
            clip = make_clip(asset(f"video/{name}"), work / f"{name}-{kind}.mp4", kind, at, at + 75.0, fps=5)
            feds = {label: Fed(config) for label, config in CONFIGS.items()}
            for i, image, t in streamed(clip):  # both configs see each frame; none is held
                for fed in feds.values():
                    fed.feed(image, t, i)
            for label, fed in feds.items():
                starts = fed.starts()
                if kind in BENIGN:
                    benign.append(
                        f"| {kind} at {at:.0f} s | {name} | {label} | {len(starts)} | {fed.suspect} |"
                    )
                    continue
                persist = fed.watch.config.persist_s
                if not starts:
                    rows.append(f"| {kind} | {name} | {label} | NOT RAISED | {persist:.0f} | – |")
                    continue
                t, event = starts[0]
                got = event.alert.tamper.kind if event.alert.tamper is not None else None
                rows.append(
                    f"| {kind} | {name} | {label} | {t - at:.1f} | {persist:.0f} | "
                    f"{'yes' if got == kind else f'NO ({got})'} |"
                )
    return rows, benign


def false_alarms(work: Path) -> list[str]:
    rows = ["| clip (looped) | hours | config | alerts | per hour | checks suspect |",
            "|---|---:|---|---:|---:|---:|"]  # fmt: skip
    total = dict.fromkeys(CONFIGS, 0)
    hours = 0.0
    for name in CLIPS:
        source = asset(f"video/{name}")
        clip = make_clip(source, work / f"{name}-plain.mp4", "none", 0.0, _duration(source), fps=5)
        images, fps = decoded(clip)
        feds = {label: Fed(config) for label, config in CONFIGS.items()}
        for i, image, t in _looped(images, fps, HOUR_S):
            for fed in feds.values():
                fed.feed(image, t, i)
        hours += HOUR_S / 3600.0
        for label, fed in feds.items():
            n = len(fed.starts())
            total[label] += n
            h = HOUR_S / 3600
            rows.append(f"| {name} | {h:.0f} | {label} | {n} | {n / h:.1f} | {fed.suspect} |")
    for label, n in total.items():
        rows.append(f"| **all four** | {hours:.0f} | {label} | {n} | **{n / hours:.2f}** | |")
    return rows


def _duration(source: Path) -> float:
    cap = cv2.VideoCapture(str(source))
    seconds = cap.get(cv2.CAP_PROP_FRAME_COUNT) / cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    return float(seconds)


def _looped(images: list[np.ndarray], fps: float, seconds: float) -> Iterator[tuple[int, np.ndarray, float]]:
    i = 0
    while i / fps < seconds:
        yield i, images[i % len(images)], i / fps
        i += 1


def main() -> int:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-tamper-") as tmp:
        work = Path(tmp)
        print("cpu per check", file=sys.stderr, flush=True)
        cpu = cpu_per_check(work)
        print("detect rate", file=sys.stderr, flush=True)
        rate = detect_rate()
        print("delays", file=sys.stderr, flush=True)
        delay, benign = delays(work)
        print("false alarms", file=sys.stderr, flush=True)
        fa = false_alarms(work)
    out = [
        "## tamper: camera covered, blinded, defocused, moved (`python -m bench.tamper`)",
        "",
        "CPU per camera per check (thread CPU of `TamperWatch.observe`: shrink to a 160 px grey frame, "
        "measures, template matches; a moved view also fits the turn with ORB on a 480 px view):",
        "",
        *cpu,
        "",
        f"Detect loop on the same {DETECT_FRAMES} sampled frames (5 fps) of each clip, real model, "
        "motion gate on, three pipelines interleaved frame by frame; wall rates move with the machine's "
        "load, the CPU per frame (process CPU around each `Pipeline.process`, the detector's threads "
        "included) much less:",
        "",
        *rate,
        "",
        "Detection delay: tampering applied by ffmpeg at 75 s (after the reference is learned), "
        "checks every 1 s:",
        "",
        *delay,
        "",
        "Dusk (gamma/brightness/contrast ramp over 30 s) and a bus-sized box standing 30 s in front, "
        "at 75 s:",
        "",
        *benign,
        "",
        "False alarms on untampered footage, each clip looped for an hour (every loop point is a jump "
        "in the scene):",
        "",
        *fa,
        "",
        f"_(tamper sections took {time.monotonic() - started:.0f} s)_",
    ]
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

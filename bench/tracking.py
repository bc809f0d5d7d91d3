"""Tracking benchmark: `python -m bench.tracking` prints a Markdown section.

The real model runs once per clip (cached, see bench/mot.py); then, on the same detections:
- the tracker before this branch (the device code at the merge base with main, unpacked by
  `git archive` into a temp directory and run in a child process), the current device tracker,
  ByteTrack (`trackers` package) and Norfair, scored against the annotated ground truth
  (tests/data/tracking) with CLEAR-MOT and identity metrics, with each tracker's cost per frame;
- rule level: events per rule on the regression clips (the zones and lines of the real-clip
  tests), device tracker + rules before and after.
Goal (issue #15): IDF1 ahead of the baseline, ID switches at most half of the old tracker's.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BASELINE_REV = "main"

# The regression clips: the zones and lines of tests/device/test_camera_worker.py (and the
# pipeline bench) on vtest and one-by-one.
WALKWAY = [[0.0, 0.2], [1.0, 0.2], [1.0, 1.0], [0.0, 1.0]]
REGRESSION: dict[str, dict[str, Any]] = {
    "vtest": {
        "zones": [
            {"name": "curb", "polygon": [[0.8, 0.0], [1.0, 0.0], [1.0, 0.3], [0.8, 0.3]],
             "rules": [{"type": "illegal_parking", "labels": ["car", "truck"], "min_duration_s": 20,
                        "min_score": 0.6}]},
            {"name": "lawn-corner", "polygon": [[0.0, 0.85], [0.15, 0.85], [0.15, 1.0], [0.0, 1.0]],
             "rules": [{"type": "intrusion", "labels": ["person"]},
                       {"type": "encroachment", "labels": ["person", "skis"], "min_duration_s": 5}]},
            {"name": "walkway", "polygon": WALKWAY,
             "rules": [{"type": "crowd", "labels": ["person"], "min_count": 6, "min_duration_s": 10},
                       {"type": "loitering", "labels": ["person"], "min_duration_s": 10},
                       {"type": "intrusion", "labels": ["person"], "cooldown_s": 0}]},
        ],
        "lines": [{"name": "mid", "points": [[0.45, 0.2], [0.45, 0.6]],
                   "rules": [{"type": "wrong_way", "labels": ["person"], "direction": "right"}]}],
    },
    "one-by-one": {
        "zones": [{"name": "table", "polygon": [[0.4, 0.75], [0.75, 0.75], [0.75, 1.0], [0.4, 1.0]],
                   "rules": [{"type": "loitering", "labels": ["person"], "min_duration_s": 15}]}],
        "lines": [{"name": "exit", "points": [[0.7, 0.5], [0.7, 1.0]], "rules": [
            {"name": "exit-rightward", "type": "wrong_way", "labels": ["person"], "direction": "left"},
            {"name": "exit-leftward", "type": "wrong_way", "labels": ["person"], "direction": "right"}]}],
    },
}  # fmt: skip


# model.classes of the run (--classes); its children read the detections it cached (--detections).
_CLASSES: list[str] | None = None


def _model() -> Any:
    from bench.pipeline import asset
    from matthan_wire.config import ModelConfig

    fields: dict[str, Any] = {
        "path": str(asset("models/ssd_mobilenet_v1_coco_quant.tflite")),
        "labels": str(asset("models/coco_labels.txt")),
        "threads": 2,
    }
    if _CLASSES is not None:  # only then: an old tree's ModelConfig has no such field
        fields["classes"] = _CLASSES
    return ModelConfig.model_validate(fields)


# The cache file of each clip's detections, when the parent has named it (--detections): an old
# tree's child then never builds this run's model config.
_DETECTIONS: Path | None = None


def _frames(clip_name: str) -> Any:
    from bench.mot import CLIPS, read_detections

    clip = CLIPS[clip_name]
    return clip, read_detections(clip, _DETECTIONS or _detections_file(clip_name))


def _detections_file(clip_name: str) -> Path:
    from bench.mot import CLIPS, detections_file
    from bench.pipeline import asset

    clip = CLIPS[clip_name]
    return detections_file(clip, asset(f"video/{clip.video}"), _model())


def _takes_image(tracker: Any) -> bool:
    import inspect

    return "image" in inspect.signature(tracker.update).parameters


def _images(clip_name: str) -> Any:
    """The clip's frames as the device samples them (decoded again: cheap next to the model)."""
    import threading

    from bench.mot import CLIPS, FPS, T0
    from bench.pipeline import asset
    from device.capture import Capture

    clip = CLIPS[clip_name]
    for f in Capture(
        str(asset(f"video/{clip.video}")), FPS, threading.Event(), paced=False, start_time=T0
    ).frames():
        yield f.image


# Device trackers (this tree's device package) ----------------------------------------------------
def jitter(dets: list[Any], seed: int, width: int, height: int) -> list[Any]:
    """The same boxes moved by Gaussian noise of half a pixel: ties and knife edges come out."""
    import numpy as np

    from device.detector import Detection

    rng = np.random.default_rng(seed)
    scale = np.array([width, height, width, height], dtype=float)
    out = []
    for d in dets:
        x1, y1, x2, y2 = (float(v) for v in np.array(d.bbox) + rng.normal(0.0, 0.5, 4) / scale)
        out.append(Detection(d.label, d.score, (x1, y1, x2, y2)))
    return out


def run_device(clip_name: str, seed: int | None = None) -> dict[str, Any]:
    """The device tracker and rules of whatever `device` package is importable: MOT output on the
    person tracks, seconds per frame, and rule events on the regression configuration; with a
    seed, on boxes jittered by half a pixel (the noise of each frame drawn from the seed)."""
    from datetime import timedelta

    from bench.mot import DEVICE_MIN_SCORE
    from device.rules import RuleEngine
    from device.tracker import Tracker
    from matthan_wire.config import CameraConfig

    clip, frames = _frames(clip_name)
    camera = CameraConfig.model_validate({"id": "bench", "source": clip.video} | REGRESSION[clip_name])
    tracker = Tracker(zones={z.name: z.polygon for z in camera.zones})
    engine = RuleEngine(camera, "UTC")
    floor = DEVICE_MIN_SCORE  # what the device detector lets through by default
    output: dict[int, list[tuple[int, list[float]]]] = {}
    events: list[tuple[str, str, float]] = []
    spent = 0.0
    images = _images(clip_name) if _takes_image(tracker) else iter(lambda: None, 0)
    for k, f in enumerate(frames):
        dets = [d for d in f.detections if d.score >= floor]
        if seed is not None:
            dets = jitter(dets, seed * 100_000 + k, clip.width, clip.height)
        image = next(images)
        t0 = time.perf_counter()
        tracks = tracker.update(f.ts, dets, image) if image is not None else tracker.update(f.ts, dets)
        spent += time.perf_counter() - t0
        output[f.frame] = [
            (t.id, list(t.box)) for t in tracks if t.seen_now and t.confirmed and t.label == "person"
        ]
        for c in engine.update(f.ts, tracks):
            events.append((c.violation.rule, c.phase, (f.ts - frames[0].ts).total_seconds()))
    end = frames[-1].ts + timedelta(seconds=1.0 / 5.0)
    events += [(c.violation.rule, c.phase, (end - frames[0].ts).total_seconds()) for c in engine.close(end)]
    return {"output": output, "ms_per_frame": 1000.0 * spent / len(frames), "events": events}


# Off-the-shelf baselines --------------------------------------------------------------------------
def run_bytetrack(clip_name: str) -> dict[str, Any]:
    import numpy as np
    import supervision as sv
    import trackers  # type: ignore[import-not-found,unused-ignore]  # optional: not in the venv

    _, frames = _frames(clip_name)
    tracker = trackers.ByteTrackTracker(
        frame_rate=5.0, track_activation_threshold=0.5, high_conf_det_threshold=0.5
    )
    output: dict[int, list[tuple[int, list[float]]]] = {}
    spent = 0.0
    for f in frames:
        people = [d for d in f.detections if d.label == "person"]
        dets = sv.Detections(
            xyxy=np.array([d.bbox for d in people], dtype=float).reshape(-1, 4),
            confidence=np.array([d.score for d in people], dtype=float),
            class_id=np.zeros(len(people), dtype=int),
        )
        t0 = time.perf_counter()
        res = tracker.update(dets)
        spent += time.perf_counter() - t0
        output[f.frame] = [
            (int(i), [float(v) for v in box])
            for box, i in zip(res.xyxy, [] if res.tracker_id is None else res.tracker_id, strict=True)
            if i >= 0
        ]
    return {"output": output, "ms_per_frame": 1000.0 * spent / len(frames)}


def run_norfair(clip_name: str) -> dict[str, Any]:
    import norfair  # type: ignore[import-not-found,import-untyped,unused-ignore]  # optional
    import numpy as np

    _, frames = _frames(clip_name)
    tracker = norfair.Tracker(distance_function="iou", distance_threshold=0.8, hit_counter_max=10,
                              initialization_delay=2)  # fmt: skip
    output: dict[int, list[tuple[int, list[float]]]] = {}
    spent = 0.0
    for f in frames:
        people = [d for d in f.detections if d.label == "person" and d.score >= 0.5]
        dets = [
            norfair.Detection(
                np.array([[d.bbox[0], d.bbox[1]], [d.bbox[2], d.bbox[3]]]), scores=np.array([d.score] * 2)
            )
            for d in people
        ]
        t0 = time.perf_counter()
        objs = tracker.update(dets)
        spent += time.perf_counter() - t0
        now = {id(d) for d in dets}
        output[f.frame] = [
            (int(o.id), [float(v) for v in o.last_detection.points.reshape(-1)])
            for o in objs
            if o.id is not None and id(o.last_detection) in now
        ]
    return {"output": output, "ms_per_frame": 1000.0 * spent / len(frames)}


# The old device code --------------------------------------------------------------------------------
def degraded_rows() -> list[str]:
    from bench.degraded import SEGMENTS, VARIANTS, make_variant, rule_changes
    from bench.pipeline import asset

    rows: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for clip, (name, seconds, places) in SEGMENTS.items():
            clean: list[tuple[str, float]] = []
            for variant in VARIANTS:
                path = make_variant(
                    asset(f"video/{name}"), Path(tmp) / f"{clip}-{len(rows)}.mp4", variant, seconds
                )
                got = [
                    (c.violation.rule, t)
                    for t, c in rule_changes(_model(), path, places)
                    if c.phase == "start"
                ]
                if variant == "clean":
                    clean = got
                found = sum(any(r == rule and abs(t - s) <= 3.0 for r, s in got) for rule, t in clean)
                new = sum(not any(r == rule and abs(t - s) <= 3.0 for r, s in clean) for rule, t in got)
                recall = found / len(clean) if clean else 1.0
                rows.append(
                    f"| {clip} 0–{seconds:g} s | {variant} | {len(got)} | {found}/{len(clean)} "
                    f"| {recall:.0%} | {new} |"
                )
    return rows


def _old_tree(rev: str, into: Path) -> Path:
    tree = into / "before"
    tree.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "device", "matthan_wire"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def _child(tree: Path | None, clip_name: str, seed: int | None = None) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "bench.tracking", "--child", clip_name]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    if tree is not None:
        cmd += ["--tree", str(tree)]
    cmd += ["--detections", str(_detections_file(clip_name))]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"child {cmd} failed:\n{proc.stderr[-3000:]}")
    out: dict[str, Any] = json.loads(proc.stdout)
    return out


def _as_output(raw: dict[str, Any]) -> Any:
    return {int(k): [(int(i), tuple(b)) for i, b in v] for k, v in raw["output"].items()}


def _events_table(before: Sequence[Any], after: Sequence[Any]) -> list[str]:
    b = Counter(r for r, phase, _ in before if phase == "start")
    a = Counter(r for r, phase, _ in after if phase == "start")
    lines = []
    for rule in sorted(set(a) | set(b)):
        tb = ", ".join(f"{t:.1f}" for r, p, t in before if r == rule and p == "start")
        ta = ", ".join(f"{t:.1f}" for r, p, t in after if r == rule and p == "start")
        lines.append(f"| {rule} | {b[rule]} | {a[rule]} | {tb} | {ta} |")
    return lines


def _spread(label: str, scores: Sequence[Any]) -> str:
    import statistics as st

    def f(xs: list[float], fmt: str) -> str:
        return f"{st.mean(xs):{fmt}} ± {st.pstdev(xs):{fmt}}"

    sw = [float(x.id_switches) for x in scores]
    return (
        f"| {label} | {f([x.mota for x in scores], '.3f')} | {f([x.idf1 for x in scores], '.3f')} "
        f"| {f(sw, '.1f')} [{min(sw):.0f}–{max(sw):.0f}] |"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.tracking")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--tree", type=Path, default=None, help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument(
        "--jitter",
        type=int,
        default=0,
        help="also score the device trackers on N half-pixel jitters of vtest",
    )
    p.add_argument("--before", default=BASELINE_REV, help="git revision of the old tracker (default main)")
    p.add_argument(
        "--no-degraded", action="store_true", help="skip the degraded-video section (the slow one)"
    )
    p.add_argument(
        "--classes", nargs="+", default=None, help="model.classes for every tracker (default: all)"
    )
    p.add_argument("--detections", type=Path, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    global _CLASSES, _DETECTIONS
    _CLASSES, _DETECTIONS = args.classes, args.detections
    if args.child:
        if args.tree is not None:  # the old device package wins over this checkout's
            sys.path.insert(0, str(args.tree))
        print(json.dumps(run_device(args.child, args.seed)))
        return 0

    from bench.mot import CLIPS, ground_truth, score

    rev = subprocess.run(
        ["git", "-C", str(ROOT), "merge-base", "HEAD", args.before],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    rows: list[str] = []
    rule_rows: list[str] = []
    jitter_rows: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        tree = _old_tree(rev, Path(tmp))
        for name, clip in CLIPS.items():
            _frames(name)  # the model runs here, once, before any child reads the cache
            truth = ground_truth(clip)
            before, after = _child(tree, name), _child(None, name)
            runs = {f"before ({rev[:7]})": before, "this branch": after}
            try:
                runs["Norfair 2.1 (IoU)"] = run_norfair(name)
            except ImportError:
                print("Norfair skipped: pip install norfair==2.1", file=sys.stderr)
            try:
                runs["ByteTrack (trackers 2.6)"] = run_bytetrack(name)
            except ImportError:
                print("ByteTrack skipped: pip install --no-deps trackers==2.6.1", file=sys.stderr)
            for label, r in runs.items():
                s = score(clip, truth, _as_output(r))
                rows.append(
                    f"| {name} | {label} | {s.mota:.3f} | {s.idf1:.3f} | {s.id_switches} "
                    f"| {s.fragmentations} | {s.ids} | {s.precision:.3f} | {s.recall:.3f} "
                    f"| {r['ms_per_frame']:.3f} |"
                )
            table = _events_table(before["events"], after["events"])
            rule_rows += [f"| {name} {line[2:]}" for line in table]
        if args.jitter:
            clip = CLIPS["vtest"]
            truth = ground_truth(clip)
            for label, t in ((f"before ({rev[:7]})", tree), ("this branch", None)):
                seeds = [score(clip, truth, _as_output(_child(t, "vtest", k))) for k in range(args.jitter)]
                jitter_rows.append(_spread(label, seeds))
    print("## Tracking: one identity per person (issue #15)\n")
    print(
        f"Cached detections of the real model (SSD MobileNet v1, 5 fps, up to "
        f"{_model().max_detections or 'the model’s own 10'} boxes a frame, "
        f"{'classes ' + ', '.join(_CLASSES) if _CLASSES else 'every class'}), the same for every "
        "tracker; scored with `motmetrics` on the annotated "
        "frames of `tests/data/tracking` (2.5 fps, IoU ≥ 0.5), person tracks only. ids: distinct "
        "tracker ids matched to people. ms/frame: the tracker's update alone.\n"
    )
    print(
        "| clip | tracker | MOTA | IDF1 | ID switches | fragmentations | ids | precision | recall "
        "| ms/frame |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print("\n".join(rows))
    print("\nRule level: events started per rule on the regression clips, device tracker + rules before and "
          "after (start times in seconds from the clip's start).\n")  # fmt: skip
    print("| clip | rule | before | after | starts before | starts after |")
    print("| --- | --- | ---: | ---: | --- | --- |")
    print("\n".join(rule_rows))
    if jitter_rows:
        print(
            f"\nThe same on vtest with every box moved by Gaussian noise of half a pixel ({args.jitter} "
            "seeds): how far the figures above hang on ties. mean ± standard deviation [least–most].\n"
        )
        print("| tracker | MOTA | IDF1 | ID switches |")
        print("| --- | ---: | ---: | ---: |")
        print("\n".join(jitter_rows))
    if not args.no_degraded:
        print(
            "\nDegraded video (bench/degraded.py; the model runs on each variant): events on short "
            "segments of the regression clips, this branch. found: the clean segment's events also "
            "raised (same rule, start within 3 s); new: events the clean segment did not raise "
            "(false alarms or flaps).\n"
        )
        print("| segment | variant | events | found | recall | new |")
        print("| --- | --- | ---: | ---: | ---: | ---: |")
        print("\n".join(degraded_rows()))
    print(f"\n_run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC_")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

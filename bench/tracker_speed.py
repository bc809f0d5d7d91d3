"""The tracker's CPU per frame, before and after, side by side: `python -m bench.tracker_speed`.

Both device trackers run in this one process on the same cached detections and frames (the model
runs once, bench/mot.py): this checkout's, and the one at the merge base with a revision (default
main), unpacked by `git archive` and imported under its own module objects. They run in turn,
round after round, so a load spike on the shared machine hits both alike; the ratio of their best
rounds is the figure. Every frame's live tracks (id, label, box, confirmed, seen now, zones) must
be the same in both, and their velocities equal within 1e-9: the run fails otherwise. Issue #18.
"""

import argparse
import importlib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

Frame = tuple[Any, list[Any], Any]  # timestamp, detections, image (or None)


def _tracker_class(tree: Path | None) -> Callable[..., Any]:
    """The Tracker class of `tree` (None: this checkout), its device modules kept apart from the
    ones already imported, so both trackers live side by side in one process."""
    mine = {k: sys.modules.pop(k) for k in list(sys.modules) if k == "device" or k.startswith("device.")}
    if tree is not None:
        sys.path.insert(0, str(tree))
    try:
        cls: Callable[..., Any] = importlib.import_module("device.tracker").Tracker
    finally:
        if tree is not None:
            sys.path.remove(str(tree))
        for k in [k for k in sys.modules if k == "device" or k.startswith("device.")]:
            del sys.modules[k]
        sys.modules.update(mine)
    return cls


def _frames(clip_name: str, with_images: bool) -> list[Frame]:
    from bench.mot import DEVICE_MIN_SCORE
    from bench.tracking import _frames as cached
    from bench.tracking import _images

    _, frames = cached(clip_name)
    images = _images(clip_name) if with_images else iter(lambda: None, 0)
    return [(f.ts, [d for d in f.detections if d.score >= DEVICE_MIN_SCORE], next(images)) for f in frames]


def _zones(clip_name: str) -> dict[str, Any]:
    """The zones of the real-clip regression tests (bench/tracking.py): the tracker tests them."""
    from bench.tracking import REGRESSION

    return {z["name"]: [tuple(p) for p in z["polygon"]] for z in REGRESSION[clip_name]["zones"]}


def _run(
    cls: Callable[..., Any], frames: list[Frame], zones: dict[str, Any]
) -> tuple[float, list[list[tuple[Any, ...]]]]:
    """CPU seconds spent in update over the clip, and every frame's live tracks."""
    tracker = cls(zones=zones)
    spent = 0.0
    out = []
    for ts, dets, image in frames:
        t0 = time.thread_time()  # CPU, not wall time: another process's turn on the core is not ours
        tracks = tracker.update(ts, dets, image)
        spent += time.thread_time() - t0
        out.append(
            [
                (t.id, t.label, tuple(t.box), t.confirmed, t.seen_now, sorted(t.zones), *t.velocity)
                for t in tracks
            ]
        )
    return spent, out


def _same(a: list[list[tuple[Any, ...]]], b: list[list[tuple[Any, ...]]]) -> str | None:
    """Where two runs part (None: nowhere); velocities may differ in the last bits."""
    for k, (fa, fb) in enumerate(zip(a, b, strict=True)):
        if [t[:6] for t in fa] != [t[:6] for t in fb]:
            return f"frame {k}: tracks {[t[:3] for t in fa]} != {[t[:3] for t in fb]}"
        for ta, tb in zip(fa, fb, strict=True):
            if abs(ta[6] - tb[6]) > 1e-9 or abs(ta[7] - tb[7]) > 1e-9:
                return f"frame {k}: track {ta[0]} velocity {ta[6:]} != {tb[6:]}"
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.tracker_speed")
    p.add_argument("--before", default="main", help="old tracker: merge base with this revision")
    p.add_argument("--rounds", type=int, default=7, help="runs of each tracker per clip, in turn")
    p.add_argument("--clips", nargs="+", default=["vtest", "one-by-one"])
    args = p.parse_args(argv)
    rev = subprocess.run(
        ["git", "-C", str(ROOT), "merge-base", "HEAD", args.before],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()[:7]
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", rev, "device"], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        trackers = {f"before ({rev})": _tracker_class(Path(tmp)), "this branch": _tracker_class(None)}
        print("| clip | frames | images | tracker | CPU ms/frame best | median | before / this (best) |")
        print("| --- | ---: | --- | --- | ---: | ---: | ---: |")
        for clip in args.clips:
            for with_images in (True, False):
                frames = _frames(clip, with_images)
                times: dict[str, list[float]] = {name: [] for name in trackers}
                outputs: dict[str, list[list[tuple[Any, ...]]]] = {}
                for _ in range(args.rounds):
                    for name, cls in trackers.items():
                        spent, outputs[name] = _run(cls, frames, _zones(clip))
                        times[name].append(1000.0 * spent / len(frames))
                before, after = outputs.values()
                if (where := _same(before, after)) is not None:
                    raise SystemExit(f"{clip}: the trackers' outputs differ at {where}")
                best = {name: min(ts) for name, ts in times.items()}
                ratio = best[f"before ({rev})"] / best["this branch"]
                for name, ts in times.items():
                    print(
                        f"| {clip} | {len(frames)} | {'yes' if with_images else 'no'} | {name} "
                        f"| {best[name]:.3f} | {statistics.median(ts):.3f} "
                        f"| {f'{ratio:.2f}×' if name == 'this branch' else ''} |"
                    )
    print(
        "\nOutputs identical on every frame (ids, labels, boxes, confirmed, seen now, zones;"
        " velocities ±1e-9)."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Device capacity: `python -m bench.capacity` prints a Markdown section.

N cameras in one process (a fresh one for each N), as the agent runs them, for real time: each
detects on a looped low-resolution clip played at its own rate (paced, 10 fps, detect at 5 fps,
motion gate on) and records a looped 1080p H.264 clip of the same footage by stream copy (ffmpeg,
2 s segments).
For each N: the slowest camera's detect rate, the frames dropped (a frame replaced before the
detector took it), CPU of the process and its ffmpeg children against the machine's cores, RSS
of the process and per added camera, memory of the ffmpeg recorders (USS), threads, and the
detector runs per second of all cameras against the detector's interpreters invoking alone in
the same run (both layouts: one interpreter with every thread, one single-threaded interpreter
per thread; the best of them is the reference).

Two scenes: busy (vtest, a walkway with 3–9 people: the detector runs on most frames) and mostly
static (the empty first 4 s of car-detection, looped: the motion gate skips most frames).
Ways to hold the model: a pool of interpreters shared by every camera behind a queue (`shared`,
what the agent does: one single-threaded interpreter per model thread), the same queue in front
of one interpreter with every thread (`shared-one`, before the pool), and
one interpreter per camera (`own`); each with the default model cut to the street classes, as the
agent loads it, and `shared-all`: the agent's pool with the model's every class (before the cut).

The capacity of a scene and a way is the largest N at which every camera holds its detect rate
(≥ 95 % of it) with no frame dropped. Goals (issue #18, 2 cores): ≥ 16 cameras busy at ≤ 70 % CPU,
≥ 32 static, ≤ 12 MB RSS per added camera, detect throughput at saturation ≥ 0.85 × invoke alone.

Options: --seconds (measured window per N, default 20), --scenes, --modes, --busy-n, --static-n,
--past-saturation (throughput beyond the capacity), --compare TREE (every run also with the code
of another checkout, e.g. `--compare ../main-before`: before and after side by side, in turn, under
the same load).
"""

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import psutil  # type: ignore[import-untyped]

from bench.capacity_table import KINDS, STAGES, Row, report
from bench.pipeline import asset
from device.camera_worker import CameraWorker
from device.capture import Capture
from device.recording import Recording
from device.shared_detector import SharedDetector

try:
    from device import switch_interval
except ImportError:  # a tree from before it (--compare): the interpreter's default
    switch_interval = None  # type: ignore[assignment]
from matthan import assets
from matthan_wire.config import CameraConfig, DeviceIdentity, ModelConfig, StorageConfig

DEVICE = DeviceIdentity(id="bench", ward="bench")
DETECT_FPS = 5.0
WARMUP_S = 6.0
OLD_MODES = ("shared", "own")  # what the code before the pool knows (--compare)
# The agent's pool with the model's every class: as the default model ran before it was cut to the
# street classes (model.classes) — the other modes run the default model as the agent loads it.
WHOLE = "shared-all"
HOLD = 0.95  # a camera holds its rate at ≥ 95 % of it
WALKWAY = [[0.0, 0.2], [1.0, 0.2], [1.0, 1.0], [0.0, 1.0]]
PLACES: dict[str, Any] = {
    "zones": [{"name": "walkway", "polygon": WALKWAY,
               "rules": [{"type": "crowd", "labels": ["person"], "min_count": 6, "min_duration_s": 10},
                         {"type": "intrusion", "labels": ["car", "truck"], "min_duration_s": 2}]}],
}  # fmt: skip


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True, timeout=300)


def make_streams(tmp: Path) -> dict[str, tuple[Path, Path]]:
    """scene → (detect clip, 1080p record clip), both 10 fps, made from the real footage."""
    vtest, lane = asset("video/vtest_480x360.mp4"), asset("video/car-detection.mp4")
    out: dict[str, tuple[Path, Path]] = {}
    busy_d, busy_r = tmp / "busy-360p.mp4", tmp / "busy-1080p.mp4"
    ffmpeg("-i", str(vtest), "-t", "20", "-an", "-c", "copy", str(busy_d))
    ffmpeg("-i", str(busy_d), "-vf", "scale=1920:1080", "-c:v", "libx264", "-preset", "ultrafast",
           "-g", "20", "-pix_fmt", "yuv420p", str(busy_r))  # fmt: skip
    out["busy"] = (busy_d, busy_r)
    empty = tmp / "lane-4s.mp4"
    ffmpeg("-i", str(lane), "-t", "4", "-an", "-vf", "fps=10", "-c:v", "libx264", "-preset", "veryfast",
           "-g", "20", str(empty))  # fmt: skip
    looped = tmp / "lane-20s.mp4"
    ffmpeg("-stream_loop", "4", "-i", str(empty), "-c", "copy", str(looped))
    static_d, static_r = tmp / "static-360p.mp4", tmp / "static-1080p.mp4"
    ffmpeg("-i", str(looped), "-vf", "scale=640:360", "-c:v", "libx264", "-preset", "veryfast",
           "-g", "20", str(static_d))  # fmt: skip
    ffmpeg("-i", str(looped), "-vf", "scale=1920:1080", "-c:v", "libx264", "-preset", "ultrafast",
           "-g", "20", "-pix_fmt", "yuv420p", str(static_r))  # fmt: skip
    out["static"] = (static_d, static_r)
    return out


def tree() -> list[psutil.Process]:
    me = psutil.Process()
    return [me, *me.children(recursive=True)]


def cpu_s(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            continue
    return total


def rss_mb() -> tuple[float, float]:
    """(RSS of this process, USS of its ffmpeg children) in MB: the children share their libraries,
    so only what each holds alone is added up."""
    me, *children = tree()
    kids = 0
    for p in children:
        try:
            kids += p.memory_full_info().uss
        except psutil.Error:
            continue
    return me.memory_info().rss / 2**20, kids / 2**20


def invoke_slice(pool: SharedDetector, tensor: np.ndarray, seconds: float) -> tuple[int, float, float]:
    """Every interpreter of the pool invoking back to back for `seconds`: (invokes, wall s, CPU s)."""
    counts = [0] * len(pool.detectors)
    stop = threading.Event()

    def loop(i: int) -> None:
        while not stop.is_set():
            pool.detectors[i].invoke(tensor)
            counts[i] += 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(len(pool.detectors))]
    c0, t0 = cpu_s([psutil.Process()]), time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    return sum(counts), time.perf_counter() - t0, cpu_s([psutil.Process()]) - c0


def invoke_alone(
    model: ModelConfig, image: np.ndarray, layouts: list[int], seconds: float = 6.0, slices: int = 12
) -> dict[int, tuple[float, float]]:
    """The shared detector's interpreters alone, back to back on a real frame, `model.threads` split
    between k interpreters for each k in `layouts` (1: one interpreter, all threads): invokes per
    second and CPU ms per invoke (of the whole process: XNNPACK's own threads too). The layouts
    take turns in short slices, so a machine whose load drifts favours none of them."""
    pools = {k: SharedDetector(model, interpreters=k) for k in layouts}
    tensor = pools[layouts[0]].detector.preprocess(image)
    for pool in pools.values():
        for detector in pool.detectors:
            for _ in range(5):
                detector.invoke(tensor)
    done = dict.fromkeys(layouts, 0)
    span = dict.fromkeys(layouts, 0.0)
    cpu = dict.fromkeys(layouts, 0.0)
    for _ in range(slices):
        for k, pool in pools.items():
            n, t, c = invoke_slice(pool, tensor, seconds / slices)
            done[k], span[k], cpu[k] = done[k] + n, span[k] + t, cpu[k] + c
    return {k: (done[k] / span[k], cpu[k] * 1000 / max(1, done[k])) for k in layouts}


def thread_kind(name: str | None) -> str:
    """decode: capture threads (read + convert); camera: detect threads (motion gate, resize,
    hand-off, tracking, rules); detector: the shared interpreters' threads; native: threads
    Python did not start (XNNPACK's and OpenCV's pools, FFmpeg's decoder threads)."""
    if name is None:
        return "native"
    if name.startswith("capture-"):
        return "decode"
    if name.startswith("detect-"):
        return "camera"
    return "detector" if name.startswith("detector") else "other"


def stage_cpu(workers: list[CameraWorker]) -> dict[str, float]:
    """CPU seconds of the detect threads by stage, summed over the cameras (part of `camera`)."""
    out = dict.fromkeys(STAGES, 0.0)
    for w in workers:
        p = w.pipeline
        if p is None:
            continue
        for stage in STAGES[:-1]:
            out[stage] += getattr(p.cpu, stage)
        out["tamper"] += p.tamper.cpu_s
    return out


def cpu_by_kind() -> dict[str, float]:
    names = {t.native_id: t.name for t in threading.enumerate()}
    out = dict.fromkeys(KINDS, 0.0)
    for t in psutil.Process().threads():
        out[thread_kind(names.get(t.id))] += t.user_time + t.system_time
    out["ffmpeg"] = cpu_s(tree()[1:])
    return out


def run(
    n: int, scene: str, mode: str, clips: tuple[Path, Path], model: ModelConfig, seconds: float, tmp: Path
) -> Row:
    detect_clip, record_clip = clips
    storage = StorageConfig(path=str(tmp / f"data-{scene}-{mode}-{n}"), cache_path=str(tmp / f"cache-{n}"))
    cams = [
        CameraConfig.model_validate(
            {
                "id": f"cam-{i}",
                "loop": True,
                "detect": {"fps": DETECT_FPS},
                "inputs": [
                    {"source": str(detect_clip), "roles": ["detect"]},
                    {"source": str(record_clip), "roles": ["record"]},
                ],
                "record": {"segment_s": 2, "pre_capture_s": 2},
            }
            | PLACES
        )  # fmt: skip
        for i in range(n)
    ]
    # shared: the agent's pool (one single-threaded interpreter per model thread); shared-one: one
    # interpreter with every thread, as before the pool.
    layout = {"shared": None, "shared-one": 1, WHOLE: None}
    shared = SharedDetector(model, interpreters=layout[mode]) if mode in layout else None
    if shared is not None:
        shared.start()
    recording = Recording(storage, paced=True)
    recording.apply(cams)
    seq = iter(range(1, 1 << 40))
    lock = threading.Lock()

    def next_seq() -> int:
        with lock:
            return next(seq)

    workers = [
        CameraWorker(DEVICE, c, model, lambda e: None, next_seq, paced=True, shared=shared) for c in cams
    ]
    try:
        for w in workers:
            w.start()
            time.sleep(random.uniform(0.0, 1.0 / DETECT_FPS))  # cameras are not in step with each other
        time.sleep(WARMUP_S)
        procs = tree()
        before = [
            (w.stats().frames_processed, w.stats().frames_dropped, w.stats().detector_runs) for w in workers
        ]
        c0, w0, k0 = cpu_s(procs), time.monotonic(), cpu_by_kind() | stage_cpu(workers)
        psutil.cpu_percent()
        time.sleep(seconds)
        after = [
            (w.stats().frames_processed, w.stats().frames_dropped, w.stats().detector_runs) for w in workers
        ]
        c1, w1, k1 = cpu_s(procs), time.monotonic(), cpu_by_kind() | stage_cpu(workers)
        machine = psutil.cpu_percent()
        span = w1 - w0
        rss, kids = rss_mb()
        threads = psutil.Process().num_threads()
    finally:
        for w in workers:
            w.stop()
        recording.stop()
        if shared is not None:
            shared.stop()
        shutil.rmtree(storage.path, ignore_errors=True)
        shutil.rmtree(str(storage.cache_path), ignore_errors=True)
    fps = [(a[0] - b[0]) / span for a, b in zip(after, before, strict=True)]
    dropped = sum(a[1] - b[1] for a, b in zip(after, before, strict=True))
    runs = sum(a[2] - b[2] for a, b in zip(after, before, strict=True)) / span
    cpu = (c1 - c0) / span / (os.cpu_count() or 1) * 100
    frames = max(1, sum(a[0] - b[0] for a, b in zip(after, before, strict=True)))
    per_frame = {k: (k1[k] - k0[k]) * 1000 / frames for k in k0}
    return Row(scene, mode, n, min(fps), dropped, cpu, machine, rss, kids, threads, runs,
               min(fps) >= HOLD * DETECT_FPS and dropped == 0, per_frame_ms=per_frame)  # fmt: skip


def child(
    scene: str, mode: str, n: int, clips: tuple[Path, Path], seconds: float, tree_: Path | None = None
) -> Row | None:
    """One run in its own process (with the code of `tree_` if given); None if it crashed."""
    cmd = [sys.executable, "-X", "faulthandler", "-m", "bench.capacity", "--seconds", str(seconds),
           "--one", scene, mode, str(n), str(clips[0]), str(clips[1])]  # fmt: skip
    env = os.environ | ({"PYTHONPATH": str(tree_)} if tree_ is not None else {})
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 600, env=env, cwd=tree_)
    code = tree_.name if tree_ is not None else "this"
    if proc.returncode != 0:
        print(
            f"{code} {scene} {mode} n={n} FAILED exit={proc.returncode}\n{proc.stderr[-3000:]}",
            file=sys.stderr,
        )
        return None
    return Row(**json.loads(proc.stdout.strip().splitlines()[-1]) | {"code": code})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.capacity")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--scenes", nargs="+", default=["busy", "static"])
    parser.add_argument("--modes", nargs="+", default=["shared", "shared-one", "own"])
    parser.add_argument("--busy-n", type=int, nargs="+", default=[8, 12, 16, 20, 24])
    parser.add_argument("--static-n", type=int, nargs="+", default=[16, 24, 32, 40, 48])
    parser.add_argument("--past-saturation", action="store_true", help="run every N, also after one fails")
    parser.add_argument(
        "--compare", type=Path, metavar="TREE", help="also run every N with another checkout's code (before)"
    )
    parser.add_argument(
        "--one", nargs=5, metavar=("SCENE", "MODE", "N", "DETECT", "RECORD"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    cut = ModelConfig(
        path=str(asset(assets.DEFAULT_MODEL)),
        labels=str(asset(assets.DEFAULT_LABELS)),
        classes=list(assets.STREET_CLASSES),
    )
    models = {"street classes": cut, "every class": cut.model_copy(update={"classes": None})}
    if args.one:
        # A child: one (scene, way, N) in a fresh process, so no run inherits another's heap.
        scene, mode, n, detect, record = args.one
        model = models["every class" if mode == WHOLE else "street classes"]
        if switch_interval is not None:
            switch_interval.favour_latency()  # as the agent runs its cameras
        with tempfile.TemporaryDirectory() as work:
            one = run(int(n), scene, mode, (Path(detect), Path(record)), model, args.seconds, Path(work))
        print(json.dumps(asdict(one)))
        return 0
    trees: list[Path | None] = [None] if args.compare is None else [args.compare.resolve(), None]
    layouts = sorted({1, cut.threads})  # one interpreter with every thread; one per thread
    if WHOLE not in args.modes:
        del models["every class"]
    load0 = os.getloadavg()[0]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp_:
        streams = make_streams(Path(tmp_))
        frame = next(
            iter(Capture(str(streams["busy"][0]), DETECT_FPS, threading.Event(), paced=False).frames())
        )
        alone = {
            m: {k: [v] for k, v in invoke_alone(c, frame.image, layouts).items()} for m, c in models.items()
        }
        for scene in args.scenes:
            # The ways (and the two codes) alternate at each N: a machine whose load drifts cannot
            # favour one.
            saturated: set[tuple[str, str]] = set()
            for n in args.busy_n if scene == "busy" else args.static_n:
                for mode in args.modes:
                    for tree_ in trees:
                        code = tree_.name if tree_ is not None else "this"
                        if (code, mode) in saturated or (tree_ is not None and mode not in OLD_MODES):
                            continue
                        row = child(scene, mode, n, streams[scene], args.seconds, tree_)
                        if row is None:
                            saturated.add((code, mode))
                            continue
                        rows.append(row)
                        print(
                            f"{code} {scene} {mode} n={n} min_fps={row.min_fps:.2f} dropped={row.dropped} "
                            f"cpu={row.cpu_pct:.0f}% machine={row.machine_pct:.0f}% rss={row.rss_mb:.0f}MB "
                            f"ffmpeg={row.ffmpeg_mb:.0f}MB "
                            f"threads={row.threads} runs/s={row.runs_per_s:.1f}",
                            file=sys.stderr, flush=True,
                        )  # fmt: skip
                        if not row.held and not args.past_saturation:
                            saturated.add((code, mode))  # larger N only fail slower
        for m, c in models.items():
            for k, v in invoke_alone(c, frame.image, layouts).items():
                alone[m][k].append(v)
    load1 = os.getloadavg()[0]
    of_mode = {mode: "every class" if mode == WHOLE else "street classes" for mode in args.modes}
    report(args, cut.threads, rows, alone, of_mode, (load0, load1), args.compare is not None,
           (DETECT_FPS, WARMUP_S))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

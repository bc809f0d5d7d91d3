"""Tracking ground truth and scoring: cached model detections, MOTChallenge CSV, CLEAR-MOT.

The model runs once per clip (at the device's 5 fps, down to a low score so the two-stage
trackers can use the weak boxes); the detections are cached as JSON in the temp directory and
every tracker is scored on the same ones. Ground truth lives in `tests/data/tracking/*.gt.csv`
(MOTChallenge style: `frame,id,x,y,w,h,1,-1,-1,-1`, pixels, frame numbers of the source file
counted from 1) and is scored with `motmetrics` (MOTA, IDF1, ID switches, fragmentations).
"""

import csv
import hashlib
import json
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

from device.capture import Capture
from device.detector import Detection, load_detector
from matthan_wire.config import DetectConfig, ModelConfig

ROOT = Path(__file__).resolve().parent.parent
GROUND_TRUTH = ROOT / "tests" / "data" / "tracking"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
FPS = 5.0  # what the device feeds the detector (CameraConfig.detect.fps default)
CACHE_MIN_SCORE = 0.3  # kept in the cache; the device's own floor (0.5) is applied per tracker
DEVICE_MIN_SCORE = 0.5


@dataclass(frozen=True)
class Clip:
    name: str  # the ground-truth file stem
    video: str  # under $MATTHAN_ASSETS_DIR/video
    native_fps: float
    width: int
    height: int
    # Only people whose feet are at least this far down (pixels) are annotated and scored: on vtest
    # the far road by the van and the top-left path hold 20-35 px figures nobody can label reliably.
    min_feet_y: float = 0.0

    def scored(self, x: float, y: float, w: float, h: float) -> bool:
        return y + h >= self.min_feet_y


CLIPS = {
    "vtest": Clip("vtest", "vtest_480x360.mp4", 10.0, 480, 360, min_feet_y=110.0),
    "one-by-one": Clip("one-by-one", "one-by-one-person-detection.mp4", 10.0, 768, 432),
}


@dataclass(frozen=True)
class DetFrame:
    frame: int  # source frame number, from 1 (MOTChallenge)
    ts: datetime
    detections: list[Detection]


def _model_digest(model: ModelConfig) -> str:
    return hashlib.sha256(Path(model.path).read_bytes()).hexdigest()[:16]


def cached_detections(
    clip: Clip, video: Path, model: ModelConfig, cache_dir: Path | None = None
) -> list[DetFrame]:
    """The model's detections on every sampled frame of the clip, computed once and cached."""
    return read_detections(clip, detections_file(clip, video, model, cache_dir))


def detections_file(clip: Clip, video: Path, model: ModelConfig, cache_dir: Path | None = None) -> Path:
    """The cache file of the model's detections on the clip, written first if missing."""
    cache_dir = cache_dir or Path(tempfile.gettempdir()) / "matthan-detections"
    cache_dir.mkdir(parents=True, exist_ok=True)
    # The cap on boxes is set at load, not in the file: another cap is another cache. Unset (or a
    # device tree older than the setting: bench.tracking's "before"), the model's own cap.
    cap = getattr(model, "max_detections", None) or "own"
    classes = getattr(model, "classes", None)  # so are the classes it answers for
    kept = "" if classes is None else "-" + hashlib.sha256("\n".join(classes).encode()).hexdigest()[:8]
    key = f"{clip.name}-{_model_digest(model)}-{cap}max{kept}-{FPS:g}fps-{CACHE_MIN_SCORE:g}.json"
    path = cache_dir / key
    if not path.exists():
        detector = load_detector(model, DetectConfig(min_score=CACHE_MIN_SCORE))
        rows = []
        capture = Capture(str(video), FPS, threading.Event(), paced=False, start_time=T0)
        for f in capture.frames():
            pos = (f.ts - T0).total_seconds()
            dets = detector.detect(f.image)
            rows.append([pos, [[d.label, round(d.score, 4), *(round(v, 5) for v in d.bbox)] for d in dets]])
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(rows))
        tmp.replace(path)
    return path


def read_detections(clip: Clip, path: Path) -> list[DetFrame]:
    out = []
    for pos, dets in json.loads(path.read_text()):
        out.append(
            DetFrame(
                frame=round(pos * clip.native_fps) + 1,
                ts=T0 + timedelta(seconds=pos),
                detections=[Detection(d[0], float(d[1]), (d[2], d[3], d[4], d[5])) for d in dets],
            )
        )
    return out


# Ground truth -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Box:
    frame: int
    id: int
    x: float  # pixels, top left
    y: float
    w: float
    h: float


def read_mot(path: Path) -> list[Box]:
    out = []
    with path.open(newline="") as f:
        for row in csv.reader(f):
            if not row or row[0].startswith("#"):
                continue
            out.append(Box(int(row[0]), int(row[1]), *(float(v) for v in row[2:6])))
    return out


def write_mot(path: Path, boxes: Iterable[Box]) -> None:
    with path.open("w", newline="") as f:
        for b in sorted(boxes, key=lambda b: (b.frame, b.id)):
            f.write(f"{b.frame},{b.id},{b.x:.1f},{b.y:.1f},{b.w:.1f},{b.h:.1f},1,-1,-1,-1\n")


def ground_truth(clip: Clip) -> list[Box]:
    return read_mot(GROUND_TRUTH / f"{clip.name}.gt.csv")


# Scoring ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scores:
    mota: float
    idf1: float
    id_switches: int
    fragmentations: int
    ids: int  # distinct hypothesis ids that matched some person
    precision: float
    recall: float


def _iou_distance(gt: "np.ndarray", hyp: "np.ndarray") -> "np.ndarray":
    """1 − IoU of x,y,w,h boxes, NaN (no match possible) below IoU 0.5: motmetrics' own
    iou_matrix uses np.asfarray, gone in NumPy 2."""
    import numpy as np

    a = np.column_stack([gt[:, :2], gt[:, :2] + gt[:, 2:]])
    b = np.column_stack([hyp[:, :2], hyp[:, :2] + hyp[:, 2:]])
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = ix * iy
    union = (gt[:, 2] * gt[:, 3])[:, None] + (hyp[:, 2] * hyp[:, 3])[None, :] - inter
    iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    return np.where(iou >= 0.5, 1.0 - iou, np.nan)


# A tracker under test: frames of detections in, per frame the (id, box) it reports.
Output = dict[int, list[tuple[int, tuple[float, float, float, float]]]]
TrackerRun = Callable[[Sequence[DetFrame]], Output]


def score(clip: Clip, truth: Sequence[Box], output: Output) -> Scores:
    """CLEAR-MOT and identity metrics on the annotated frames (IoU ≥ 0.5 is a match)."""
    import motmetrics as mm  # type: ignore[import-untyped]
    import numpy as np

    acc = mm.MOTAccumulator(auto_id=False)
    by_frame: dict[int, list[Box]] = {}
    for b in truth:
        if clip.scored(b.x, b.y, b.w, b.h):
            by_frame.setdefault(b.frame, []).append(b)
    for frame in sorted(by_frame):
        gt = by_frame[frame]
        hyp = [
            (i, (x1, y1, x2, y2))
            for i, (x1, y1, x2, y2) in output.get(frame, [])
            if clip.scored(x1 * clip.width, y1 * clip.height, (x2 - x1) * clip.width, (y2 - y1) * clip.height)
        ]
        g = np.array([[b.x, b.y, b.w, b.h] for b in gt], dtype=float).reshape(-1, 4)
        h = np.array(
            [
                [x1 * clip.width, y1 * clip.height, (x2 - x1) * clip.width, (y2 - y1) * clip.height]
                for _, (x1, y1, x2, y2) in hyp
            ],
            dtype=float,
        ).reshape(-1, 4)
        dist = _iou_distance(g, h)
        acc.update([b.id for b in gt], [i for i, _ in hyp], dist, frameid=frame)
    m = mm.metrics.create().compute(
        acc,
        metrics=["mota", "idf1", "num_switches", "num_fragmentations", "precision", "recall"],
        name="x",
    )
    matched = acc.mot_events[acc.mot_events["Type"].isin(["MATCH", "SWITCH"])]
    return Scores(
        mota=float(m["mota"].iloc[0]),
        idf1=float(m["idf1"].iloc[0]),
        id_switches=int(m["num_switches"].iloc[0]),
        fragmentations=int(m["num_fragmentations"].iloc[0]),
        ids=int(matched["HId"].nunique()),
        precision=float(m["precision"].iloc[0]),
        recall=float(m["recall"].iloc[0]),
    )

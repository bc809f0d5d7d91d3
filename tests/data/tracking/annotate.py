"""The tool the tracking ground truth was made with: propose, look, correct, repeat.

    python tests/data/tracking/annotate.py propose vtest --until 40   # model boxes linked into ids
    python tests/data/tracking/annotate.py sheets vtest /tmp/sheets    # contact sheets to look at
    python tests/data/tracking/annotate.py apply vtest                 # proposal + edits → gt.csv

`propose` links the model's person boxes (cached detections, score ≥ 0.3, 5 fps) into ids with
ByteTrack, a first guess only, kept on the annotated frames (every 4th source frame: 2.5 fps). Looking at
the sheets (every box drawn with its id and the frame number on the picture), the annotator
writes `<clip>.edits.txt`, one correction per line, applied in order:

    relabel OLD NEW [FROM [TO]]   the boxes of id OLD (in frames FROM..TO) belong to person NEW
    drop ID [FROM [TO]]           not a person (clutter, a double box, a reflection)
    box ID FRAME X Y W H          a person the model missed, in pixels
    gap ID FROM TO                person ID is hidden in these frames: no box, nothing interpolated

Gaps of up to 3 s inside one person's life are then filled by linear interpolation (a person
briefly missed or hidden by another is still there), and the result is `<clip>.gt.csv`.
"""

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from bench.mot import CLIPS, Box, Clip, cached_detections, read_mot, write_mot  # noqa: E402

STEP = 4  # annotated every 4th source frame (2.5 fps; a subset of the device's 5 fps samples)
MAX_GAP_S = 2.0


def annotated(frame: int) -> bool:
    return (frame - 1) % STEP == 0


def _model():  # type: ignore[no-untyped-def]
    import os

    from matthan_wire.config import ModelConfig

    root = Path(os.environ.get("MATTHAN_ASSETS_DIR", HERE.parents[2] / ".assets"))
    return ModelConfig(
        path=str(root / "models/ssd_mobilenet_v1_coco_quant.tflite"),
        labels=str(root / "models/coco_labels.txt"),
    ), root / "video"


def propose(clip: Clip, until_s: float | None) -> list[Box]:
    """Every person box the model gives (score ≥ 0.4, inner duplicates dropped) on the device's
    5 fps samples, linked to the nearest predicted feet (constant velocity) of the boxes of the
    last 3 s, within 0.5 box heights per step; kept on the annotated frames. A guess to correct."""
    from scipy.optimize import linear_sum_assignment

    from device.tracker import dedupe

    model, videos = _model()
    frames = cached_detections(clip, videos / clip.video, model)
    # id → (step last seen, feet x, feet y, height, velocity x, velocity y)
    live: dict[int, tuple[int, float, float, float, float, float]] = {}
    next_id = 1
    out: list[Box] = []
    for step, f in enumerate(frames):
        if until_s is not None and f.frame > until_s * clip.native_fps + 1:
            break
        people = dedupe([d for d in f.detections if d.label == "person" and d.score >= 0.4])
        boxes = [
            Box(f.frame, 0, d.bbox[0] * clip.width, d.bbox[1] * clip.height,
                (d.bbox[2] - d.bbox[0]) * clip.width, (d.bbox[3] - d.bbox[1]) * clip.height)
            for d in people
        ]  # fmt: skip
        ids = list(live)
        cost = []
        for i in ids:
            last, fx, fy, h, vx, vy = live[i]
            k = step - last
            px, py = fx + vx * k, fy + vy * k
            cost.append([((px - b.x - b.w / 2) ** 2 + (py - b.y - b.h) ** 2) ** 0.5 / (h * (0.5 + 0.5 * k))
                         for b in boxes])  # fmt: skip
        taken: dict[int, int] = {}
        if ids and boxes:
            rows, cols = linear_sum_assignment(cost)
            taken = {int(c): ids[r] for r, c in zip(rows, cols, strict=True) if cost[r][c] < 0.5}
        for j, b in enumerate(boxes):
            tid = taken.get(j)
            fx, fy = b.x + b.w / 2, b.y + b.h
            vx = vy = 0.0
            if tid is None:
                tid, next_id = next_id, next_id + 1
            else:
                last, ox, oy, _, pvx, pvy = live[tid]
                k = step - last
                vx, vy = 0.6 * pvx + 0.4 * (fx - ox) / k, 0.6 * pvy + 0.4 * (fy - oy) / k
            live[tid] = (step, fx, fy, b.h, vx, vy)
            if annotated(f.frame):
                out.append(Box(b.frame, tid, b.x, b.y, b.w, b.h))
        live = {i: v for i, v in live.items() if step - v[0] <= 15}
    return out


def _feet_distance(a: Box, b: Box) -> float:
    return float(((a.x + a.w / 2 - b.x - b.w / 2) ** 2 + (a.y + a.h - b.y - b.h) ** 2) ** 0.5)


def apply(clip: Clip) -> list[Box]:
    boxes = read_mot(HERE / f"{clip.name}.proposal.csv")
    edits = HERE / f"{clip.name}.edits.txt"
    gaps: dict[int, list[tuple[int, int]]] = {}
    for raw in edits.read_text().splitlines() if edits.exists() else []:
        line = raw.split("#", 1)[0].split()
        if not line:
            continue
        op, args = line[0], [float(a) for a in line[1:]]
        lo, hi = 0, 10**9
        if op == "relabel":
            old, new = int(args[0]), int(args[1])
            lo, hi = (int(args[2]) if len(args) > 2 else lo), (int(args[3]) if len(args) > 3 else hi)
            boxes = [Box(b.frame, new, b.x, b.y, b.w, b.h) if b.id == old and lo <= b.frame <= hi else b
                     for b in boxes]  # fmt: skip
        elif op == "drop":
            tid = int(args[0])
            lo, hi = (int(args[1]) if len(args) > 1 else lo), (int(args[2]) if len(args) > 2 else hi)
            boxes = [b for b in boxes if not (b.id == tid and lo <= b.frame <= hi)]
        elif op == "box":
            tid, frame = int(args[0]), int(args[1])
            boxes = [b for b in boxes if not (b.id == tid and b.frame == frame)]
            boxes.append(Box(frame, tid, *(float(a) for a in args[2:6])))
        elif op == "gap":
            gaps.setdefault(int(args[0]), []).append((int(args[1]), int(args[2])))
        else:
            raise SystemExit(f"{edits}: unknown edit {raw!r}")
    # Two boxes for one person in a frame (a relabel onto a live id): keep the larger.
    best: dict[tuple[int, int], Box] = {}
    for b in boxes:
        k = (b.frame, b.id)
        if k not in best or b.w * b.h > best[k].w * best[k].h:
            best[k] = b
    boxes = [b for b in best.values() if clip.scored(b.x, b.y, b.w, b.h)]
    return [b for b in _interpolate(clip, boxes, gaps) if clip.scored(b.x, b.y, b.w, b.h)]


def _interpolate(clip: Clip, boxes: list[Box], gaps: dict[int, list[tuple[int, int]]]) -> list[Box]:
    by_id: dict[int, dict[int, Box]] = {}
    for b in boxes:
        by_id.setdefault(b.id, {})[b.frame] = b
    out = list(boxes)
    for tid, seen in by_id.items():
        frames = sorted(seen)
        for a, b in zip(frames, frames[1:], strict=False):
            if b - a <= STEP or (b - a) / clip.native_fps > MAX_GAP_S:
                continue
            for f in range(a + STEP, b, STEP):
                if any(lo <= f <= hi for lo, hi in gaps.get(tid, [])):
                    continue
                w = (f - a) / (b - a)
                p, q = seen[a], seen[b]
                out.append(
                    Box(f, tid, *(p.__dict__[k] * (1 - w) + q.__dict__[k] * w for k in ("x", "y", "w", "h")))
                )
    return out


def sheets(
    clip: Clip,
    csv_name: str,
    out: Path,
    per_sheet: int,
    first: int,
    last: int,
    crop: list[int] | None,
    scale: float,
) -> None:
    import cv2
    import numpy as np

    _, videos = _model()
    boxes = read_mot(HERE / csv_name)
    by_frame: dict[int, list[Box]] = {}
    for b in boxes:
        by_frame.setdefault(b.frame, []).append(b)
    cap = cv2.VideoCapture(str(videos / clip.video))
    out.mkdir(parents=True, exist_ok=True)
    tiles: list[np.ndarray] = []
    n = 0
    sheet_no = 0
    while True:
        ok, image = cap.read()
        if not ok:
            break
        n += 1
        if n < first or n > last or not annotated(n):
            continue
        for b in by_frame.get(n, []):
            colour = tuple(int(c) for c in np.random.default_rng(b.id).integers(60, 255, 3))
            p1, p2 = (int(b.x), int(b.y)), (int(b.x + b.w), int(b.y + b.h))
            cv2.rectangle(image, p1, p2, colour, 1)
            cv2.putText(image, str(b.id), (p1[0], p1[1] - 2), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 4)
            cv2.putText(image, str(b.id), (p1[0], p1[1] - 2), cv2.FONT_HERSHEY_SIMPLEX, 0.6, colour, 2)
        if crop:  # the part where people walk, enlarged so small ids can be read
            x0, y0, x1, y1 = crop
            image = cv2.resize(image[y0:y1, x0:x1], None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        cv2.putText(image, f"f{n}", (5, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 255), 2)
        tiles.append(image)
        if len(tiles) == per_sheet:
            _write_sheet(out / f"{clip.name}-{sheet_no:03d}.png", tiles)
            sheet_no += 1
            tiles = []
    if tiles:
        _write_sheet(out / f"{clip.name}-{sheet_no:03d}.png", tiles)


def _write_sheet(path: Path, tiles: list["object"]) -> None:
    import cv2
    import numpy as np

    blank = np.zeros_like(tiles[0])  # type: ignore[call-overload]
    while len(tiles) % 2:
        tiles.append(blank)
    rows = [np.hstack(tiles[i : i + 2]) for i in range(0, len(tiles), 2)]  # type: ignore[call-overload]
    cv2.imwrite(str(path), np.vstack(rows))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("command", choices=["propose", "apply", "sheets"])
    p.add_argument("clip", choices=sorted(CLIPS))
    p.add_argument("out", nargs="?", type=Path, default=Path("/tmp/sheets"))
    p.add_argument("--until", type=float, default=None, help="seconds of the clip to propose")
    p.add_argument("--csv", default=None, help="sheets: which file to draw (default the gt)")
    p.add_argument("--per-sheet", type=int, default=4)
    p.add_argument("--first", type=int, default=1)
    p.add_argument("--last", type=int, default=10**9)
    p.add_argument("--crop", type=int, nargs=4, default=None, help="sheets: x0 y0 x1 y1 in pixels")
    p.add_argument("--scale", type=float, default=1.5)
    a = p.parse_args()
    clip = CLIPS[a.clip]
    if a.command == "propose":
        write_mot(HERE / f"{clip.name}.proposal.csv", propose(clip, a.until))
    elif a.command == "apply":
        write_mot(HERE / f"{clip.name}.gt.csv", apply(clip))
    else:
        sheets(clip, a.csv or f"{clip.name}.gt.csv", a.out, a.per_sheet, a.first, a.last, a.crop, a.scale)


if __name__ == "__main__":
    main()

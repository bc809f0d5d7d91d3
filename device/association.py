"""Association: which detection is which track, by motion, overlap, size and colour.

One optimal assignment per call (device/assignment.py) on a cost of the Mahalanobis distance of
the box centre to the track's prediction, overlap with the predicted box (or where a stationary
object rests), the height ratio and the colour signatures; pairs outside the gates never match.
Ties never depend on the order the model lists its boxes: the cost is rounded.
"""

import functools

import numpy as np

from device.appearance import Look, iou_matrix, unlike
from device.assignment import min_cost_assignment
from device.detector import Detection
from device.kalman import GATE, distances
from device.track import Track

# Labels the model confuses with each other for the same object; matched as one.
_SAME_OBJECT = [{"car", "truck", "bus"}]
_NO_MATCH = 1e6
_MAX_HEIGHT_RATIO = float(np.log(1.8))  # |log| of the height ratio: 1.8× taller or shorter at most


@functools.cache
def _kind(label: str) -> str:
    """One name for the labels the model gives one object: tracks and boxes match within a kind."""
    return next((min(group) for group in _SAME_OBJECT if label in group), label)


def _assign(cost: np.ndarray) -> list[tuple[int, int]]:
    """The pairs (row, column) of min_cost_assignment that can match, in row order.

    Most of the time each row that can match (or each column, whichever are fewer) has one
    cheapest partner and no two share it: that assignment is then the only optimal one, so the
    full method could return nothing else; it runs for the rest. In plain floats: the matrices
    are a few dozen cells, where each NumPy call costs more than the arithmetic."""
    side = (cost if cost.shape[0] <= cost.shape[1] else cost.T).tolist()
    pairs: list[tuple[int, int]] = []
    for r, row in enumerate(side):
        low = min(row)
        if low >= _NO_MATCH:
            continue
        if row.count(low) > 1:
            break
        pairs.append((r, row.index(low)))
    else:
        if len({c for _, c in pairs}) == len(pairs):
            return pairs if cost.shape[0] <= cost.shape[1] else sorted((c, r) for r, c in pairs)
    rows, cols = min_cost_assignment(cost)
    return [(r, c) for r, c in zip(rows, cols, strict=True) if cost[r, c] < _NO_MATCH]


def dedupe(dets: list[Detection]) -> list[Detection]:
    """Drop a box mostly inside a better one of the same object: SSD's NMS lets a person's
    upper body through beside the whole person, which would become a second track."""
    ranked = sorted(dets, key=lambda d: (-d.score, d.bbox))
    if len(ranked) < 2:
        return ranked
    inside = (_containment_matrix(np.array([d.bbox for d in ranked])) >= 0.6).tolist()
    kinds = [_kind(d.label) for d in ranked]
    kept: list[int] = []
    for j, kind in enumerate(kinds):
        if not any(kinds[k] == kind and inside[j][k] for k in kept):
            kept.append(j)
    return [ranked[j] for j in kept]


def _containment_matrix(b: np.ndarray) -> np.ndarray:
    """geometry.containment of every box in b (N×4) with every other, in one go."""
    ix = np.maximum(0.0, np.minimum(b[:, None, 2], b[None, :, 2]) - np.maximum(b[:, None, 0], b[None, :, 0]))
    iy = np.maximum(0.0, np.minimum(b[:, None, 3], b[None, :, 3]) - np.maximum(b[:, None, 1], b[None, :, 1]))
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    smaller = np.minimum(area[:, None], area[None, :])
    return np.where(smaller > 0, ix * iy / np.where(smaller > 0, smaller, 1.0), 0.0)


def match(
    tracks: list[Track], idx: list[int], dets: list[Detection], looks: list[Look], appearance_weight: float
) -> list[tuple[Track, int]]:
    """Pairs (track, index into dets) among the detections `idx`, least total cost first."""
    if not tracks or not idx:
        return []
    same = np.array([_kind(t.label) for t in tracks])[:, None] == np.array(
        [_kind(dets[i].label) for i in idx]
    )
    if not same.any():  # nothing could match (lost cars, boxes of people): skip the rest
        return []
    boxes = np.array([dets[i].bbox for i in idx])
    pred = np.array([t._kf.box() if t._kf is not None else t.box for t in tracks])
    anchor = np.array([t.anchor if t.anchor is not None else t.box for t in tracks])
    both = iou_matrix(np.concatenate([pred, anchor]), boxes)
    overlap = np.maximum(both[: len(tracks)], both[len(tracks) :])
    d2 = np.full((len(tracks), len(idx)), GATE)
    moving = [r for r, t in enumerate(tracks) if t._kf is not None]
    d2[moving] = distances([t._kf for t in tracks if t._kf is not None], boxes)
    # Height ratio: one box around two people, or a person's head alone, is not the person.
    ratio = np.abs(np.log((boxes[None, :, 3] - boxes[None, :, 1]) / (pred[:, None, 3] - pred[:, None, 1])))
    ok = same & ((d2 <= GATE) | (overlap >= 0.3)) & (ratio <= _MAX_HEIGHT_RATIO)
    if not ok.any():
        return []
    cost = 0.5 * np.minimum(d2 / GATE, 1.0) + 0.5 * (1.0 - overlap) + 0.25 * ratio
    # Colours: 1 − histogram intersection of the track's signature and the box's (0 when
    # either is unknown). Weighted high: on the annotated clips it is what keeps a pair
    # walking side by side apart when their boxes touch.
    have = [r for r, t in enumerate(tracks) if t._look is not None]
    cols = [c for c, i in enumerate(idx) if looks[i][0] is not None]
    if have and cols:
        a = np.array([tracks[r]._look for r in have])
        b = np.array([looks[idx[c]][0] for c in cols])
        cost[np.ix_(have, cols)] += appearance_weight * unlike(a, b)
    cost = np.where(ok, np.round(cost, 6), _NO_MATCH)
    return [(tracks[r], idx[c]) for r, c in _assign(cost)]

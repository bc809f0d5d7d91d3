"""Tracks: stable ids for detections across frames, a stationary state, zone membership.

A small SORT-style tracker (greedy matching on overlap and distance against a constant-velocity
prediction) rather than Norfair: the parked-vehicle behaviour docs/lessons.md asks for (a car that
headlights or a passer-by hide for a while is the same car, at the same spot, still parked) is
easier to get right in code we own, and it is cheap at the 5–10 objects a street camera sees.

Times are the frames' timestamps, so a file processed faster than real time behaves exactly as
the live camera would.
"""

import itertools
import statistics
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import numpy as np

from device.detector import Detection
from device.geometry import Box, Point, bottom_centre, centre, containment, iou, point_in_polygon

State = Literal["moving", "stopped", "parked"]

# Parked vehicles are what docs/lessons.md #2 is about: hidden for a while, still the same car.
VEHICLES = frozenset({"car", "truck", "bus", "motorcycle", "bicycle"})
# Labels the model confuses with each other for the same object; matched as one.
_SAME_OBJECT = [{"car", "truck", "bus"}]


@dataclass(frozen=True)
class TrackerConfig:
    min_hits: int = 3  # detections before a track counts (false alarms blink, objects persist)
    keep_moving_s: float = 1.5  # a moving object unseen this long is gone
    keep_stationary_s: float = 60.0  # a stopped/parked vehicle is kept this long and re-attached
    keep_still_s: float = 5.0  # a person who stood still: the next one at the same spot is someone else
    stop_after_s: float = 2.0  # stationary this long → stopped
    park_after_s: float = 20.0  # stationary this long → parked
    still_fraction: float = 0.3  # moved less than this × box size counts as standing still
    zone_inertia: int = 2  # consecutive observations to enter or leave a zone
    match_min: float = 0.2


@dataclass
class Track:
    id: int
    label: str
    box: Box
    first_seen: datetime
    last_seen: datetime
    hits: int = 1
    scores: deque[float] = field(default_factory=lambda: deque(maxlen=30))
    labels_seen: dict[str, int] = field(default_factory=dict)
    path: deque[tuple[datetime, Point]] = field(default_factory=lambda: deque(maxlen=64))
    velocity: tuple[float, float] = (0.0, 0.0)  # of the box centre, per second
    # Stationary: the box where the object came to rest, and since when it has been there.
    anchor: Box | None = None
    still_since: datetime | None = None
    _moved_streak: int = 0
    zones: dict[str, datetime] = field(default_factory=dict)  # zone → entered at
    _zone_streak: dict[str, int] = field(default_factory=dict)
    seen_now: bool = False  # matched in the latest detector run
    config: TrackerConfig = field(default_factory=TrackerConfig)

    @property
    def confirmed(self) -> bool:
        return self.hits >= self.config.min_hits

    @property
    def median_score(self) -> float:
        return statistics.median(self.scores) if self.scores else 0.0

    @property
    def point(self) -> Point:
        return bottom_centre(self.box)

    def stationary_s(self, now: datetime) -> float:
        return (now - self.still_since).total_seconds() if self.still_since is not None else 0.0

    def state(self, now: datetime) -> State:
        still = self.stationary_s(now)
        if still >= self.config.park_after_s:
            return "parked"
        if still >= self.config.stop_after_s:
            return "stopped"
        return "moving"

    def predicted(self, now: datetime) -> Box:
        dt = min((now - self.last_seen).total_seconds(), 1.0)
        vx, vy = self.velocity
        x1, y1, x2, y2 = self.box
        return (x1 + vx * dt, y1 + vy * dt, x2 + vx * dt, y2 + vy * dt)


def _same_object(a: str, b: str) -> bool:
    return a == b or any(a in group and b in group for group in _SAME_OBJECT)


def _iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in a (N×4) with every box in b (M×4)."""
    ix = np.clip(
        np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0.0, None
    )
    iy = np.clip(
        np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0.0, None
    )
    inter = ix * iy
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def dedupe(dets: list[Detection]) -> list[Detection]:
    """Drop a box mostly inside a better one of the same object: SSD's NMS lets a person's
    upper body through beside the whole person, which would become a second track."""
    kept: list[Detection] = []
    for d in sorted(dets, key=lambda d: d.score, reverse=True):
        if not any(_same_object(d.label, k.label) and containment(d.bbox, k.bbox) >= 0.6 for k in kept):
            kept.append(d)
    return kept


class Tracker:
    def __init__(self, config: TrackerConfig | None = None, zones: dict[str, Sequence[Point]] | None = None):
        self.config = config or TrackerConfig()
        self.zones = dict(zones or {})
        self.tracks: list[Track] = []
        self._ids = itertools.count(1)

    def set_zones(self, zones: dict[str, Sequence[Point]]) -> None:
        self.zones = dict(zones)
        for t in self.tracks:
            for name in list(t.zones):
                if name not in self.zones:
                    del t.zones[name]

    def update(self, now: datetime, detections: Iterable[Detection] | None) -> list[Track]:
        """Feed one frame's detections; None when the detector did not run (nothing changes).

        Returns the live tracks (confirmed or not).
        """
        if detections is None:
            return self.tracks  # seen_now keeps meaning "in the latest detector run"
        dets = dedupe(list(detections))
        pairs = self._match(now, dets)
        matched_tracks = {id(t) for t, _ in pairs}
        matched_dets = {i for _, i in pairs}
        for t in self.tracks:
            t.seen_now = False
        for t, i in pairs:
            self._observe(t, dets[i], now)
        for i, d in enumerate(dets):
            if i not in matched_dets:
                t = Track(next(self._ids), d.label, d.bbox, now, now, config=self.config)
                t.scores.append(d.score)
                t.labels_seen[d.label] = 1
                t.path.append((now, bottom_centre(d.bbox)))
                t.anchor, t.still_since = d.bbox, now
                t.seen_now = True
                self._update_zones(t, now)
                self.tracks.append(t)
                matched_tracks.add(id(t))
        self.tracks = [t for t in self.tracks if id(t) in matched_tracks or not self._expired(t, now)]
        return self.tracks

    def _expired(self, t: Track, now: datetime) -> bool:
        unseen = (now - t.last_seen).total_seconds()
        if not t.confirmed:
            return unseen > 0.5 * self.config.keep_moving_s
        if t.stationary_s(t.last_seen) < self.config.stop_after_s:
            return unseen > self.config.keep_moving_s
        if t.label in VEHICLES:
            return unseen > self.config.keep_stationary_s
        return unseen > self.config.keep_still_s

    def _match(self, now: datetime, dets: list[Detection]) -> list[tuple[Track, int]]:
        if not self.tracks or not dets:
            return []
        # All track × detection scores at once (numpy): overlap with the predicted box or the
        # resting place, plus closeness within a reach that grows while a track is unseen.
        pred = np.array([t.predicted(now) for t in self.tracks])
        anchor = np.array([t.anchor if t.anchor is not None else t.predicted(now) for t in self.tracks])
        boxes = np.array([d.bbox for d in dets])
        size = np.array([max(t.box[2] - t.box[0], t.box[3] - t.box[1]) for t in self.tracks])
        unseen = np.array([(now - t.last_seen).total_seconds() for t in self.tracks])
        reach = size * (1.0 + unseen)
        overlap = np.maximum(_iou_matrix(pred, boxes), _iou_matrix(anchor, boxes))
        pc = (pred[:, None, :2] + pred[:, None, 2:]) / 2.0
        dc = (boxes[None, :, :2] + boxes[None, :, 2:]) / 2.0
        dist = np.sqrt(((pc - dc) ** 2).sum(axis=2))
        with np.errstate(divide="ignore", invalid="ignore"):
            near = np.where(reach[:, None] > 0, np.clip(1.0 - dist / reach[:, None], 0.0, None), 0.0)
        score = overlap + 0.5 * near
        same = np.array([[_same_object(t.label, d.label) for d in dets] for t in self.tracks])
        score = np.where(same, score, -1.0)
        ti_all, di_all = np.nonzero(score >= self.config.match_min)
        scored = [(float(score[ti, di]), int(ti), int(di)) for ti, di in zip(ti_all, di_all, strict=True)]
        scored.sort(reverse=True)
        used_t: set[int] = set()
        used_d: set[int] = set()
        pairs: list[tuple[Track, int]] = []
        for _, ti, di in scored:
            if ti in used_t or di in used_d:
                continue
            used_t.add(ti)
            used_d.add(di)
            pairs.append((self.tracks[ti], di))
        return pairs

    def _observe(self, t: Track, d: Detection, now: datetime) -> None:
        dt = (now - t.last_seen).total_seconds()
        if dt > 0:
            (ox, oy), (nx, ny) = centre(t.box), centre(d.bbox)
            v = ((nx - ox) / dt, (ny - oy) / dt)
            # Smoothed: one jumpy box should not throw the prediction off.
            t.velocity = (0.5 * t.velocity[0] + 0.5 * v[0], 0.5 * t.velocity[1] + 0.5 * v[1])
        t.box = d.bbox
        t.last_seen = now
        t.hits += 1
        t.scores.append(d.score)
        t.labels_seen[d.label] = t.labels_seen.get(d.label, 0) + 1
        t.label = max(t.labels_seen, key=lambda k: t.labels_seen[k])
        t.path.append((now, bottom_centre(d.bbox)))
        t.seen_now = True
        self._update_still(t, now)
        self._update_zones(t, now)

    def _update_still(self, t: Track, now: datetime) -> None:
        anchor = t.anchor or t.box
        size = max(anchor[2] - anchor[0], anchor[3] - anchor[1])
        (ax, ay), (bx, by) = centre(anchor), centre(t.box)
        moved = ((ax - bx) ** 2 + (ay - by) ** 2) ** 0.5 > self.config.still_fraction * size
        if not moved or iou(anchor, t.box) >= 0.5:
            t._moved_streak = 0
            return
        # Two observations away from the anchor: one box squeezed by a passer-by is not a move.
        t._moved_streak += 1
        if t._moved_streak >= 2:
            t.anchor, t.still_since, t._moved_streak = t.box, now, 0

    def _update_zones(self, t: Track, now: datetime) -> None:
        p = t.point
        for name, polygon in self.zones.items():
            inside = point_in_polygon(p, polygon)
            if inside == (name in t.zones):
                t._zone_streak[name] = 0
                continue
            streak = t._zone_streak.get(name, 0) + 1
            # A new track decides at once: it has no membership to keep yet.
            if streak >= self.config.zone_inertia or t.hits == 1:
                t._zone_streak[name] = 0
                if inside:
                    t.zones[name] = now
                else:
                    del t.zones[name]
            else:
                t._zone_streak[name] = streak

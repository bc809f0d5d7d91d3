"""Tracks: one stable id per object across frames, a stationary state, zone membership.

A small SORT/ByteTrack-style tracker in code we own, chosen by measurement (bench/tracking.py on
the annotated ground truth in tests/data/tracking): a Kalman filter per track (constant velocity
of the box centre and size), matching by Mahalanobis distance and overlap with an optimal
assignment, and colour signatures of the boxes (torso and legs) when the frame is given, in a
cascade — the tracks seen in the last three detector runs (`recent_s`) first, then the lost ones
(re-found near where their motion says they should be, within a window). Stationary objects are
held through misses (a parked car hidden by a bus is the same car). Measured and not kept:
ByteTrack's second stage on low-score boxes (no gain on the ground truth, lower precision); a
gallery of recent looks instead of one averaged look, OC-SORT's re-update and direction cost, an
appearance gate on re-finding, no filter update while boxes overlap (bench/RESULTS.md).

Times are the frames' timestamps, so a file processed faster than real time behaves exactly as
the live camera would. Ties never depend on the order the model lists its boxes: detections are
sorted by position first, and the assignment cost is rounded.
"""

import itertools
import statistics
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import numpy as np

from device.assignment import min_cost_assignment
from device.detector import Detection
from device.geometry import Box, Point, bottom_centre, centre, containment, iou, point_in_polygon

State = Literal["moving", "stopped", "parked"]

# Parked vehicles are what docs/lessons.md #2 is about: hidden for a while, still the same car.
VEHICLES = frozenset({"car", "truck", "bus", "motorcycle", "bicycle"})
# Labels the model confuses with each other for the same object; matched as one.
_SAME_OBJECT = [{"car", "truck", "bus"}]
_NO_MATCH = 1e6
# χ² with 2 degrees of freedom at 99 %: a centre further than this (in the filter's own
# uncertainty) is not the same object.
_GATE = 9.21


@dataclass(frozen=True)
class TrackerConfig:
    min_hits: int = 3  # detections before a track counts (false alarms blink, objects persist)
    keep_moving_s: float = 2.0  # a moving object unseen this long is gone (re-found until then)
    keep_stationary_s: float = 60.0  # a stopped/parked vehicle is kept this long and re-attached
    keep_still_s: float = 5.0  # a person who stood still: kept this long through misses
    stop_after_s: float = 2.0  # stationary this long → stopped
    park_after_s: float = 20.0  # stationary this long → parked
    still_fraction: float = 0.3  # moved less than this × box size counts as standing still
    zone_inertia: int = 2  # consecutive observations to enter or leave a zone
    # A box whose height jumps by more than this factor against the track's own (a man and a
    # tripod in one box, a person half hidden) still keeps the track alive, but its foot is not
    # where the object stands: it moves neither the motion model nor the zone membership.
    max_jump: float = 1.4
    # Static clutter (cones, poles, signs read as "person"): its centre never moved more than
    # `clutter_travel` × its width since first seen, for `clutter_after_s`. Its place is
    # remembered, so a cone that blinks back under a new id is clutter at once, until it moves.
    clutter_after_s: float = 10.0
    clutter_travel: float = 1.0
    clutter_memory_s: float = 600.0
    # Unseen longer than this: "lost", matched after the others. Up to two missed 5 fps detector
    # runs (0.6 s) still count as seen: a person hidden for a moment by someone crossing in front
    # keeps competing in the first stage, where one joint assignment shares the boxes out, rather
    # than finding the box already taken by the crosser. Measured: 0.3 s (one run) gave 50 id
    # switches on vtest, this 46; 0.4-0.5 s and 0.8-1.1 s were no better. Set between run
    # multiples (0.6 and 0.8 s) so frame-time jitter cannot flip it.
    recent_s: float = 0.65
    clutter_recent_s: float = 1.5  # the same for static clutter (see Tracker._recent)
    appearance_weight: float = 2.0  # how much colours count against position and overlap


def appearance(image: np.ndarray, box: Box) -> np.ndarray | None:
    """A colour signature of the object: hue/saturation/value histograms of the upper and the
    lower half of the box's middle (torso and legs: a red jacket over jeans is told from a black
    coat over dark trousers), L1-normalised. None for a box too small to say anything."""
    import cv2

    h, w = image.shape[:2]
    x1, y1, x2, y2 = box
    bw, bh = (x2 - x1) * w, (y2 - y1) * h
    xa, xb = int(round(x1 * w + 0.25 * bw)), int(round(x2 * w - 0.25 * bw))
    ya, ym, yb = int(round(y1 * h + 0.15 * bh)), int(round(y1 * h + 0.5 * bh)), int(round(y2 * h - 0.1 * bh))
    if xb - xa < 3 or ym - ya < 3 or yb - ym < 3:
        return None
    parts = []
    for top, bottom in ((ya, ym), (ym, yb)):
        hsv = cv2.cvtColor(np.ascontiguousarray(image[top:bottom, xa:xb]), cv2.COLOR_BGR2HSV)
        hist = cv2.calcHist([hsv], [0, 1, 2], None, [6, 3, 4], [0, 180, 0, 256, 0, 256]).ravel()
        parts.append(hist / max(float(hist.sum()), 1.0))
    return np.concatenate(parts) / 2.0


class _Kalman:
    """Constant-velocity Kalman filter of (cx, cy, w, h); noise scales with the box size, so a
    near person and a far one are judged by the same yardstick."""

    def __init__(self, box: Box) -> None:
        cx, cy = centre(box)
        w, h = box[2] - box[0], box[3] - box[1]
        self.x = np.array([cx, cy, w, h, 0.0, 0.0, 0.0, 0.0])
        s = np.array([0.1 * w, 0.1 * h, 0.1 * w, 0.1 * h, 1.5 * w, 0.8 * h, 0.1 * w, 0.1 * h])
        self.p = np.diag(s**2)

    def _scale(self) -> np.ndarray:
        w, h = max(self.x[2], 1e-3), max(self.x[3], 1e-3)
        return np.array([w, h, w, h])

    def predict(self, dt: float) -> None:
        if dt <= 0:
            return
        f = np.eye(8)
        f[:4, 4:] = np.eye(4) * dt
        # White-noise acceleration: people start, stop and turn (1.5 widths/s², 0.8 heights/s²).
        acc = self._scale() * np.array([1.5, 0.8, 0.1, 0.1])
        g = np.concatenate([np.eye(4) * (dt * dt / 2.0), np.eye(4) * dt])
        q = g @ np.diag(acc**2) @ g.T
        self.x = f @ self.x
        self.p = f @ self.p @ f.T + q

    def _r(self) -> np.ndarray:
        return np.diag((self._scale() * np.array([0.08, 0.05, 0.1, 0.08])) ** 2)

    def distance(self, boxes: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distance of each box centre (N×4 x1,y1,x2,y2) to the prediction."""
        s = self.p[:2, :2] + self._r()[:2, :2]
        d = (boxes[:, :2] + boxes[:, 2:]) / 2.0 - self.x[:2]
        inv = np.linalg.inv(s)
        return np.einsum("ni,ij,nj->n", d, inv, d)  # type: ignore[no-any-return]

    def update(self, box: Box) -> None:
        cx, cy = centre(box)
        z = np.array([cx, cy, box[2] - box[0], box[3] - box[1]])
        hm = np.zeros((4, 8))
        hm[:, :4] = np.eye(4)
        s = hm @ self.p @ hm.T + self._r()
        k = self.p @ hm.T @ np.linalg.inv(s)
        self.x = self.x + k @ (z - hm @ self.x)
        self.p = (np.eye(8) - k @ hm) @ self.p

    def box(self) -> Box:
        cx, cy, w, h = (float(v) for v in self.x[:4])
        w, h = max(w, 1e-4), max(h, 1e-4)
        return (cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0)


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
    # How far the object has ever been from where it was first seen (× its size): clutter that
    # never moved stays near 0, a person who walked in and stopped does not.
    travelled: float = 0.0
    zone_hits: dict[str, int] = field(default_factory=dict)  # zone → observations inside since entering
    reliable: bool = True  # the latest box is consistent with the object's size (see max_jump)
    # Since when something that never moved has stood here: this track's first sighting, or
    # earlier when an unmoving object was seen at this very spot before (a cone's detections
    # blink, each blink a new track).
    static_since: datetime | None = None
    _origin: Point | None = None
    _jumps: int = 0
    _kf: _Kalman | None = None
    _kf_at: datetime | None = None
    _look: np.ndarray | None = None  # appearance signature, averaged over clean sightings

    @property
    def confirmed(self) -> bool:
        return self.hits >= self.config.min_hits

    @property
    def median_score(self) -> float:
        return statistics.median(self.scores) if self.scores else 0.0

    @property
    def point(self) -> Point:
        return bottom_centre(self.box)

    def is_clutter(self, now: datetime) -> bool:
        """Static clutter: it has never moved, and either stood long enough to tell or stands where
        clutter stood before. A person who walked in and stopped has moved: never clutter."""
        if self.travelled >= self.config.clutter_travel:
            return False
        since = self.static_since or self.first_seen
        return (now - since).total_seconds() >= self.config.clutter_after_s

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
        """Where the filter expects the box at `now` (the last box when it has no motion yet)."""
        if self._kf is None or self._kf_at is None:
            return self.box
        dt = min((now - self._kf_at).total_seconds(), 1.0)
        x = self._kf.x
        cx, cy = float(x[0] + x[4] * dt), float(x[1] + x[5] * dt)
        w, h = float(max(x[2], 1e-4)), float(max(x[3], 1e-4))
        return (cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0)


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


def _same_spot(a: Box, b: Box) -> bool:
    """The same small thing at the same place: centres within a width (at least 2 % of the frame;
    the boxes of a far cone jitter by pixels, which is a lot of overlap) and similar heights."""
    (ax, ay), (bx, by) = centre(a), centre(b)
    reach = max(a[2] - a[0], b[2] - b[0], 0.02)
    ratio = (b[3] - b[1]) / max(a[3] - a[1], 1e-6)
    return ((ax - bx) ** 2 + (ay - by) ** 2) ** 0.5 <= reach and 1 / 1.5 <= ratio <= 1.5


def _at_edge(box: Box) -> bool:
    return box[0] <= 0.01 or box[1] <= 0.01 or box[2] >= 0.99 or box[3] >= 0.99


def _same_place(a: Box, b: Box) -> bool:
    """Standing on the same spot: feet within a width (whatever the boxes' heights)."""
    (ax, ay), (bx, by) = bottom_centre(a), bottom_centre(b)
    return bool(((ax - bx) ** 2 + (ay - by) ** 2) ** 0.5 <= max(a[2] - a[0], b[2] - b[0], 0.02))


def dedupe(dets: list[Detection]) -> list[Detection]:
    """Drop a box mostly inside a better one of the same object: SSD's NMS lets a person's
    upper body through beside the whole person, which would become a second track."""
    kept: list[Detection] = []
    for d in sorted(dets, key=lambda d: (-d.score, d.bbox)):
        if not any(_same_object(d.label, k.label) and containment(d.bbox, k.bbox) >= 0.6 for k in kept):
            kept.append(d)
    return kept


class Tracker:
    def __init__(self, config: TrackerConfig | None = None, zones: dict[str, Sequence[Point]] | None = None):
        self.config = config or TrackerConfig()
        self.zones = dict(zones or {})
        self.tracks: list[Track] = []
        self._ids = itertools.count(1)
        # Where unmoving objects were seen: label, box, seen there since, last seen there.
        self.static_spots: list[tuple[str, Box, datetime, datetime]] = []

    def set_zones(self, zones: dict[str, Sequence[Point]]) -> None:
        self.zones = dict(zones)
        for t in self.tracks:
            for name in list(t.zones):
                if name not in self.zones:
                    del t.zones[name]
                    t.zone_hits.pop(name, None)

    def update(
        self, now: datetime, detections: Iterable[Detection] | None, image: np.ndarray | None = None
    ) -> list[Track]:
        """Feed one frame's detections; None when the detector did not run (nothing changes).
        With the frame's image, the objects' colours help tell apart people who walk together.

        Returns the live tracks (confirmed or not).
        """
        if detections is None:
            return self.tracks  # seen_now keeps meaning "in the latest detector run"
        # Position order, not the model's: the same boxes give the same ids on any build.
        dets = sorted(
            dedupe(list(detections)), key=lambda d: (round(d.bbox[0], 4), round(d.bbox[1], 4), d.label)
        )
        looks = self._looks(dets, image)
        for t in self.tracks:
            t.seen_now = False
            self._predict(t, now)
        recent = [t for t in self.tracks if self._recent(t, now)]
        lost = [t for t in self.tracks if not self._recent(t, now)]
        # Tracks seen within recent_s take their boxes first; lost tracks then get a
        # chance at the rest, re-identified where their motion predicts and by their colours.
        pairs = self._match(recent, list(range(len(dets))), dets, looks)
        taken = {i for _, i in pairs}
        pairs += self._match(lost, [i for i in range(len(dets)) if i not in taken], dets, looks)
        matched_tracks = {id(t) for t, _ in pairs}
        matched_dets = {i for _, i in pairs}
        for t, i in pairs:
            self._observe(t, dets[i], now, looks[i])
        for i, d in enumerate(dets):
            if i in matched_dets:
                continue
            t = Track(next(self._ids), d.label, d.bbox, now, now, config=self.config)
            t.scores.append(d.score)
            t.labels_seen[d.label] = 1
            t.path.append((now, bottom_centre(d.bbox)))
            t.anchor, t.still_since = d.bbox, now
            t.seen_now = True
            t._origin = centre(d.bbox)
            self._born(t, now)
            t._kf, t._kf_at = _Kalman(d.bbox), now
            t._look = looks[i][0]
            self._update_zones(t, now)
            self.tracks.append(t)
            matched_tracks.add(id(t))
        self.tracks = [t for t in self.tracks if id(t) in matched_tracks or not self._expired(t, now)]
        self._remember_clutter(now)
        return self.tracks

    def _born(self, t: Track, now: datetime) -> None:
        """A new track where a person who had walked was just lost is that person (it keeps
        having moved); one where unmoving things stood keeps their standing time."""
        for old in self.tracks:
            if (
                not old.seen_now
                and old.travelled >= self.config.clutter_travel
                and _same_place(old.box, t.box)
            ):
                t.travelled = old.travelled
                return
        for label, box, since, last in self.static_spots:
            # A thing that blinks is back within seconds; a spot empty for longer starts afresh.
            fresh = (now - last).total_seconds() <= self.config.clutter_after_s
            if label == t.label and fresh and _same_spot(box, t.box):
                t.static_since = min(since, now)
                return

    def _remember_clutter(self, now: datetime) -> None:
        keep = self.config.clutter_memory_s
        spots = [s for s in self.static_spots if (now - s[3]).total_seconds() <= keep]
        for t in self.tracks:
            if not t.seen_now or t.travelled >= self.config.clutter_travel:
                continue
            since = t.static_since or t.first_seen
            same = [s for s in spots if s[0] == t.label and _same_spot(s[1], t.box)]
            gap = self.config.clutter_after_s
            since = min([since, *(s[2] for s in same if (t.first_seen - s[3]).total_seconds() <= gap)])
            spots = [s for s in spots if s not in same]
            spots.append((t.label, t.box, since, now))
        self.static_spots = spots[-256:]  # bounded: a camera sees a handful of such things

    @staticmethod
    def _looks(dets: list[Detection], image: np.ndarray | None) -> list[tuple[np.ndarray | None, bool]]:
        """Each detection's appearance, and whether it is clean (no other box over it)."""
        if image is None or not dets:
            return [(None, False)] * len(dets)
        boxes = np.array([d.bbox for d in dets])
        ov = _iou_matrix(boxes, boxes)
        np.fill_diagonal(ov, 0.0)
        return [(appearance(image, d.bbox), bool(ov[i].max(initial=0.0) < 0.1)) for i, d in enumerate(dets)]

    def _predict(self, t: Track, now: datetime) -> None:
        if t._kf is None or t._kf_at is None:
            return
        dt = (now - t._kf_at).total_seconds()
        unseen = (now - t.last_seen).total_seconds()
        if unseen > self.config.recent_s or t.stationary_s(t.last_seen) >= self.config.stop_after_s:
            # Lost, or at rest: the last velocity is a poor guess for long; let it fade.
            t._kf.x[4:] *= 0.5 ** max(dt, 0.0)
        t._kf.predict(dt)
        t._kf_at = now

    def _recent(self, t: Track, now: datetime) -> bool:
        """Matched in the first stage. Static clutter (a cone whose detections blink) stays there
        through its blinks: otherwise a walker's track, still recent, takes the cone's box as the
        walker passes it and stays on the cone (a new cone track then alerts again)."""
        unseen = (now - t.last_seen).total_seconds()
        return unseen <= (self.config.clutter_recent_s if t.is_clutter(now) else self.config.recent_s)

    def _expired(self, t: Track, now: datetime) -> bool:
        unseen = (now - t.last_seen).total_seconds()
        if not t.confirmed:
            return unseen > 0.5 * self.config.keep_moving_s
        if t.stationary_s(t.last_seen) < self.config.stop_after_s:
            return unseen > self.config.keep_moving_s
        if t.label in VEHICLES:
            return unseen > self.config.keep_stationary_s
        return unseen > self.config.keep_still_s

    def _match(
        self,
        tracks: list[Track],
        idx: list[int],
        dets: list[Detection],
        looks: list[tuple[np.ndarray | None, bool]],
    ) -> list[tuple[Track, int]]:
        if not tracks or not idx:
            return []
        boxes = np.array([dets[i].bbox for i in idx])
        pred = np.array([t._kf.box() if t._kf is not None else t.box for t in tracks])
        anchor = np.array([t.anchor if t.anchor is not None else t.box for t in tracks])
        overlap = np.maximum(_iou_matrix(pred, boxes), _iou_matrix(anchor, boxes))
        d2 = np.array(
            [t._kf.distance(boxes) if t._kf is not None else np.full(len(idx), _GATE) for t in tracks]
        )
        # Height ratio: one box around two people, or a person's head alone, is not the person.
        ratio = np.abs(
            np.log((boxes[None, :, 3] - boxes[None, :, 1]) / (pred[:, None, 3] - pred[:, None, 1]))
        )
        same = np.array([[_same_object(t.label, dets[i].label) for i in idx] for t in tracks])
        ok = same & ((d2 <= _GATE) | (overlap >= 0.3)) & (ratio <= np.log(1.8))
        cost = 0.5 * np.minimum(d2 / _GATE, 1.0) + 0.5 * (1.0 - overlap) + 0.25 * ratio
        # Colours: 1 − histogram intersection of the track's signature and the box's (0 when
        # either is unknown). Weighted high: on the annotated clips it is what keeps a pair
        # walking side by side apart when their boxes touch.
        have = [r for r, t in enumerate(tracks) if t._look is not None]
        cols = [c for c, i in enumerate(idx) if looks[i][0] is not None]
        if have and cols:
            a = np.array([tracks[r]._look for r in have])
            b = np.array([looks[idx[c]][0] for c in cols])
            unlike = 1.0 - np.minimum(a[:, None, :], b[None, :, :]).sum(axis=2)
            cost[np.ix_(have, cols)] += self.config.appearance_weight * unlike
        cost = np.where(ok, np.round(cost, 6), _NO_MATCH)
        rows, cols = min_cost_assignment(cost)
        return [(tracks[r], idx[c]) for r, c in zip(rows, cols, strict=True) if cost[r, c] < _NO_MATCH]

    def _observe(self, t: Track, d: Detection, now: datetime, look: tuple[np.ndarray | None, bool]) -> None:
        f, clean = look
        if f is not None and (clean or t._look is None):
            # Only a box nobody else stands in teaches the track its colours.
            t._look = f if t._look is None else 0.8 * t._look + 0.2 * f
        if t._kf is None:
            t._kf, t._kf_at = _Kalman(d.bbox), now
        jump = (d.bbox[3] - d.bbox[1]) / max(float(t._kf.x[3]), 1e-6)
        # Three odd boxes in a row are no glitch: the object changed (sat down, came closer). A box
        # cut by the frame's edge grows and shrinks as its owner walks in or out: no glitch either.
        t.reliable = (
            1.0 / self.config.max_jump <= jump <= self.config.max_jump
            or t._jumps >= 2
            or _at_edge(d.bbox)
            or _at_edge(t.box)
        )
        t._jumps = 0 if t.reliable else t._jumps + 1
        if t.reliable:
            t._kf.update(d.bbox)
        t.velocity = (float(t._kf.x[4]), float(t._kf.x[5]))
        t.box = d.bbox
        t.last_seen = now
        t.hits += 1
        t.scores.append(d.score)
        t.labels_seen[d.label] = t.labels_seen.get(d.label, 0) + 1
        t.label = max(sorted(t.labels_seen), key=lambda k: t.labels_seen[k])
        t.path.append((now, bottom_centre(d.bbox)))
        t.seen_now = True
        if not t.reliable:
            return
        # In widths of the object, from the centre (a foot cut off by the frame edge moves little
        # while its owner walks in): a cone jitters a tenth of its width, a person walks metres.
        origin = t._origin or centre(d.bbox)
        c = centre(d.bbox)
        # A few pixels of jitter are a whole width of a far cone: never less than 2 % of the frame.
        width = max(d.bbox[2] - d.bbox[0], 0.02)
        t.travelled = max(t.travelled, ((c[0] - origin[0]) ** 2 + (c[1] - origin[1]) ** 2) ** 0.5 / width)
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
                if inside:
                    t.zone_hits[name] = t.zone_hits.get(name, 0) + 1
                continue
            streak = t._zone_streak.get(name, 0) + 1
            # A new track decides at once: it has no membership to keep yet.
            if streak >= self.config.zone_inertia or t.hits == 1:
                t._zone_streak[name] = 0
                if inside:
                    t.zones[name] = now
                    t.zone_hits[name] = streak
                else:
                    del t.zones[name]
                    t.zone_hits.pop(name, None)
            else:
                t._zone_streak[name] = streak

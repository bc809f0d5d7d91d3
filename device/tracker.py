"""Tracks: one stable id per object across frames, a stationary state, zone membership.

A small SORT/ByteTrack-style tracker in code we own, chosen by measurement (bench/tracking.py on
the annotated ground truth in tests/data/tracking). Split by idea: the motion model of a track
(device/motion.py, a Kalman filter), what an object looks like (device/appearance.py, colour
signatures of torso and legs), which detection is which track (device/association.py, one optimal
assignment per stage), the track and its state (device/track.py); this module is the lifecycle —
the cascade (tracks seen in the last three detector runs, `recent_s`, first; then the lost ones,
re-found near where their motion says, within a window), births, what an observation teaches a
track, stationary objects held through misses (a parked car hidden by a bus is the same car),
static clutter, zones, expiry. Measured and not kept: see bench/RESULTS.md ("tried" table).

Times are the frames' timestamps, so a file processed faster than real time behaves exactly as
the live camera would. Ties never depend on the order the model lists its boxes: detections are
sorted by position first, and the assignment cost is rounded.
"""

import itertools
from collections.abc import Iterable, Sequence
from datetime import datetime

import numpy as np

from device.appearance import Look, looks_of, unlike
from device.association import dedupe, match
from device.detector import Detection
from device.geometry import Box, Point, bottom_centre, centre, iou, point_in_polygon
from device.kalman import Kalman
from device.track import VEHICLES, State, Track, TrackerConfig

__all__ = ["VEHICLES", "State", "Track", "Tracker", "TrackerConfig", "dedupe"]


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
        looks = looks_of(dets, image)
        for t in self.tracks:
            t.seen_now = False
            self._predict(t, now)
        recent: list[Track] = []
        lost: list[Track] = []
        for t in self.tracks:
            (recent if self._recent(t, now) else lost).append(t)
        # Tracks seen within recent_s take their boxes first; lost tracks then get a
        # chance at the rest, re-identified where their motion predicts and by their colours.
        w = self.config.appearance_weight
        pairs = match(recent, list(range(len(dets))), dets, looks, w)
        taken = {i for _, i in pairs}
        pairs += match(lost, [i for i in range(len(dets)) if i not in taken], dets, looks, w)
        matched_tracks = {id(t) for t, _ in pairs}
        matched_dets = {i for _, i in pairs}
        for t, i in pairs:
            self._observe(t, dets[i], now, looks[i])
        self._adopt([t for t, _ in pairs if t.hits == self.config.min_hits])
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
            t._kf, t._kf_at = Kalman(d.bbox), now
            t._look = looks[i][0]
            self._update_zones(t, now)
            self.tracks.append(t)
            matched_tracks.add(id(t))
        self.tracks = [t for t in self.tracks if id(t) in matched_tracks or not self._expired(t, now)]
        self._remember_clutter(now)
        return self.tracks

    def _adopt(self, confirmed: list[Track]) -> None:
        """A track confirmed just now that continues a lost one takes the lost one's id.

        Three sightings say more than one: where the new track started (against where the lost
        one's motion led, within `adopt_reach` widths, of a like height) and its colours (no more
        than `adopt_unlike` apart) decide, the best pairs first. Unconfirmed tracks are reported
        to no one, so the person simply keeps the id they had before the detector lost them."""
        cfg = self.config
        pairs: list[tuple[float, int, Track, Track]] = []
        for new in confirmed:
            for old in self.tracks:
                gap = (new.first_seen - old.last_seen).total_seconds()
                if old.seen_now or not old.confirmed or not 0 < gap <= cfg.keep_moving_s:
                    continue
                (ox, oy), (vx, vy) = centre(old.box), old.velocity
                nx, ny = new._origin or centre(new.box)
                reach = ((nx - ox - vx * gap) ** 2 + (ny - oy - vy * gap) ** 2) ** 0.5
                reach /= max(old.box[2] - old.box[0], 1e-6)
                height = (new.box[3] - new.box[1]) / max(old.box[3] - old.box[1], 1e-6)
                apart = 0.0
                if old._look is not None and new._look is not None:
                    apart = float(unlike(old._look[None, :], new._look[None, :])[0, 0])
                if (
                    new.label == old.label
                    and reach <= cfg.adopt_reach
                    and 1 / 1.5 <= height <= 1.5
                    and apart <= cfg.adopt_unlike
                ):
                    pairs.append((round(reach / cfg.adopt_reach + apart, 6), new.id, new, old))
        taken: set[int] = set()
        for _, _, new, old in sorted(pairs, key=lambda p: (p[0], p[1])):
            if id(new) in taken or id(old) in taken:
                continue
            taken |= {id(new), id(old)}
            new.id = old.id
            self.tracks.remove(old)

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
            if same:
                spots = [s for s in spots if s not in same]
            spots.append((t.label, t.box, since, now))
        self.static_spots = spots[-256:]  # bounded: a camera sees a handful of such things

    def _predict(self, t: Track, now: datetime) -> None:
        if t._kf is None or t._kf_at is None:
            return
        dt = (now - t._kf_at).total_seconds()
        unseen = (now - t.last_seen).total_seconds()
        if unseen > self.config.recent_s or t.stationary_s(t.last_seen) >= self.config.stop_after_s:
            # Lost, or at rest: the last velocity is a poor guess for long; let it fade.
            t._kf.fade(0.5 ** max(dt, 0.0))
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

    def _observe(self, t: Track, d: Detection, now: datetime, look: Look) -> None:
        f, clean = look
        if f is not None and (clean or t._look is None):
            # Only a box nobody else stands in teaches the track its colours.
            t._look = f if t._look is None else 0.8 * t._look + 0.2 * f
        if t._kf is None:
            t._kf, t._kf_at = Kalman(d.bbox), now
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

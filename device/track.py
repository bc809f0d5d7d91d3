"""A track: one object followed across frames, its settings, and what it is doing now.

The state that outlives a detector run (stationary since when, zones entered, how far it ever
moved, static clutter) lives here; how detections become tracks is device/tracker.py.
"""

import statistics
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import numpy as np

from device.geometry import Box, Point, bottom_centre
from device.kalman import Kalman

State = Literal["moving", "stopped", "parked"]

# Parked vehicles are what docs/lessons.md #2 is about: hidden for a while, still the same car.
VEHICLES = frozenset({"car", "truck", "bus", "motorcycle", "bicycle"})


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
    # A track confirmed where a lost one (unseen ≤ keep_moving_s) was heading, within this many
    # of its widths and with colours this much alike at most, is that one (Tracker._adopt).
    # Measured on vtest (bench/RESULTS.md): 3-4 widths and 0.5-0.7 all alike.
    adopt_reach: float = 3.0
    adopt_unlike: float = 0.5


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
    _kf: Kalman | None = None
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

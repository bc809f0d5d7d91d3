"""Rules: tracked objects in zones and across lines → violations, each with a start and an end.

Every rule keeps one small state machine per key (the zone for `intrusion` and `crowd`, the track
for the others): the condition must hold for the rule's duration before a violation starts, and
must stay false for a grace period before it ends, so a detection that blinks for a few frames
neither ends a violation nor starts a second one. A parked car is one track for as long as it
stays (the tracker re-attaches it), so it is one violation.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from device.geometry import Box, Point, segments_cross, side_of_line, union_box
from device.tracker import Track
from matthan_wire.config import (
    AnyRule,
    CameraConfig,
    CrowdRule,
    EncroachmentRule,
    IllegalParkingRule,
    IntrusionRule,
    Line,
    LoiteringRule,
    RuleType,
    WrongWayRule,
    Zone,
    rule_name,
)

# Seconds the condition must be false before a violation ends (absorbs blinking detections).
END_GRACE_S = 3.0
# A person unseen this long no longer counts as present (stationary vehicles are kept longer:
# a passer-by or headlights hide them, they have not left).
PRESENT_S = 2.0
# A wrong-way crossing is an instant; its event spans the crossing and this long after it.
WRONG_WAY_HOLD_S = 2.0
# Distance from a line (normalised) inside which the side of an object is not trusted.
LINE_MARGIN = 0.01
# A track that appears within this time and distance of where one was lost takes over its side of
# a line (docs/lessons.md #4: a trajectory rule must survive id switches). Longer than the tracker
# re-finds a lost person itself (TrackerConfig.keep_moving_s) plus the hits to confirm a new one.
HANDOVER_S = 4.0
HANDOVER_DIST = 0.2
_LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)

_DIRECTIONS: dict[str, tuple[float, float]] = {
    "up": (0, -1),
    "down": (0, 1),
    "left": (-1, 0),
    "right": (1, 0),
}


@dataclass(frozen=True)
class Violation:
    event_id: str
    rule: str
    type: RuleType
    place: str
    labels: tuple[str, ...]
    object_count: int
    score: float
    bbox: Box | None
    started_at: datetime
    ended_at: datetime | None
    track_ids: tuple[int, ...]


@dataclass(frozen=True)
class Change:
    phase: Literal["start", "end"]
    violation: Violation


@dataclass
class _KeyState:
    first_true: datetime | None = None
    last_true: datetime | None = None
    evidence: datetime | None = None  # when the objects involved were last actually seen
    active: Violation | None = None


def schedule_active(schedule: Sequence[str] | None, local: datetime) -> bool:
    """True when `local` (device local time) falls in one of the HH:MM-HH:MM ranges."""
    if not schedule:
        return True
    minute = local.hour * 60 + local.minute
    for entry in schedule:
        a, b = entry.split("-")
        start = int(a[:2]) * 60 + int(a[3:])
        end = int(b[:2]) * 60 + int(b[3:])
        if (
            start == end
            or (start < end and start <= minute < end)
            or (start > end and (minute >= start or minute < end))
        ):
            return True
    return False


class _Rule:
    """One configured rule on one zone or line."""

    def __init__(self, place: Zone | Line, rule: AnyRule) -> None:
        self.place = place
        self.rule = rule
        self.name = rule_name(place, rule)
        self.keys: dict[object, _KeyState] = {}
        self.cooldown_until: dict[object, datetime] = {}
        # wrong_way: each track's last trusted side of the line, and tracks already reported.
        self.sides: dict[int, tuple[float, Point, datetime]] = {}
        self.crossed: dict[int, datetime] = {}
        # loitering: each track's dwell (entered at, where last seen inside, when), kept a moment
        # after the track is lost so a new id for the same person continues the dwell.
        self.dwell: dict[int, tuple[datetime, Point, datetime, bool]] = {}  # …, standing
        self.alias: dict[int, int] = {}  # new track id → the key of the track it continues

    @property
    def min_duration_s(self) -> float:
        if isinstance(self.rule, IntrusionRule | CrowdRule):
            return self.rule.min_duration_s
        return 0.0  # per-track rules measure the dwell on the track itself

    def _wanted(self, t: Track, now: datetime) -> bool:
        if not t.confirmed or t.label not in self.rule.labels:
            return False
        if self.rule.min_score is not None and t.median_score < self.rule.min_score:
            return False
        # Cones and poles read as "person" neither intrude, loiter, crowd nor cross a line;
        # parking and encroachment are about objects at rest, so clutter is theirs to judge.
        return isinstance(self.rule, IllegalParkingRule | EncroachmentRule) or not t.is_clutter(now)

    def _inside(self, t: Track) -> bool:
        """In the zone, seen there on enough detector runs since entering (a foot that glitches
        in for a frame or two is no entry)."""
        zone = self.place
        assert isinstance(zone, Zone)
        return zone.name in t.zones and t.zone_hits.get(zone.name, 0) >= zone.min_inside_frames

    def holding(self, now: datetime, tracks: list[Track]) -> dict[object, list[Track]]:
        """The keys whose condition holds now, with the tracks that make it hold."""
        r = self.rule
        if isinstance(r, WrongWayRule):
            return self._wrong_way(now, tracks)
        zone = self.place.name
        inside = [t for t in tracks if self._wanted(t, now) and self._inside(t)]
        if isinstance(r, IllegalParkingRule | EncroachmentRule):
            out: dict[object, list[Track]] = {}
            for t in inside:
                entered = t.zones[zone]
                still_from = max(t.still_since or now, entered)
                if (now - still_from).total_seconds() >= r.min_duration_s:
                    out[t.id] = [t]
            return out
        if isinstance(r, LoiteringRule):
            present = [t for t in inside if (now - t.last_seen).total_seconds() <= PRESENT_S]
            alive = {t.id for t in tracks}
            seen = {t.id for t in tracks if t.seen_now}
            since = {t.id: self._dwell_since(t, now, seen) for t in present}
            self.alias = {k: v for k, v in self.alias.items() if k in alive}
            # The violation stays keyed by the first id: a new id for the same person continues
            # it, never starts a second one.
            return {
                self.alias.get(t.id, t.id): [t]
                for t in present
                if (now - since[t.id]).total_seconds() >= r.min_duration_s
            }
        # Counted: the objects of the latest detector run. A track just lost lingers a moment for
        # re-matching; counting it too would count a person twice when the id switches.
        present = [t for t in inside if t.seen_now]
        if isinstance(r, CrowdRule):
            return {zone: present} if len(present) >= r.min_count else {}
        return {zone: present} if present else {}  # intrusion

    def _dwell_since(self, t: Track, now: datetime, seen: set[int]) -> datetime:
        """When this person's stay began: their entry, or that of the standing person whose track
        was lost a moment ago right where this new track appeared (the same person, new id)."""
        zone = self.place.name
        for tid in [k for k, (_, _, at, _) in self.dwell.items() if _age(now, at) > HANDOVER_S]:
            del self.dwell[tid]
        since = t.zones[zone]
        if t.id in self.dwell:
            since = min(since, self.dwell[t.id][0])
        elif _age(now, t.first_seen) <= HANDOVER_S:
            near: tuple[float, int] | None = None
            for tid, (_, point, at, standing) in self.dwell.items():
                # Only someone standing leaves a stay to take over; a walker's place is soon
                # someone else's.
                if tid in seen or at > t.first_seen or not standing:
                    continue
                d = ((point[0] - t.point[0]) ** 2 + (point[1] - t.point[1]) ** 2) ** 0.5
                # Where they stood, within half a body height: a passer-by is elsewhere.
                if d <= 0.5 * (t.box[3] - t.box[1]) and (near is None or (d, tid) < near):
                    near = (d, tid)
            if near is not None:
                since = min(since, self.dwell.pop(near[1])[0])
                self.alias[t.id] = self.alias.pop(near[1], near[1])
        if t.seen_now:
            self.dwell[t.id] = (since, t.point, now, t.state(now) != "moving")
        return since

    def _wrong_way(self, now: datetime, tracks: list[Track]) -> dict[object, list[Track]]:
        assert isinstance(self.rule, WrongWayRule) and isinstance(self.place, Line)
        a, b = self.place.points
        allowed = _DIRECTIONS[self.rule.direction]
        alive = {t.id for t in tracks}
        seen = {t.id for t in tracks if t.seen_now}
        # A lost track's side is kept a moment for the track that may replace it (an id switch).
        for tid in [
            k for k, (_, _, at) in self.sides.items() if k not in alive and _age(now, at) > HANDOVER_S
        ]:
            del self.sides[tid]
        for tid in [k for k in self.crossed if k not in alive and k not in self.sides]:
            del self.crossed[tid]
        out: dict[object, list[Track]] = {}
        for t in tracks:
            if not self._wanted(t, now):
                continue
            if t.seen_now and t.reliable:
                p = t.point
                side = side_of_line(p, a, b)
                length = ((b[0] - a[0]) ** 2 + (b[1] - a[1]) ** 2) ** 0.5
                if abs(side) / length >= LINE_MARGIN:
                    before = self.sides.get(t.id) or self._adopt(t, now, seen)
                    # Compared with the last trusted side, not the last frame: a stop on the line
                    # or a few frames of jitter across it do not lose the crossing.
                    if before is not None and before[0] * side < 0 and segments_cross(before[1], p, a, b):
                        move = (p[0] - before[1][0], p[1] - before[1][1])
                        if move[0] * allowed[0] + move[1] * allowed[1] < 0 and t.id not in self.crossed:
                            self.crossed[t.id] = now
                    self.sides[t.id] = (side, p, now)
            at = self.crossed.get(t.id)
            if at is not None and (now - at).total_seconds() <= WRONG_WAY_HOLD_S:
                out[t.id] = [t]
        return out

    def _adopt(self, t: Track, now: datetime, seen: set[int]) -> tuple[float, Point, datetime] | None:
        """The last side of a track lost near here a moment ago: the same object under a new id.
        What it already crossed stays reported under its old id."""
        near: tuple[float, int] | None = None
        for tid, (_, point, at) in self.sides.items():
            if tid == t.id or tid in seen or _age(now, at) > HANDOVER_S:
                continue
            d = ((point[0] - t.point[0]) ** 2 + (point[1] - t.point[1]) ** 2) ** 0.5
            if d <= HANDOVER_DIST and (near is None or d < near[0]):
                near = (d, tid)
        if near is None:
            return None
        if near[1] in self.crossed:
            self.crossed[t.id] = _LONG_AGO
        return self.sides.pop(near[1])


def _age(now: datetime, at: datetime) -> float:
    return (now - at).total_seconds()


class RuleEngine:
    def __init__(self, camera: CameraConfig, timezone: str = "UTC") -> None:
        self.tz = ZoneInfo(timezone)
        self.rules: list[_Rule] = []
        self.set_camera(camera)

    def set_camera(self, camera: CameraConfig) -> None:
        """Hot reload: rules that survive (same name and definition) keep their state."""
        old = {r.name: r for r in self.rules}
        rules: list[_Rule] = []
        places: list[Zone | Line] = [*camera.zones, *camera.lines]
        for place in places:
            for rule in place.rules:
                name = rule_name(place, rule)
                prev = old.get(name)
                if prev is not None and prev.rule == rule and prev.place == place:
                    rules.append(prev)
                else:
                    rules.append(_Rule(place, rule))
        self._dropped = [r for r in self.rules if r not in rules]
        self.rules = rules

    @property
    def active(self) -> list[Violation]:
        return [st.active for r in self.rules for st in r.keys.values() if st.active is not None]

    def update(self, now: datetime, tracks: list[Track]) -> list[Change]:
        changes: list[Change] = []
        # Rules removed by a reload end their open violations now rather than never.
        for r in self._dropped:
            changes += [self._end(st, now) for st in r.keys.values() if st.active is not None]
        self._dropped = []
        local = now.astimezone(self.tz)
        for r in self.rules:
            for key in [k for k, until in r.cooldown_until.items() if until <= now]:
                del r.cooldown_until[key]
            on = schedule_active(r.rule.schedule, local)
            holding = r.holding(now, tracks) if on else {}
            for key, involved in holding.items():
                st = r.keys.setdefault(key, _KeyState())
                if st.last_true is None or (now - st.last_true).total_seconds() > END_GRACE_S:
                    st.first_true = now
                st.last_true = now
                st.evidence = max(t.last_seen for t in involved) if involved else now
                if st.active is None:
                    assert st.first_true is not None
                    due = (now - st.first_true).total_seconds() >= r.min_duration_s
                    cooling = key in r.cooldown_until and now < r.cooldown_until[key]
                    if due and not cooling:
                        st.active = self._violation(r, involved, now)
                        changes.append(Change("start", st.active))
                else:
                    st.active = replace(
                        st.active,
                        object_count=max(st.active.object_count, len(involved)),
                        score=max(st.active.score, _score(involved)),
                        track_ids=tuple(sorted(set(st.active.track_ids) | {t.id for t in involved})),
                    )
            for key in list(r.keys):
                st = r.keys[key]
                if key in holding or st.last_true is None:
                    continue
                if (now - st.last_true).total_seconds() > END_GRACE_S or not on:
                    if st.active is not None:
                        changes.append(self._end(st, now))
                        r.cooldown_until[key] = now + timedelta(seconds=r.rule.cooldown_s)
                    del r.keys[key]
        return changes

    def close(self, now: datetime) -> list[Change]:
        """End every open violation (the source ended or the camera stops)."""
        changes = [self._end(st, now) for r in self.rules for st in r.keys.values() if st.active is not None]
        for r in self.rules:
            r.keys.clear()
        return changes

    def _end(self, st: _KeyState, now: datetime) -> Change:
        assert st.active is not None
        v = st.active
        ended = min(now, max(v.started_at, st.evidence or st.last_true or now))
        st.active = None
        return Change("end", replace(v, ended_at=ended))

    def _violation(self, r: _Rule, involved: list[Track], now: datetime) -> Violation:
        boxes = [t.box for t in involved]
        return Violation(
            event_id=str(uuid.uuid4()),
            rule=r.name,
            type=r.rule.type,
            place=r.place.name,
            labels=tuple(sorted({t.label for t in involved})) or tuple(r.rule.labels),
            object_count=len(involved),
            score=_score(involved),
            bbox=union_box(boxes) if boxes else None,
            started_at=now,
            ended_at=None,
            track_ids=tuple(sorted(t.id for t in involved)),
        )


def _score(tracks: list[Track]) -> float:
    return round(max((t.median_score for t in tracks), default=0.0), 4)

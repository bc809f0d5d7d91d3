"""The tracker on scripted detections: ids, confirmation, stationary state, re-attach, zones."""

from datetime import UTC, datetime, timedelta

from device.detector import Detection
from device.tracker import Tracker

T0 = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
STEP = 0.2  # detect at 5 fps


def at(i: int) -> datetime:
    return T0 + timedelta(seconds=i * STEP)


def person(x: float, y: float = 0.5, score: float = 0.7) -> Detection:
    return Detection("person", score, (x, y - 0.2, x + 0.06, y))


def car(x: float = 0.5, y: float = 0.5, score: float = 0.8) -> Detection:
    return Detection("car", score, (x, y - 0.1, x + 0.15, y))


def test_a_walking_person_keeps_one_id_and_counts_after_three_frames() -> None:
    tr = Tracker()
    ids = set()
    for i in range(30):
        tracks = tr.update(at(i), [person(0.1 + 0.01 * i)])
        assert len(tracks) == 1
        ids.add(tracks[0].id)
        assert tracks[0].confirmed == (i >= 2)
    assert len(ids) == 1
    assert tracks[0].state(at(29)) == "moving"


def test_two_people_passing_each_other_keep_their_ids() -> None:
    tr = Tracker()
    for i in range(20):
        tracks = tr.update(at(i), [person(0.1 + 0.02 * i, 0.5), person(0.7 - 0.02 * i, 0.8)])
    by_y = {round(t.box[3], 1): t.id for t in tracks}
    assert len(tracks) == 2 and by_y[0.5] != by_y[0.8]
    assert sorted(t.id for t in tracks) == [1, 2]


def test_a_box_inside_a_better_one_is_the_same_person() -> None:
    tr = Tracker()
    whole = person(0.3)
    upper = Detection("person", 0.55, (0.305, 0.31, 0.355, 0.42))
    tracks = tr.update(at(0), [whole, upper])
    assert len(tracks) == 1 and tracks[0].box == whole.bbox


def test_stationary_state_survives_misses_and_the_car_is_re_attached() -> None:
    tr = Tracker()
    for i in range(5):  # drives in
        tr.update(at(i), [car(0.1 + 0.05 * i)])
    (t,) = tr.tracks
    assert t.state(at(4)) == "moving"
    for i in range(5, 120):  # stands, with a detection blinking out every few frames
        tr.update(at(i), [car(0.3 + (0.004 if i % 2 else 0.0))] if i % 4 else [])
    assert t.state(at(14)) == "stopped" and t.state(at(119)) == "parked"
    still_since = t.still_since
    # Hidden for 30 s (a bus in front, headlights): kept, and the same car when seen again.
    for i in range(120, 270):
        assert tr.update(at(i), []) == [t]
    tracks = tr.update(at(270), [car(0.305)])
    assert tracks == [t] and t.still_since == still_since and t.state(at(270)) == "parked"


def test_a_parked_car_that_leaves_becomes_moving_again() -> None:
    tr = Tracker()
    for i in range(60):
        tr.update(at(i), [car(0.3)])
    (t,) = tr.tracks
    assert t.state(at(59)) == "stopped"
    for i in range(60, 66):
        tr.update(at(i), [car(0.3 + 0.03 * (i - 59))])
    assert t.state(at(65)) == "moving" and len(tr.tracks) == 1


def test_a_lost_person_is_forgotten_soon() -> None:
    tr = Tracker()
    for i in range(5):
        tr.update(at(i), [person(0.1 + 0.02 * i)])
    tr.update(at(12), [])  # 1.6 s unseen: kept for re-matching
    assert len(tr.tracks) == 1
    tr.update(at(15), [])  # 2.2 s: gone
    assert tr.tracks == []


def test_no_detector_run_changes_nothing() -> None:
    tr = Tracker()
    for i in range(4):
        tr.update(at(i), [person(0.2)])
    before = [(t.id, t.box, t.last_seen) for t in tr.tracks]
    assert [(t.id, t.box, t.last_seen) for t in tr.update(at(40), None)] == before


def test_zone_membership_by_the_feet_with_inertia() -> None:
    zone = [(0.0, 0.6), (1.0, 0.6), (1.0, 1.0), (0.0, 1.0)]
    tr = Tracker(zones={"curb": zone})
    tr.update(at(0), [person(0.5, y=0.63)])
    (t,) = tr.tracks
    assert "curb" in t.zones and t.zones["curb"] == at(0)
    tr.update(at(1), [person(0.5, y=0.58)])  # one box whose feet jump out: still inside
    assert "curb" in t.zones
    tr.update(at(2), [person(0.5, y=0.63)])
    tr.update(at(3), [person(0.5, y=0.58)])
    tr.update(at(4), [person(0.5, y=0.57)])  # two in a row: left
    assert "curb" not in t.zones
    # Its head is in the zone's rows but its feet are not: not inside.
    tr2 = Tracker(zones={"curb": zone})
    tr2.update(at(0), [Detection("person", 0.7, (0.5, 0.5, 0.56, 0.58))])
    assert tr2.tracks[0].zones == {}

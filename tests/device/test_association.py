"""Association alone: the gates (label, height, distance) and the optimal pairing."""

from datetime import UTC, datetime

import numpy as np

from device.assignment import min_cost_assignment
from device.association import _NO_MATCH, _assign, dedupe, match
from device.detector import Detection
from device.kalman import Kalman
from device.track import Track

T0 = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


def _track(tid: int, box: tuple[float, float, float, float], label: str = "person") -> Track:
    t = Track(tid, label, box, T0, T0)
    t._kf, t._kf_at = Kalman(box), T0
    return t


def test_each_box_goes_to_the_track_it_continues() -> None:
    a, b = _track(1, (0.10, 0.3, 0.16, 0.5)), _track(2, (0.40, 0.3, 0.46, 0.5))
    dets = [
        Detection("person", 0.8, (0.41, 0.3, 0.47, 0.5)),
        Detection("person", 0.8, (0.11, 0.3, 0.17, 0.5)),
    ]
    pairs = match([a, b], [0, 1], dets, [(None, False)] * 2, 2.0)
    assert sorted((t.id, i) for t, i in pairs) == [(1, 1), (2, 0)]


def test_another_label_a_doubled_height_or_a_far_box_never_match() -> None:
    t = _track(1, (0.10, 0.3, 0.16, 0.5))
    dets = [
        Detection("car", 0.9, (0.10, 0.3, 0.16, 0.5)),
        Detection("person", 0.9, (0.10, 0.1, 0.16, 0.5)),  # twice as tall
        Detection("person", 0.9, (0.60, 0.3, 0.66, 0.5)),  # half the frame away
    ]
    assert match([t], [0, 1, 2], dets, [(None, False)] * 3, 2.0) == []


def test_a_car_read_as_a_truck_is_the_same_object_but_a_half_box_is_dropped() -> None:
    car = _track(1, (0.1, 0.4, 0.3, 0.5), "car")
    truck = Detection("truck", 0.7, (0.1, 0.4, 0.3, 0.5))
    assert [tr.id for tr, _ in match([car], [0], [truck], [(None, False)], 2.0)] == [1]
    whole = Detection("person", 0.8, (0.3, 0.3, 0.36, 0.5))
    upper = Detection("person", 0.6, (0.305, 0.31, 0.355, 0.42))
    assert dedupe([upper, whole]) == [whole]


def test_the_shortcut_assigns_what_the_full_method_does() -> None:
    """When each row's cheapest column is its own the assignment is taken at once; on any matrix
    (ties, rows or columns that cannot match, more rows than columns) the pairs are the full
    method's."""
    rng = np.random.default_rng(7)
    shortcuts = 0
    for _ in range(2000):
        n, m = (int(v) for v in rng.integers(1, 7, 2))
        cost = rng.integers(0, 6, (n, m)) / 4.0  # a coarse grid: ties are common
        cost[rng.random((n, m)) < 0.4] = _NO_MATCH
        rows, cols = min_cost_assignment(cost)
        full = [(r, c) for r, c in zip(rows, cols, strict=True) if cost[r, c] < _NO_MATCH]
        side = cost if n <= m else cost.T
        live = side.min(axis=1) < _NO_MATCH
        cheapest = side.argmin(axis=1)[live]
        alone = ((side == side.min(axis=1, keepdims=True)).sum(axis=1) == 1)[live]
        shortcuts += bool(alone.all() and len(set(cheapest.tolist())) == len(cheapest))
        assert _assign(cost) == full
    assert shortcuts > 500  # the shortcut itself was exercised, not only the fallback

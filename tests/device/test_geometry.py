"""Plane geometry on normalised coordinates."""

import pytest

from device.geometry import bottom_centre, containment, iou, point_in_polygon, segments_cross, union_box

SQUARE = [(0.2, 0.2), (0.8, 0.2), (0.8, 0.8), (0.2, 0.8)]
L_SHAPE = [(0.0, 0.0), (1.0, 0.0), (1.0, 0.3), (0.3, 0.3), (0.3, 1.0), (0.0, 1.0)]


def test_point_in_polygon() -> None:
    assert point_in_polygon((0.5, 0.5), SQUARE)
    assert not point_in_polygon((0.9, 0.5), SQUARE)
    assert point_in_polygon((0.1, 0.9), L_SHAPE)
    assert not point_in_polygon((0.6, 0.6), L_SHAPE)  # in the notch of the L


def test_boxes() -> None:
    a = (0.0, 0.0, 0.2, 0.2)
    assert iou(a, a) == pytest.approx(1.0)
    assert iou(a, (0.1, 0.0, 0.3, 0.2)) == pytest.approx(1 / 3)
    assert iou(a, (0.5, 0.5, 0.6, 0.6)) == 0.0
    assert containment(a, (0.05, 0.05, 0.1, 0.1)) == pytest.approx(1.0)
    assert bottom_centre((0.2, 0.1, 0.4, 0.9)) == pytest.approx((0.3, 0.9))
    assert union_box([a, (0.5, 0.5, 0.6, 0.7)]) == (0.0, 0.0, 0.6, 0.7)


def test_segments_cross() -> None:
    line = ((0.5, 0.0), (0.5, 1.0))
    assert segments_cross((0.4, 0.5), (0.6, 0.5), *line)
    assert not segments_cross((0.4, 0.5), (0.45, 0.5), *line)
    # Past the end of the line segment: no crossing.
    short = ((0.5, 0.0), (0.5, 0.3))
    assert not segments_cross((0.4, 0.5), (0.6, 0.5), *short)

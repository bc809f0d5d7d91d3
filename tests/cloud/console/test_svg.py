"""The console's inline SVG: charts keep gaps and scale to the data; the map keeps geometry."""

import re
from datetime import UTC, datetime, timedelta

from cloud.console.svg import MapPoint, Series, camera_map, line_chart

T0 = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


def _polylines(svg: str) -> list[list[tuple[float, float]]]:
    out = []
    for pts in re.findall(r'<polyline points="([^"]+)"', svg):
        pairs = [p.split(",") for p in pts.split()]
        out.append([(float(x), float(y)) for x, y in pairs])
    return out


def test_chart_breaks_the_line_where_the_device_was_silent() -> None:
    points: list[tuple[datetime, float | None]] = [
        (T0 + timedelta(minutes=i), float(v)) for i, v in enumerate([10, 20, 30])
    ]
    points += [(T0 + timedelta(minutes=3), None)]
    points += [(T0 + timedelta(minutes=4 + i), float(v)) for i, v in enumerate([40, 35])]
    svg = line_chart("CPU", "%", [Series("cpu", points)])
    runs = _polylines(svg)
    assert [len(r) for r in runs] == [3, 2]
    # Higher values are drawn higher (smaller y); time runs left to right.
    assert runs[0][0][1] > runs[0][2][1]
    assert runs[0][-1][0] < runs[1][0][0]
    assert "CPU — 35 %" in svg  # the latest value is in the title


def test_chart_axis_rounds_up_to_a_readable_maximum() -> None:
    svg = line_chart("disk", "MB", [Series("d", [(T0, 730.0), (T0 + timedelta(minutes=5), 410.0)])])
    labels = re.findall(r'class="axis">([0-9.]+)</text>', svg)
    assert labels == ["0", "500", "1000"]


def test_chart_without_history_says_so() -> None:
    assert "not enough history" in line_chart("t", "°C", [Series("t", [(T0, 50.0)])])


def test_map_keeps_relative_positions_and_escapes_labels() -> None:
    # Two cameras ~1 km apart east-west in Saigon, a third north of the first.
    pts = [
        MapPoint(10.7769, 106.7009, "a<b>", "ok", "/x"),
        MapPoint(10.7769, 106.7100, "east", "down", "/y"),
        MapPoint(10.7850, 106.7009, "north", "warn", "/z"),
    ]
    svg = camera_map(pts)
    assert "a&lt;b&gt;" in svg and "<b>" not in svg
    found = re.findall(r'<circle cx="([0-9.]+)" cy="([0-9.]+)".*?class="dot-label">([^<]+)<', svg)
    dots = {label: (float(x), float(y)) for x, y, label in found}
    assert dots["east"][0] > dots["a&lt;b&gt;"][0] and abs(dots["east"][1] - dots["a&lt;b&gt;"][1]) < 0.5
    assert dots["north"][1] < dots["a&lt;b&gt;"][1]
    # Equal distances on the ground are equal on the map: 0.0091° of longitude at 10.8° N
    # is 0.0091 × cos(10.8°) ≈ 0.00894° of latitude; north is 0.0081°.
    east = dots["east"][0] - dots["a&lt;b&gt;"][0]
    north = dots["a&lt;b&gt;"][1] - dots["north"][1]
    assert abs(east / north - 0.0091 * 0.98229 / 0.0081) < 0.01
    # Trouble is drawn on top (later in the document) of healthy dots.
    assert svg.index("dot-down") > svg.index("dot-ok")


def test_map_without_positions_says_so() -> None:
    assert "no camera has a position" in camera_map([])


def test_a_whole_district_keeps_names_in_tooltips_only() -> None:
    pts = [MapPoint(10.77 + i * 1e-4, 106.70, f"cam-{i}", "ok", "/d") for i in range(41)]
    svg = camera_map(pts)
    assert svg.count("<circle") == 41 and "dot-label" not in svg and "<title>cam-40</title>" in svg
    assert 'class="dot-label"' in camera_map(pts[:40])

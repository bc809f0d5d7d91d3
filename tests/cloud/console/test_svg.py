"""The console's inline SVG: charts keep gaps and scale to the data; the map keeps geometry."""

import re
from datetime import UTC, datetime, timedelta

from cloud.console.svg import Series, line_chart

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

"""Inline SVG for the console: health history charts (the maps are Leaflet, cloud/static/map.js).

Drawn on the server so a page needs no chart library. Output is markup for Jinja's `|safe`; every
text is escaped here.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from html import escape


@dataclass(frozen=True)
class Series:
    name: str
    points: Sequence[tuple[datetime, float | None]]  # None: a gap (device offline, camera down)
    colour: str = "#2563eb"


def _nice_max(value: float) -> float:
    """Round up to 1, 2 or 5 times a power of ten so the top gridline has a readable label."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return float(step * power)
    return float(10 * power)


def _fmt(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 10 or value == int(value) else f"{value:.1f}"


def line_chart(
    title: str, unit: str, series: Sequence[Series], zone: tzinfo = UTC, width: int = 560, height: int = 160
) -> str:
    """A time-series chart with gaps, a zero baseline and the latest value in the title.

    The time axis reads in `zone` (the district's clock, like the rest of the page).
    """
    left, right, top, bottom = 44, 10, 22, 22
    values = [v for s in series for _, v in s.points if v is not None]
    times = [t for s in series for t, _ in s.points]
    latest = next((v for _, v in reversed(series[0].points) if v is not None), None) if series else None
    head = f"{escape(title)}" + (f" — {_fmt(latest)} {escape(unit)}" if latest is not None else "")
    out = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
        f'preserveAspectRatio="xMidYMid meet">',
        f'<text x="{left}" y="14" class="chart-title">{head}</text>',
    ]
    if not values or len(times) < 2 or min(times) == max(times):
        out.append(
            f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" class="chart-empty">'
            "not enough history yet</text></svg>"
        )
        return "".join(out)
    t0, t1 = min(times), max(times)
    vmax = _nice_max(max(values))
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(t: datetime) -> float:
        return left + (t - t0).total_seconds() / (t1 - t0).total_seconds() * plot_w

    def y(v: float) -> float:
        return top + plot_h - max(0.0, v) / vmax * plot_h

    for frac in (0.0, 0.5, 1.0):
        gy = top + plot_h - frac * plot_h
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{gy:.1f}" y2="{gy:.1f}" class="grid"/>')
        out.append(
            f'<text x="{left - 4}" y="{gy + 4:.1f}" text-anchor="end" class="axis">{_fmt(vmax * frac)}</text>'
        )
    clock = "%H:%M:%S" if t1 - t0 < timedelta(minutes=10) else "%H:%M"
    if t1.astimezone(zone).date() != t0.astimezone(zone).date():
        clock = "%d/%m %H:%M"
    out.append(f'<text x="{left}" y="{height - 6}" class="axis">{t0.astimezone(zone).strftime(clock)}</text>')
    out.append(
        f'<text x="{width - right}" y="{height - 6}" text-anchor="end" class="axis">'
        f"{t1.astimezone(zone).strftime(clock)}</text>"
    )
    for s in series:
        runs: list[list[str]] = [[]]
        for t, v in s.points:
            if v is None:
                runs.append([])
            else:
                runs[-1].append(f"{x(t):.1f},{y(v):.1f}")
        for run in runs:
            if len(run) == 1:
                cx, cy = run[0].split(",")
                out.append(f'<circle cx="{cx}" cy="{cy}" r="2" fill="{s.colour}"/>')
            elif run:
                out.append(
                    f'<polyline points="{" ".join(run)}" fill="none" stroke="{s.colour}" stroke-width="1.6"/>'
                )
    if len(series) > 1:
        lx = left + 8
        for s in series:
            out.append(
                f'<text x="{lx}" y="{top + 12}" class="legend" fill="{s.colour}">{escape(s.name)}</text>'
            )
            lx += 8 * len(s.name) + 16
    out.append("</svg>")
    return "".join(out)

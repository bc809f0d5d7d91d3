"""The district's figures for the alert feed's summary and the report page: alerts per day by
category and ward, response times, false-alarm rates per rule. Pure functions over alert rows."""

import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta, tzinfo
from typing import Any

from cloud.console.views import OPEN_STATES, human_duration
from cloud.models import AlertRow


def response_time(row: AlertRow) -> timedelta | None:
    """From the alert's start to the first human action on it (acknowledge, resolve or dismiss)."""
    firsts = [t for t in (row.acknowledged_at, row.resolved_at) if t is not None]
    if row.state in ("resolved", "false_alarm", "acknowledged") and row.state_at is not None:
        firsts.append(row.state_at)
    return min(firsts) - row.started_at if firsts else None


@dataclass
class RuleStats:
    rule: str
    type: str
    total: int = 0
    judged: int = 0
    false_alarms: int = 0

    @property
    def rate(self) -> float | None:
        return self.false_alarms / self.judged if self.judged else None

    @property
    def rate_pct(self) -> str:
        return "–" if self.rate is None else f"{self.rate * 100:.0f} %"


@dataclass
class Stats:
    days: int
    total: int
    handled: int
    false_alarms: int
    judged: int
    median_response: str | None
    categories: list[str]
    per_day_category: list[tuple[str, dict[str, int]]]
    per_day_ward: list[tuple[str, dict[str, int]]]
    wards: list[dict[str, Any]]
    rules: list[RuleStats]

    @property
    def per_day(self) -> float:
        return self.total / self.days if self.days else 0.0

    @property
    def false_rate_pct(self) -> str:
        return "–" if not self.judged else f"{self.false_alarms / self.judged * 100:.0f} %"


def stats(rows: Sequence[AlertRow], days: int, zone: tzinfo) -> Stats:
    """The district's figures: alerts per day by category and ward, response time, false-alarm rate.

    Days are calendar days where the district is (an alert at 23:30 local belongs to that day,
    not to the next UTC one). camera_offline is a technical alert, counted like the others.
    """
    categories = ["security_order", "urban_order"]
    per_day: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(categories, 0))
    per_day_ward: dict[str, dict[str, int]] = defaultdict(dict)
    wards: dict[str, dict[str, Any]] = {}
    rules: dict[str, RuleStats] = {}
    responses: list[timedelta] = []
    ward_responses: dict[str, list[timedelta]] = defaultdict(list)
    for r in rows:
        day = r.started_at.astimezone(zone).date().isoformat()
        per_day[day][r.category] = per_day[day].get(r.category, 0) + 1
        per_day_ward[day][r.ward] = per_day_ward[day].get(r.ward, 0) + 1
        w = wards.setdefault(
            r.ward, {"ward": r.ward, "total": 0, "security_order": 0, "urban_order": 0, "open": 0}
        )
        w["total"] += 1
        w[r.category] = w.get(r.category, 0) + 1
        w["open"] += r.state in OPEN_STATES and r.state != "acknowledged"
        rs = rules.setdefault(r.rule, RuleStats(r.rule, r.type))
        rs.total += 1
        if r.state in ("resolved", "false_alarm"):
            rs.judged += 1
            rs.false_alarms += r.state == "false_alarm"
        rt = response_time(r)
        if rt is not None:
            responses.append(rt)
            ward_responses[r.ward].append(rt)
    for ward, w in wards.items():
        w["median_response"] = _median(ward_responses[ward])
    rule_list = sorted(rules.values(), key=lambda s: (-(s.rate or 0.0), -s.total, s.rule))
    return Stats(
        days=days,
        total=len(rows),
        handled=len(responses),
        false_alarms=sum(s.false_alarms for s in rules.values()),
        judged=sum(s.judged for s in rules.values()),
        median_response=_median(responses),
        categories=categories,
        per_day_category=sorted(per_day.items(), reverse=True),
        per_day_ward=sorted(per_day_ward.items(), reverse=True),
        wards=sorted(wards.values(), key=lambda w: (-w["total"], w["ward"])),
        rules=rule_list,
    )


def _median(spans: list[timedelta]) -> str | None:
    if not spans:
        return None
    return human_duration(timedelta(seconds=statistics.median(s.total_seconds() for s in spans)))

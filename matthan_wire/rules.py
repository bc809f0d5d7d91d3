"""What a camera watches for: zones (polygons) and lines on its frame, each with its rules
(intrusion, loitering, crowd, illegal parking, encroachment, wrong way), the category each rule's
alerts fall in, and the schedule a rule keeps.

Coordinates are normalised to the frame: x and y in [0, 1], origin top-left.
"""

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from matthan_wire.config_base import MAX_SECONDS, Strict, Title, absent
from matthan_wire.ids import MAX_LABELS, Id, Label, RuleName

Coord = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Point = tuple[Coord, Coord]

SECURITY_ORDER = "security_order"
URBAN_ORDER = "urban_order"

Category = Literal["security_order", "urban_order"]
RuleType = Literal[
    "intrusion",
    "loitering",
    "crowd",
    "illegal_parking",
    "encroachment",
    "wrong_way",
    "camera_offline",
    "camera_tamper",
]

CATEGORY_OF: dict[str, Category] = {
    "intrusion": "security_order",
    "loitering": "security_order",
    "crowd": "security_order",
    "camera_offline": "security_order",
    "camera_tamper": "security_order",
    "illegal_parking": "urban_order",
    "encroachment": "urban_order",
    "wrong_way": "urban_order",
}

_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


def _check_hours(text: str) -> str:
    if not _HOURS.match(text):
        raise ValueError(f"schedule entry {text!r} is not HH:MM-HH:MM (e.g. 22:00-06:00)")
    return text


HourRange = Annotated[str, AfterValidator(_check_hours)]

# How long an object must stay before a rule fires: required where the rule means nothing without
# it (loitering, parking), optional (0 = at once) where a single moment already counts.
Dwell = Annotated[float, Field(gt=0.0, le=MAX_SECONDS)]
OptionalDwell = Annotated[float, Field(ge=0.0, le=MAX_SECONDS)]


class _RuleBase(Strict):
    name: RuleName | None = None
    title: Title | None = Field(default=None, exclude_if=absent)
    labels: list[Label] = Field(min_length=1, max_length=MAX_LABELS)
    min_score: float | None = Field(default=None, ge=0.0, le=1.0)
    cooldown_s: float = Field(default=0.0, ge=0.0, le=MAX_SECONDS)
    # Local hours (device timezone) in which the rule is active; none means always.
    schedule: list[HourRange] | None = Field(default=None, max_length=24)

    @property
    def category(self) -> Category:
        return CATEGORY_OF[self.type]  # type: ignore[attr-defined]


class IntrusionRule(_RuleBase):
    type: Literal["intrusion"]
    min_duration_s: OptionalDwell = 0.0


class LoiteringRule(_RuleBase):
    type: Literal["loitering"]
    min_duration_s: Dwell


class CrowdRule(_RuleBase):
    type: Literal["crowd"]
    min_count: int = Field(ge=2, le=10_000)
    min_duration_s: OptionalDwell = 0.0


class IllegalParkingRule(_RuleBase):
    type: Literal["illegal_parking"]
    min_duration_s: Dwell


class EncroachmentRule(_RuleBase):
    type: Literal["encroachment"]
    min_duration_s: Dwell


class WrongWayRule(_RuleBase):
    type: Literal["wrong_way"]
    direction: Literal["up", "down", "left", "right"]


ZoneRule = Annotated[
    IntrusionRule | LoiteringRule | CrowdRule | IllegalParkingRule | EncroachmentRule,
    Field(discriminator="type"),
]
LineRule = Annotated[WrongWayRule, Field(discriminator="type")]
AnyRule = IntrusionRule | LoiteringRule | CrowdRule | IllegalParkingRule | EncroachmentRule | WrongWayRule


def _polygon_area(points: list[Point]) -> float:
    area = 0.0
    for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1], strict=True):
        area += x1 * y2 - x2 * y1
    return abs(area) / 2.0


class Zone(Strict):
    name: Id
    title: Title | None = Field(default=None, exclude_if=absent)
    polygon: list[Point] = Field(min_length=3, max_length=256)
    rules: list[ZoneRule] = Field(default_factory=list, max_length=32)
    # Detector runs an object must be seen inside since it entered before the zone's rules count
    # it: a box whose foot glitches into the zone for a frame or two is no entry. 3 is what a new
    # object needs to be confirmed anyway (0.4 s at 5 fps).
    min_inside_frames: int = Field(default=3, ge=1, le=50)

    @model_validator(mode="after")
    def _has_area(self) -> "Zone":
        if _polygon_area(self.polygon) < 1e-6:
            raise ValueError(f"zone {self.name!r}: polygon has no area (points in a line?)")
        return self


class Line(Strict):
    name: Id
    title: Title | None = Field(default=None, exclude_if=absent)
    points: list[Point] = Field(min_length=2, max_length=2)
    rules: list[LineRule] = Field(default_factory=list, max_length=32)

    @model_validator(mode="after")
    def _has_length(self) -> "Line":
        (x1, y1), (x2, y2) = self.points
        if abs(x1 - x2) + abs(y1 - y2) < 1e-6:
            raise ValueError(f"line {self.name!r}: both points are the same")
        return self


def rule_name(place: Zone | Line, rule: AnyRule) -> str:
    return rule.name or f"{place.name}.{rule.type}"

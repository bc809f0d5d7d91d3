"""Device configuration: what a technician writes in YAML and what the cloud sends as desired config.

Coordinates are normalised to the frame: x and y in [0, 1], origin top-left.
"""

import re
from collections.abc import Callable
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from matthan_wire.ids import INT32_MAX, MAX_LABELS, Id, Label, RuleName

Coord = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Point = tuple[Coord, Coord]

# Durations in a config (cooldowns, debounces, intervals): a week is already absurd.
MAX_SECONDS = 7 * 86400.0

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


class _Strict(BaseModel):
    # A desired config arrives over MQTT like any payload: every list and number is bounded, and
    # inf/NaN (1e400 parses as inf) are refused.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def absent(value: object) -> bool:
    """Fields added within v1 are left out when empty, so older strict readers never see them."""
    return value is None


# A name people read (any Unicode, e.g. Vietnamese "vỉa hè cửa phường"), beside the ASCII id.
Title = Annotated[str, Field(min_length=1, max_length=200)]


class Site(_Strict):
    """Where a camera stands: what an officer needs to go there without a lookup."""

    name: str = Field(min_length=1, max_length=200)
    address: str | None = Field(default=None, min_length=1, max_length=500)
    lat: float | None = Field(default=None, ge=-90.0, le=90.0)
    lon: float | None = Field(default=None, ge=-180.0, le=180.0)

    @model_validator(mode="after")
    def _position_whole(self) -> "Site":
        if (self.lat is None) != (self.lon is None):
            raise ValueError("site: lat and lon go together (both or neither)")
        return self


class _RuleBase(_Strict):
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
    min_duration_s: float = Field(default=0.0, ge=0.0, le=MAX_SECONDS)


class LoiteringRule(_RuleBase):
    type: Literal["loitering"]
    min_duration_s: float = Field(gt=0.0, le=MAX_SECONDS)


class CrowdRule(_RuleBase):
    type: Literal["crowd"]
    min_count: int = Field(ge=2, le=10_000)
    min_duration_s: float = Field(default=0.0, ge=0.0, le=MAX_SECONDS)


class IllegalParkingRule(_RuleBase):
    type: Literal["illegal_parking"]
    min_duration_s: float = Field(gt=0.0, le=MAX_SECONDS)


class EncroachmentRule(_RuleBase):
    type: Literal["encroachment"]
    min_duration_s: float = Field(gt=0.0, le=MAX_SECONDS)


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


class Zone(_Strict):
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


class Line(_Strict):
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


class DetectConfig(_Strict):
    fps: float = Field(default=5.0, gt=0.0, le=60.0)
    min_score: float = Field(default=0.5, ge=0.0, le=1.0)
    # Per-label floor, e.g. {person: 0.6}: generic models see people in bins and shadows.
    min_scores: dict[Label, Annotated[float, Field(ge=0.0, le=1.0)]] = Field(
        default_factory=dict, max_length=256
    )


class MotionConfig(_Strict):
    enabled: bool = True
    # Fraction of the downscaled frame that must change for the detector to run.
    min_area: float = Field(default=0.002, gt=0.0, lt=1.0)
    threshold: int = Field(default=25, ge=1, le=255)
    # Tracked objects are re-checked at this rate even without motion.
    recheck_s: float = Field(default=1.0, gt=0.0, le=MAX_SECONDS)


class RecordConfig(_Strict):
    enabled: bool = True
    pre_capture_s: float = Field(default=5.0, ge=0.0, le=60.0)
    post_capture_s: float = Field(default=5.0, ge=0.0, le=60.0)
    segment_s: float = Field(default=2.0, gt=0.0, le=60.0)


class TamperConfig(_Strict):
    """Camera tamper check (covered, blinded, defocused, moved) against the camera's own reference."""

    enabled: bool = True
    # How often the view is compared with the reference (on a 160 px grey frame).
    check_every_s: float = Field(default=1.0, ge=0.2, le=60.0)
    # Normal view needed to learn the reference before anything is judged (after start or a confirm).
    learn_s: float = Field(default=60.0, ge=2.0, le=3600.0)
    # A tampered view must last this long before the alert: a bus in front or headlights do not.
    persist_s: float = Field(default=60.0, ge=2.0, le=3600.0)
    # The view must be normal again this long before the alert ends.
    clear_s: float = Field(default=10.0, ge=1.0, le=3600.0)
    # Time constant with which the reference follows slow change (dusk, shadows, a parked car).
    adapt_s: float = Field(default=600.0, ge=10.0, le=86400.0)
    # A view shifted by more than this fraction of the frame counts as moved.
    min_shift: float = Field(default=0.04, gt=0.0, le=0.5)
    # Sharpness below this fraction of the reference's counts as defocused.
    defocus_ratio: float = Field(default=0.35, gt=0.0, lt=1.0)
    # Contrast below this fraction of the reference's counts as covered (or blinded when bright).
    contrast_ratio: float = Field(default=0.25, gt=0.0, lt=1.0)


InputRole = Literal["detect", "record"]
# Sources the capture opens itself and holds: nobody else can open them a second time.
_HELD_PREFIXES = ("picamera2:", "/dev/")


def _is_none(value: object) -> bool:
    return value is None


def _held(source: str) -> bool:
    return source.startswith(_HELD_PREFIXES) or source.isdigit()


class CameraInput(_Strict):
    """One stream of a camera and what it is used for: `detect` (the low-resolution sub-stream the
    detector reads) and/or `record` (the main stream the evidence clips are cut from)."""

    source: str = Field(min_length=1, max_length=2048)
    roles: list[InputRole] = Field(min_length=1, max_length=2)

    @model_validator(mode="after")
    def _roles_once(self) -> "CameraInput":
        if len(set(self.roles)) != len(self.roles):
            raise ValueError(f"input roles {self.roles}: a role is listed twice")
        return self


class CameraConfig(_Strict):
    id: Id
    # One stream for both detection and recording; or `inputs` with roles (not both).
    # Unused, they are left out of the JSON: a camera that needs neither `inputs` nor `hwaccel`
    # serialises as before they existed, so an older agent (extra fields forbidden) still takes it.
    source: str | None = Field(default=None, min_length=1, max_length=2048, exclude_if=_is_none)
    inputs: list[CameraInput] | None = Field(default=None, min_length=1, max_length=2, exclude_if=_is_none)
    # Hardware video decoding: "auto" uses it when the device has it (and says so in the log),
    # software otherwise; "off" always decodes in software.
    hwaccel: Literal["auto", "off"] = Field(default="auto", exclude_if=lambda v: v == "auto")
    name: str | None = Field(default=None, max_length=200)
    # Where the camera stands; alerts carry it so a station needs no lookup.
    site: Site | None = Field(default=None, exclude_if=absent)
    loop: bool = False
    detect: DetectConfig = Field(default_factory=DetectConfig)
    motion: MotionConfig = Field(default_factory=MotionConfig)
    record: RecordConfig = Field(default_factory=RecordConfig)
    offline_debounce_s: float = Field(default=60.0, ge=0.0, le=MAX_SECONDS)
    tamper: TamperConfig = Field(default_factory=TamperConfig)
    zones: list[Zone] = Field(default_factory=list, max_length=64)
    lines: list[Line] = Field(default_factory=list, max_length=64)

    @model_validator(mode="after")
    def _sources(self) -> "CameraConfig":
        if (self.source is None) == (self.inputs is None):
            raise ValueError(
                f"camera {self.id!r}: give either `source` (one stream for both detection and recording) "
                "or `inputs` (streams with roles detect/record), not both and not neither"
            )
        if self.inputs is not None:
            for role in ("detect", "record"):
                n = sum(role in i.roles for i in self.inputs)
                if n != 1:
                    raise ValueError(
                        f"camera {self.id!r}: exactly one input needs the role {role!r} ({n} have it); "
                        "to record nothing set record.enabled: false"
                    )
            for i in self.inputs:
                if _held(i.source) and len(i.roles) != 2:
                    raise ValueError(
                        f"camera {self.id!r}: {i.source} can be opened once only; "
                        "it must serve both roles (roles: [detect, record])"
                    )
            sources = [i.source for i in self.inputs]
            if len(set(sources)) != len(sources):
                raise ValueError(
                    f"camera {self.id!r}: the same source is listed as two inputs; give it both roles"
                )
        return self

    def _role(self, role: InputRole) -> str:
        if self.inputs is None:
            assert self.source is not None
            return self.source
        return next(i.source for i in self.inputs if role in i.roles)

    @property
    def detect_source(self) -> str:
        """The stream the detector reads (the sub-stream)."""
        return self._role("detect")

    @property
    def record_source(self) -> str:
        """The stream clips and high-resolution snapshots come from (the main stream)."""
        return self._role("record")

    @property
    def sources(self) -> list[str]:
        """Every distinct source of the camera, detect first."""
        out = [self.detect_source]
        return out if self.record_source == out[0] else [*out, self.record_source]

    def with_sources(self, change: Callable[[str], str]) -> "CameraConfig":
        """The same camera with every source passed through `change` (resolve a path, hide a password)."""
        if self.inputs is None:
            assert self.source is not None
            return self.model_copy(update={"source": change(self.source)})
        inputs = [i.model_copy(update={"source": change(i.source)}) for i in self.inputs]
        return self.model_copy(update={"inputs": inputs})

    @model_validator(mode="after")
    def _unique_names(self) -> "CameraConfig":
        places = [z.name for z in self.zones] + [ln.name for ln in self.lines]
        dup = {n for n in places if places.count(n) > 1}
        if dup:
            raise ValueError(f"camera {self.id!r}: zone/line names used twice: {sorted(dup)}")
        places_: list[Zone | Line] = [*self.zones, *self.lines]
        names = [rule_name(p, r) for p in places_ for r in p.rules]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(
                f"camera {self.id!r}: two rules share the name(s) {sorted(dup)}; give each a `name`"
            )
        return self


def rule_name(place: Zone | Line, rule: AnyRule) -> str:
    return rule.name or f"{place.name}.{rule.type}"


class DeviceIdentity(_Strict):
    id: Id
    ward: Id
    timezone: str = "Asia/Ho_Chi_Minh"


class BrokerConfig(_Strict):
    url: str = Field(pattern=r"^mqtts?://[^\s/]+(:\d+)?/?$")
    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    username: str | None = None
    password: str | None = None
    keepalive_s: int = Field(default=30, ge=5, le=3600)

    @model_validator(mode="after")
    def _tls_pairs(self) -> "BrokerConfig":
        if (self.cert is None) != (self.key is None):
            raise ValueError("broker: cert and key go together")
        return self


class CloudConfig(_Strict):
    url: str = Field(pattern=r"^https?://\S+$")
    ca: str | None = None
    # The device's upload token (issued at enrollment), kept out of this file: mode 0600.
    token_file: str | None = None
    # Cap on clip upload bandwidth in bytes per second (a shared or metered uplink); none = no cap.
    upload_max_bytes_per_s: int | None = Field(default=None, ge=1000, le=INT32_MAX)


class StorageConfig(_Strict):
    path: str = "/var/lib/matthan"
    budget_mb: int = Field(default=4096, ge=16, le=INT32_MAX)
    min_free_mb: int = Field(default=256, ge=0, le=INT32_MAX)
    # Segment cache: tmpfs spares the SD card (it is rewritten every few seconds).
    cache_path: str | None = None


class OutboxConfig(_Strict):
    max_messages: int = Field(default=100_000, ge=100, le=INT32_MAX)
    max_age_h: float = Field(default=168.0, gt=0.0, le=24 * 365)
    # A message without a receipt is sent again after resend_after_s, then after each delay times
    # resend_factor, at most resend_max_s, each lengthened by up to resend_jitter (a fraction) so a
    # fleet that lost the cloud together does not resend together. The defaults allow ≤ 3 copies in
    # a message's first 10 minutes (docs/architecture.md, "Resends during a cloud outage").
    resend_after_s: float = Field(default=30.0, gt=0.0, le=MAX_SECONDS)
    resend_factor: float = Field(default=4.0, ge=1.0, le=16.0)
    resend_max_s: float = Field(default=600.0, gt=0.0, le=MAX_SECONDS)
    resend_jitter: float = Field(default=0.2, ge=0.0, le=1.0)


class HealthConfig(_Strict):
    interval_s: float = Field(default=30.0, ge=1.0, le=MAX_SECONDS)


class ModelConfig(_Strict):
    path: str
    labels: str
    threads: int = Field(default=2, ge=1, le=16)
    delegate: Literal["auto", "cpu", "edgetpu"] = "auto"


class SiteConfig(_Strict):
    """The part of a device's configuration the operations centre sets remotely."""

    cameras: list[CameraConfig] = Field(min_length=1, max_length=256)
    health: HealthConfig = Field(default_factory=HealthConfig)

    @model_validator(mode="after")
    def _unique_cameras(self) -> "SiteConfig":
        ids = [c.id for c in self.cameras]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            raise ValueError(f"camera ids used twice: {sorted(dup)}")
        return self


class DeviceConfig(SiteConfig):
    """The whole device configuration file."""

    device: DeviceIdentity
    broker: BrokerConfig
    cloud: CloudConfig | None = None
    storage: StorageConfig = Field(default_factory=StorageConfig)
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    model: ModelConfig | None = None

    def site(self) -> SiteConfig:
        return SiteConfig(cameras=self.cameras, health=self.health)

    def with_site(self, site: SiteConfig) -> "DeviceConfig":
        return self.model_copy(update={"cameras": site.cameras, "health": site.health})

    def camera(self, camera_id: str) -> CameraConfig:
        for cam in self.cameras:
            if cam.id == camera_id:
                return cam
        raise KeyError(camera_id)

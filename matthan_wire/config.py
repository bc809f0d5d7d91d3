"""Device configuration: what a technician writes in YAML and what the cloud sends as desired config.

The whole file (DeviceConfig) and the part the operations centre sets remotely (SiteConfig) are
here; a camera is in matthan_wire/camera.py, its zones, lines and rules in matthan_wire/rules.py,
what every model shares in matthan_wire/config_base.py. Every name is importable from here as it
always was. Coordinates are normalised to the frame: x and y in [0, 1], origin top-left.
"""

from typing import Literal

from pydantic import Field, field_validator, model_validator

from matthan_wire.camera import (
    CameraConfig,
    CameraInput,
    DetectConfig,
    InputRole,
    MotionConfig,
    RecordConfig,
    Site,
    TamperConfig,
)
from matthan_wire.config_base import MAX_SECONDS, Strict, Title, absent
from matthan_wire.ids import INT32_MAX, Id, Label
from matthan_wire.rules import (
    CATEGORY_OF,
    SECURITY_ORDER,
    URBAN_ORDER,
    AnyRule,
    Category,
    Coord,
    CrowdRule,
    EncroachmentRule,
    HourRange,
    IllegalParkingRule,
    IntrusionRule,
    Line,
    LineRule,
    LoiteringRule,
    Point,
    RuleType,
    WrongWayRule,
    Zone,
    ZoneRule,
    rule_name,
)

__all__ = [
    "CATEGORY_OF",
    "INT32_MAX",
    "MAX_SECONDS",
    "SECURITY_ORDER",
    "URBAN_ORDER",
    "AnyRule",
    "BrokerConfig",
    "CameraConfig",
    "CameraInput",
    "Category",
    "CloudConfig",
    "Coord",
    "CrowdRule",
    "DetectConfig",
    "DeviceConfig",
    "DeviceIdentity",
    "EncroachmentRule",
    "HealthConfig",
    "HourRange",
    "IllegalParkingRule",
    "InputRole",
    "IntrusionRule",
    "Line",
    "LineRule",
    "LoiteringRule",
    "ModelConfig",
    "MotionConfig",
    "OutboxConfig",
    "Point",
    "RecordConfig",
    "RuleType",
    "Site",
    "SiteConfig",
    "StorageConfig",
    "TamperConfig",
    "Title",
    "WrongWayRule",
    "Zone",
    "ZoneRule",
    "absent",
    "rule_name",
]


class DeviceIdentity(Strict):
    id: Id
    ward: Id
    timezone: str = "Asia/Ho_Chi_Minh"


class BrokerConfig(Strict):
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


class CloudConfig(Strict):
    url: str = Field(pattern=r"^https?://\S+$")
    ca: str | None = None
    # The device's upload token (issued at enrollment), kept out of this file: mode 0600.
    token_file: str | None = None
    # Cap on clip upload bandwidth in bytes per second (a shared or metered uplink); none = no cap.
    upload_max_bytes_per_s: int | None = Field(default=None, ge=1000, le=INT32_MAX)


class StorageConfig(Strict):
    path: str = "/var/lib/matthan"
    budget_mb: int = Field(default=4096, ge=16, le=INT32_MAX)
    min_free_mb: int = Field(default=256, ge=0, le=INT32_MAX)
    # Segment cache: tmpfs spares the SD card (it is rewritten every few seconds).
    cache_path: str | None = None


class OutboxConfig(Strict):
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


class HealthConfig(Strict):
    interval_s: float = Field(default=30.0, ge=1.0, le=MAX_SECONDS)


class ModelConfig(Strict):
    path: str
    labels: str
    threads: int = Field(default=2, ge=1, le=16)
    delegate: Literal["auto", "cpu", "edgetpu"] = "auto"
    # The most boxes the model returns per frame, set on its post-process op at load; unset, the
    # model's own (the stock SSD: 10). A crowd rule counting more people than this can never fire
    # (the camera logs it): raise it for such cameras. Not raised by default: on the street clips
    # the boxes past the 10th are mostly weak parts, doubles and cones (bench/RESULTS.md).
    max_detections: int | None = Field(default=None, ge=1, le=100)
    # The classes the model answers for, by label; the rest are cut from its class head at load
    # (a tenth less CPU per detector run on SSD MobileNet v1, and no box slot lost to a bench or a
    # handbag). Unset, every class of the label file. A rule for a class left out never fires (the
    # camera logs it).
    classes: list[Label] | None = Field(default=None, min_length=1, max_length=256)

    @field_validator("classes")
    @classmethod
    def _distinct_classes(cls, classes: list[str] | None) -> list[str] | None:
        if classes is not None and len(set(classes)) != len(classes):
            raise ValueError(f"classes listed twice: {sorted({c for c in classes if classes.count(c) > 1})}")
        return classes


class SiteConfig(Strict):
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

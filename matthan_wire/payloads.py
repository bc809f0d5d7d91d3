"""Payload models. Every payload is JSON, UTF-8, with "v": 1, and rejects unknown fields — except
the alert, whose reader is tolerant of additive fields (see `Alert`)."""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from matthan_wire.config import CATEGORY_OF, Category, RuleType, Site, SiteConfig, Title, absent
from matthan_wire.ids import MAX_LABELS, Amount, ByteCount, Count, Id, Int64, Label, LongText, ShortText
from matthan_wire.timeutil import UtcDateTime

SCHEMA_VERSION: Literal[1] = 1

# Cameras of one device in a health message (a recorder serves a few dozen at most).
MAX_CAMERAS = 256

ArgName = Annotated[str, Field(min_length=1, max_length=64)]

Score = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Norm = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


# Every model refuses inf and NaN: a JSON 1e400 parses as inf and then passes any lower bound.
_CONFIG = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class _Payload(BaseModel):
    model_config = _CONFIG

    v: Literal[1] = SCHEMA_VERSION


class ClipRef(BaseModel):
    """An event's clip as announced in the event end; the bytes travel by resumable HTTP upload.

    The end is sent as soon as the violation ends, before the post-capture span is recorded, so
    sha256 and size are null there; the upload carries them and the server verifies them.
    """

    model_config = _CONFIG

    name: str = Field(pattern=r"^[a-z0-9-]{1,120}\.mp4$")
    sha256: Sha256 | None = None
    size: ByteCount | None = None
    start: UtcDateTime
    end: UtcDateTime
    duration_s: Amount


# Fields added to the alert within v1, in the order they were added. Each has a default, and is
# written only when it has a value, so an alert without them is byte-identical to a v1.0 alert.
ALERT_ADDITIVE_FIELDS = ("site", "zone_title", "rule_title")
TamperKind = Literal["covered", "blinded", "defocused", "moved"]
# A camera_tamper alert's confirm-view command name (cloud → device on `cmd`): the operator accepts
# the camera's new view as its reference, which ends the alert and lifts the zone suspension.
CONFIRM_VIEW = "confirm-view"


class TamperScores(BaseModel):
    """One tamper check's measures; ratios are against the camera's own learned reference."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    brightness: Score  # mean grey level, 0 black .. 1 white
    saturated: Score  # fraction of the frame blown out to white
    contrast: float = Field(ge=0.0, le=100.0)  # grey-level spread / the reference's
    sharpness: float = Field(ge=0.0, le=100.0)  # variance of the Laplacian (per contrast) / the reference's
    match: float = Field(ge=-1.0, le=1.0)  # correlation of the view with the reference at the best shift
    shift_x: float = Field(ge=-1.0, le=1.0)  # best shift, fraction of the frame width (+ right)
    shift_y: float = Field(ge=-1.0, le=1.0)  # fraction of the frame height (+ down)
    rotation_deg: float | None = Field(default=None, ge=-180.0, le=180.0)  # + clockwise; None: not measured


class TamperDetail(BaseModel):
    """What a camera_tamper alert found; `ended_by` on ends."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    kind: TamperKind
    scores: TamperScores
    # True while the camera's zone rules are suspended (moved: the zones no longer lie on the scene).
    zones_suspended: bool = False
    ended_by: Literal["view_back", "confirmed", "stopped"] | None = None


class Alert(_Payload):
    """An alert start or end.

    Compatibility within v1 (a fleet upgrades one device at a time): the alert's reader ignores
    top-level fields it does not know, so an alert from a newer device with a field added later
    is accepted by an older cloud or station; every field it knows is validated strictly, so a
    malformed known field is still rejected; fields added within v1 are optional, so an alert from
    an older device without them is accepted. A change that is not additive needs "v": 2.
    """

    model_config = ConfigDict({**_CONFIG, "extra": "ignore"})

    event_id: Id
    phase: Literal["start", "end"]
    device_id: Id
    camera_id: Id
    ward: Id
    zone: Id | None  # the zone or line; null for camera_offline
    rule: str = Field(min_length=1, max_length=128)
    type: RuleType
    category: Category
    labels: list[Label] = Field(max_length=MAX_LABELS)
    object_count: Count
    score: Score
    bbox: list[Norm] | None = Field(min_length=4, max_length=4)
    started_at: UtcDateTime
    ended_at: UtcDateTime | None
    seq: Count
    snapshot: str | None = Field(max_length=300)
    clip: ClipRef | None
    # Additive within v1: the camera's site and the display names of its zone and rule.
    site: Site | None = Field(default=None, exclude_if=absent)
    zone_title: Title | None = Field(default=None, exclude_if=absent)
    rule_title: Title | None = Field(default=None, exclude_if=absent)
    # camera_tamper only: the kind and measures; its snapshot is the reference view (before) and the
    # current view (after) side by side in one JPEG.
    tamper: TamperDetail | None = None

    @model_validator(mode="after")
    def _phase_matches_times(self) -> "Alert":
        if CATEGORY_OF[self.type] != self.category:
            raise ValueError(f"type {self.type} belongs to category {CATEGORY_OF[self.type]}")
        if (self.type == "camera_tamper") != (self.tamper is not None):
            raise ValueError("tamper details go with a camera_tamper alert, and only with it")
        if self.phase == "start" and self.ended_at is not None:
            raise ValueError("a start carries no ended_at")
        if self.phase == "end" and self.ended_at is None:
            raise ValueError("an end carries ended_at")
        if self.ended_at is not None and self.ended_at < self.started_at:
            raise ValueError("ended_at is before started_at")
        if self.bbox is not None and (self.bbox[0] > self.bbox[2] or self.bbox[1] > self.bbox[3]):
            raise ValueError("bbox is [x1, y1, x2, y2] with x1 <= x2 and y1 <= y2")
        return self


class CameraTamper(BaseModel):
    """A camera's tamper check as health reports it: the console warns before it is an alert."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    # learning: building the reference; ok; suspect: a tampered view not yet lasting persist_s;
    # tampered: a camera_tamper alert is open.
    state: Literal["learning", "ok", "suspect", "tampered"]
    kind: TamperKind | None = None
    since: UtcDateTime | None = None  # when the current suspect/tampered view began
    zones_suspended: bool = False
    event_id: Id | None = None  # the open camera_tamper alert
    scores: TamperScores | None = None  # the latest check; None while learning
    check_ms: float | None = Field(default=None, ge=0.0, le=60_000.0)  # CPU of the latest check


class CameraHealth(BaseModel):
    model_config = _CONFIG

    id: Id
    stream_up: bool
    fps_in: Amount
    fps_detect: Amount
    detect_ms: Amount | None
    last_frame_age_s: Amount | None
    expected_fps: Amount | None = None
    reconnects_1h: Count = 0
    stalls_1h: Count = 0
    # fps_in against expected, 0..1; None until the camera has run long enough to say.
    quality: Score | None = None
    recording: bool | None = None
    detector_runs_saved: Count = 0
    tamper: CameraTamper | None = None  # None: the check is off


class Health(_Payload):
    device_id: Id
    ward: Id
    at: UtcDateTime
    uptime_s: Amount
    cpu_pct: Amount
    mem_mb: Amount
    disk_free_mb: Amount
    temp_c: float | None = Field(ge=-100.0, le=200.0)
    outbox_depth: Count
    upload_backlog: Count
    config_version: Count | None
    model: ShortText | None
    cameras: list[CameraHealth] = Field(max_length=MAX_CAMERAS)
    alerts_total: Count = 0
    alerts_acked_total: Count = 0
    outbox_dropped_total: Count = 0
    upload_backlog_bytes: ByteCount = 0
    upload_oldest_age_s: Amount | None = None
    clips_evicted_unconfirmed_total: Count = 0
    agent_version: ShortText | None = None
    # The cloud link as the device sees it: copies of unreceipted messages sent again in the last
    # hour, and the age of the oldest message still without a receipt (0 when none).
    outbox_resends_1h: int = Field(default=0, ge=0, le=2**63 - 1)
    outbox_oldest_age_s: int = Field(default=0, ge=0, le=2**63 - 1)


class Status(_Payload):
    state: Literal["online", "offline"]
    at: UtcDateTime


class DesiredConfig(_Payload):
    version: Count = Field(ge=1)
    issued_at: UtcDateTime
    config: SiteConfig


class ReportedConfig(_Payload):
    # The version now running (None before any desired config was applied).
    version: Count | None
    status: Literal["applied", "rejected"]
    # The version that was rejected, and why; absent when applied.
    rejected_version: Count | None = Field(default=None, ge=1)
    error: LongText | None = None
    at: UtcDateTime

    @model_validator(mode="after")
    def _error_iff_rejected(self) -> "ReportedConfig":
        if (self.status == "rejected") != (self.error is not None):
            raise ValueError("error is given exactly when status is rejected")
        return self


class Command(_Payload):
    id: Id
    # Kept as free text so an unknown command can be answered with an error, not dropped.
    name: str = Field(min_length=1, max_length=64)
    camera_id: Id | None = None
    args: dict[ArgName, LongText | Int64 | float | bool] = Field(default_factory=dict, max_length=32)
    at: UtcDateTime


class CommandResult(_Payload):
    command_id: Id
    ok: bool
    error: LongText | None = None
    # Flat on purpose: a result reports figures, and nesting is what a hostile sender would deepen.
    detail: dict[ArgName, LongText | Int64 | float | bool | None] = Field(default_factory=dict, max_length=32)
    at: UtcDateTime


class Receipt(_Payload):
    """What the cloud has committed to its database; the device may forget exactly these.

    One event id names a start, an end and a snapshot, so each has its own list: a receipt for a
    start must not delete an end still waiting in the device's outbox.
    """

    event_ids: list[Id] = Field(default_factory=list, max_length=5000)  # alert starts
    ends: list[Id] = Field(default_factory=list, max_length=5000)
    snapshots: list[Id] = Field(default_factory=list, max_length=5000)
    at: UtcDateTime

    @model_validator(mode="after")
    def _not_empty(self) -> "Receipt":
        if not (self.event_ids or self.ends or self.snapshots):
            raise ValueError("a receipt names at least one committed message")
        return self


AlertStateName = Literal["new", "delivered", "acknowledged", "resolved", "false_alarm"]


class AlertState(_Payload):
    event_id: Id
    ward: Id
    device_id: Id
    state: AlertStateName
    by: str | None = Field(default=None, max_length=128)
    note: str | None = Field(default=None, max_length=2000)
    at: UtcDateTime


class AlertAction(_Payload):
    """A ward station's action on an alert, sent to the cloud on the ward's alert-action topic."""

    event_id: Id
    # deliver: the station has the alert in front of its officers (sent by the subscriber itself).
    action: Literal["deliver", "acknowledge", "resolve", "false_alarm"]
    by: str = Field(min_length=1, max_length=128)
    note: str | None = Field(default=None, max_length=2000)
    at: UtcDateTime


class StationSync(_Payload):
    """A ward station has subscribed (after a start or a reconnect): the cloud sends it again, on
    the ward's station-alert topic, every alert of the ward no station has confirmed yet."""

    station: str = Field(min_length=1, max_length=128)
    at: UtcDateTime

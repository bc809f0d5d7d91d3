"""What the console's pages show, built from the cloud's rows and the services' read models: fleet
rows (the device read model plus the console's judgement) and alert-card helpers. The district's
figures are in figures.py.

Pure functions over model objects (no queries, no HTTP) so the judgement calls — what counts as
trouble, what a card offers — are in one place and testable without a browser.
"""

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from pydantic import ConfigDict, Field

from cloud.models import Device, HealthLatest
from cloud.services.alerts import AlertOut
from cloud.services.devices import DeviceOut, device_fields
from matthan import vocabulary
from matthan.i18n import N_, Msg
from matthan_wire.timeutil import utc_now

# Thresholds for "needs attention"; a warning is worth a look, trouble is worth a technician.
TEMP_WARN_C, TEMP_BAD_C = 70.0, 80.0
DISK_WARN_MB, DISK_BAD_MB = 1024.0, 256.0
BACKLOG_WARN, BACKLOG_BAD = 10, 100
OUTBOX_WARN, OUTBOX_BAD = 50, 1000
QUALITY_WARN, QUALITY_BAD = 0.85, 0.5
DETECT_WARN_MS = 200.0
# The oldest message a device still holds without the cloud's receipt. A receipt normally takes under
# a second; 5 minutes means two resends (at 30 s and 150 s) went unanswered: the cloud link is stale
# while health still arrives (receipts lost, ingest failing). An hour is an outage worth a technician.
CLOUD_STALE_WARN_S, CLOUD_STALE_BAD_S = 300, 3600

ACTIONS: dict[str, list[tuple[str, str]]] = {
    # Which buttons an alert in a state offers: resolving or dismissing needs no prior acknowledge
    # (an officer on the spot may do both at once).
    # The labels are the catalogue's texts (matthan.vocabulary), translated where the card is shown.
    "new": [(a, vocabulary.ACTIONS[a]) for a in ("acknowledge", "resolve", "false_alarm")],
    "delivered": [(a, vocabulary.ACTIONS[a]) for a in ("acknowledge", "resolve", "false_alarm")],
    "acknowledged": [(a, vocabulary.ACTIONS[a]) for a in ("resolve", "false_alarm")],
    "resolved": [],
    "false_alarm": [],
}
OPEN_STATES = ("new", "delivered", "acknowledged")
# A device uploads a clip after the post-capture span, and later if its link is down: an hour covers
# an ordinary outage; past that the operator should know the clip is not coming by itself.
CLIP_GRACE = timedelta(hours=1)


@dataclass
class CameraView:
    id: str
    name: str | None = None
    address: str | None = None
    lat: float | None = None
    lon: float | None = None
    stream_up: bool | None = None
    fps_in: float | None = None
    fps_detect: float | None = None
    detect_ms: float | None = None
    last_frame_age_s: float | None = None
    quality: float | None = None
    reconnects_1h: int = 0
    # The device's tamper check (CameraHealth.tamper): state, kind, and whether zones are suspended.
    tamper_state: str | None = None
    tamper_kind: str | None = None
    zones_suspended: bool = False

    @property
    def quality_pct(self) -> float | None:
        return None if self.quality is None else self.quality * 100

    @property
    def view_changed(self) -> bool:
        """The view looks tampered with (suspect or alerted): worth a look before it is an alert."""
        return self.tamper_state in ("suspect", "tampered")

    @property
    def tamper_text(self) -> Msg:
        kind = Msg(vocabulary.TAMPER_KINDS.get(self.tamper_kind or "changed", self.tamper_kind or "changed"))
        if self.zones_suspended:
            return Msg("view moved: zone rules suspended until the new view is confirmed")
        if self.tamper_state == "tampered":
            return Msg("camera tampered: %(kind)s", kind=kind)
        return Msg("view changed: %(kind)s?", kind=kind)

    @property
    def fine(self) -> bool:
        return (
            self.stream_up is not False
            and (self.quality is None or self.quality >= QUALITY_WARN)
            and not self.view_changed
        )


# A recorder with more cameras than this lists only its cameras in trouble in the fleet table (the
# district has 1,115 cameras on 128 devices: every camera row would bury the few that matter).
CAMERA_ROWS_MAX = 4


class DeviceView(DeviceOut):
    """The API's device read model with the fleet table's judgement: its cameras merged with their
    reported health, what is wrong (worst first) and how bad. Built without validation (from rows
    the database already checked): a district page has 128 of them every 5 s."""

    model_config = ConfigDict(protected_namespaces=())

    latest: dict[str, Any] = Field(default_factory=dict)  # the raw latest health body
    cameras: list[CameraView] = Field(default_factory=list)
    trouble: list[str] = Field(default_factory=list)  # Msg: translated where shown
    severity: int = 0  # 0 fine, 1 warning, 2 trouble
    model_expected: str | None = None

    @property
    def model(self) -> str | None:
        return self.latest.get("model")

    @property
    def temp_c(self) -> float | None:
        return self.latest.get("temp_c")

    @property
    def disk_free_mb(self) -> float | None:
        return self.latest.get("disk_free_mb")

    @property
    def outbox_depth(self) -> int | None:
        return self.latest.get("outbox_depth")

    @property
    def upload_backlog(self) -> int | None:
        return self.latest.get("upload_backlog")

    @property
    def outbox_oldest_age_s(self) -> int | None:
        return self.latest.get("outbox_oldest_age_s")

    @property
    def outbox_resends_1h(self) -> int | None:
        return self.latest.get("outbox_resends_1h")

    @property
    def config_in_sync(self) -> bool:
        return self.desired_version is None or (
            self.reported_version == self.desired_version and self.reported_status != "rejected"
        )

    @property
    def model_in_sync(self) -> bool:
        return self.model_expected is None or self.model is None or self.model == self.model_expected

    @property
    def camera_rows(self) -> list[CameraView]:
        if len(self.cameras) <= CAMERA_ROWS_MAX or self.state != "online":
            return self.cameras if len(self.cameras) <= CAMERA_ROWS_MAX else []
        return [c for c in self.cameras if not c.fine]

    @property
    def cameras_hidden(self) -> int:
        return len(self.cameras) - len(self.camera_rows)

    def _cams(self, attr: str) -> list[float]:
        return [v for c in self.cameras if (v := getattr(c, attr)) is not None]

    @property
    def fps_in(self) -> float | None:
        vals = self._cams("fps_in")
        return sum(vals) if vals else None

    @property
    def fps_detect(self) -> float | None:
        vals = self._cams("fps_detect")
        return sum(vals) if vals else None

    @property
    def detect_ms(self) -> float | None:
        vals = self._cams("detect_ms")
        return max(vals) if vals else None

    @property
    def quality_pct(self) -> float | None:
        vals = self._cams("quality")
        return min(vals) * 100 if vals else None


class CameraRow(Protocol):
    """What the fleet needs of a camera row: a Camera, or a plain result row with these columns."""

    @property
    def id(self) -> str: ...
    @property
    def site_name(self) -> str | None: ...
    @property
    def lat(self) -> float | None: ...
    @property
    def lon(self) -> float | None: ...


def device_view(
    device: Device, latest: HealthLatest | None, cameras: Sequence[CameraRow], online: bool
) -> DeviceView:
    """One device as the fleet table shows it; `online` is the cloud's verdict (status + health age)."""
    body: dict[str, Any] = latest.body if latest is not None else {}
    # The raw body, not the API's health summary: the table needs the per-camera figures.
    fields = {**device_fields(device, None), "online": online}
    view = DeviceView.model_construct(**fields, latest=body, cameras=[], trouble=[], severity=0)
    known = {c.id: c for c in cameras}
    reported = {c["id"]: c for c in body.get("cameras", []) if isinstance(c, dict) and "id" in c}
    for cam_id in sorted(set(known) | set(reported)):
        row, h = known.get(cam_id), reported.get(cam_id, {})
        view.cameras.append(
            CameraView(
                id=cam_id,
                name=row.site_name if row else None,
                address=getattr(row, "address", None) if row else None,
                lat=row.lat if row else None,
                lon=row.lon if row else None,
                stream_up=h.get("stream_up"),
                fps_in=h.get("fps_in"),
                fps_detect=h.get("fps_detect"),
                detect_ms=h.get("detect_ms"),
                last_frame_age_s=h.get("last_frame_age_s"),
                quality=h.get("quality"),
                reconnects_1h=h.get("reconnects_1h") or 0,
                **_tamper(h.get("tamper")),
            )
        )
    return view


def _tamper(t: object) -> dict[str, Any]:
    if not isinstance(t, dict):
        return {}
    return {
        "tamper_state": t.get("state"),
        "tamper_kind": t.get("kind"),
        "zones_suspended": bool(t.get("zones_suspended")),
    }


def judge(views: Sequence[DeviceView]) -> None:
    """Fill in each device's trouble list and severity, and the fleet's expected model.

    The desired config carries no model, so "in sync" for models means: the model most of the
    fleet runs. A device on another model is worth a look, not an alarm.
    """
    models = Counter(v.model for v in views if v.model)
    expected = models.most_common(1)[0][0] if len(models) > 1 else None
    for v in views:
        v.model_expected = expected
        bad: list[str] = []
        warn: list[str] = []
        if v.state == "revoked":  # out of service on purpose: nothing to fix
            v.trouble, v.severity = [Msg("revoked")], 0
            continue
        if v.state == "offline":
            bad.append(Msg("device offline"))
        elif v.state == "never":
            warn.append(Msg("never reported"))
        if v.state == "online":
            down = [c.id for c in v.cameras if c.stream_up is False]
            if down:
                bad.append(Msg("camera down: %(cameras)s", cameras=", ".join(down)))
            poor = [c.id for c in v.cameras if c.quality is not None and c.quality < QUALITY_WARN]
            if poor:
                (
                    bad if any(c.quality is not None and c.quality < QUALITY_BAD for c in v.cameras) else warn
                ).append(Msg("poor stream: %(cameras)s", cameras=", ".join(poor)))
            slow = [c.id for c in v.cameras if c.detect_ms is not None and c.detect_ms >= DETECT_WARN_MS]
            if slow:
                warn.append(Msg("slow detector: %(cameras)s", cameras=", ".join(slow)))
            for c in v.cameras:
                if c.view_changed:
                    (bad if c.tamper_state == "tampered" else warn).append(
                        Msg("%(camera)s: %(problem)s", camera=c.id, problem=c.tamper_text)
                    )
        _threshold(v.temp_c, TEMP_WARN_C, TEMP_BAD_C, N_("hot: %(value).0f °C"), warn, bad)
        if v.disk_free_mb is not None and v.disk_free_mb <= DISK_WARN_MB:
            (bad if v.disk_free_mb <= DISK_BAD_MB else warn).append(
                Msg("disk: %(mb).0f MB free", mb=v.disk_free_mb)
            )
        _threshold(v.outbox_depth, OUTBOX_WARN, OUTBOX_BAD, N_("outbox: %(value)d waiting"), warn, bad)
        _threshold(v.upload_backlog, BACKLOG_WARN, BACKLOG_BAD, N_("uploads: %(value)d waiting"), warn, bad)
        oldest = v.outbox_oldest_age_s
        if isinstance(oldest, int) and oldest >= CLOUD_STALE_WARN_S:
            # Clamped: the contract allows up to 2^63-1 s, timedelta stops at ~3e13 s.
            age = human_duration(timedelta(seconds=min(oldest, 10**9)))
            (bad if oldest >= CLOUD_STALE_BAD_S else warn).append(
                Msg(
                    "cloud link stale: no receipt for %(age)s, %(resends)d resends in 1 h",
                    age=age,
                    resends=v.outbox_resends_1h or 0,
                )
            )
        if v.reported_status == "rejected" and v.desired_version is not None:
            bad.append(Msg("config v%(version)s rejected", version=v.desired_version))
        elif not v.config_in_sync:
            warn.append(Msg("config v%(version)s not applied yet", version=v.desired_version))
        if not v.model_in_sync:
            warn.append(
                Msg("model %(model)s (fleet runs %(expected)s)", model=v.model, expected=v.model_expected)
            )
        v.trouble = bad + warn
        v.severity = 2 if bad else (1 if warn else 0)


def _threshold(
    value: float | None, warn_at: float, bad_at: float, text: str, warn: list[str], bad: list[str]
) -> None:
    if value is not None and value >= warn_at:
        (bad if value >= bad_at else warn).append(Msg(text, value=value))


def trouble_first(views: Iterable[DeviceView]) -> list[DeviceView]:
    """Worst first; among equals, the one silent longest first, then by ward and id."""
    far_past = datetime.min.replace(tzinfo=None)

    def key(v: DeviceView) -> tuple[int, datetime, str, str]:
        seen = v.last_seen.replace(tzinfo=None) if v.last_seen else far_past
        return (-v.severity, seen, v.ward, v.id)

    return sorted(views, key=key)


def matches_state(v: DeviceView, wanted: str | None) -> bool:
    if not wanted:
        return True
    if wanted == "trouble":
        return v.severity > 0
    if wanted == "out_of_sync":
        return not v.config_in_sync or not v.model_in_sync
    if wanted == "offline":
        return v.state != "online"
    return v.state == wanted


def map_state(v: DeviceView, camera: CameraView) -> str:
    if v.state != "online" or camera.stream_up is False:
        return "down"
    return "warn" if v.severity else "ok"


# --- alerts --------------------------------------------------------------------------------------


def actions_for(a: AlertOut) -> list[tuple[str, str]]:
    """The buttons an alert offers in its state."""
    return ACTIONS.get(a.state, [])


def clip_note(a: AlertOut) -> str:
    """Why there is no player: a clip is on its way for a while after the end, then it is missing."""
    if a.ended_at is None or a.clip_url is not None:
        return ""
    recent = utc_now() - a.ended_at < CLIP_GRACE
    return Msg("clip not uploaded yet") if recent else Msg("no clip was uploaded")


def alert_duration(a: AlertOut) -> str:
    return "" if a.ended_at is None else human_duration(a.ended_at - a.started_at)


def human_duration(span: timedelta | None) -> str:
    if span is None:
        return ""
    s = int(max(0.0, span.total_seconds()))
    if s < 60:
        return Msg("%(s)d s", s=s)
    if s < 3600:
        return Msg("%(min)d min %(s)02d s", min=s // 60, s=s % 60)
    return Msg("%(h)d h %(min)02d min", h=s // 3600, min=s % 3600 // 60)

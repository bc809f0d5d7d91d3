"""The cloud's tables (sqlmodel). The schema itself is owned by the Alembic migrations in
cloud/migrations; a test checks that the migrations and these models agree.

Every time column is UTC and aware (cloud.dbtypes.UtcTime). Ids follow matthan_wire.ids.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index
from sqlmodel import Field, SQLModel

from cloud.dbtypes import UtcTime
from matthan_wire.timeutil import utc_now

ROLES = ("admin", "operator", "ward_officer")
ALERT_STATES = ("new", "delivered", "acknowledged", "resolved", "false_alarm")


def _time(**kw: Any) -> Any:
    return Field(sa_type=UtcTime, **kw)


def _json(**kw: Any) -> Any:
    return Field(sa_type=JSON, **kw)


class Ward(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=63)
    name: str | None = Field(default=None, max_length=200)
    created_at: datetime = _time(default_factory=utc_now)


class Device(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=63)
    ward: str = Field(index=True, max_length=63)
    cert_serial: str | None = Field(default=None, max_length=64)
    cert_fingerprint: str | None = Field(default=None, max_length=128)
    revoked_at: datetime | None = _time(default=None)
    # sha256 of the bearer token the device uses for uploads (issued at enrollment).
    api_token_hash: str | None = Field(default=None, max_length=64, index=True)
    commissioned_by: str | None = Field(default=None, max_length=128)
    commissioned_at: datetime | None = _time(default=None)
    check_report: dict[str, Any] | None = _json(default=None)
    created_at: datetime = _time(default_factory=utc_now)
    last_seen: datetime | None = _time(default=None)
    online: bool = Field(default=False, index=True)
    status_at: datetime | None = _time(default=None)
    health_interval_s: float | None = Field(default=None)
    desired_version: int | None = Field(default=None)
    reported_version: int | None = Field(default=None)
    reported_status: str | None = Field(default=None, max_length=16)
    reported_error: str | None = Field(default=None, max_length=2000)
    reported_at: datetime | None = _time(default=None)
    agent_version: str | None = Field(default=None, max_length=64)


class Camera(SQLModel, table=True):
    device_id: str = Field(primary_key=True, max_length=63)
    id: str = Field(primary_key=True, max_length=63)
    site_name: str | None = Field(default=None, max_length=200)
    address: str | None = Field(default=None, max_length=500)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    # The stream URL without credentials: enough to recognise, useless to an intruder.
    source_redacted: str | None = Field(default=None, max_length=500)


class DesiredConfigRow(SQLModel, table=True):
    __tablename__ = "desired_config"

    device_id: str = Field(primary_key=True, max_length=63)
    version: int = Field(primary_key=True)
    body: dict[str, Any] = _json()
    created_by: str | None = Field(default=None, max_length=128)
    created_at: datetime = _time(default_factory=utc_now)


class HealthLatest(SQLModel, table=True):
    __tablename__ = "health_latest"

    device_id: str = Field(primary_key=True, max_length=63)
    at: datetime = _time()
    body: dict[str, Any] = _json()


class HealthSample(SQLModel, table=True):
    """The time series: the figures worth a chart, kept for Settings.health_retention_days."""

    __tablename__ = "health_sample"
    __table_args__ = (Index("ix_health_sample_device_at", "device_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    device_id: str = Field(max_length=63)
    at: datetime = _time(index=True)
    cpu_pct: float
    mem_mb: float
    disk_free_mb: float
    temp_c: float | None = None
    outbox_depth: int
    upload_backlog: int
    cameras_up: int
    cameras_total: int


class AlertRow(SQLModel, table=True):
    __tablename__ = "alert"
    __table_args__ = (
        Index("ix_alert_ward_started", "ward", "started_at"),
        Index("ix_alert_updated", "updated_at"),
    )

    event_id: str = Field(primary_key=True, max_length=63)
    device_id: str = Field(index=True, max_length=63)
    camera_id: str = Field(max_length=63)
    ward: str = Field(max_length=63)
    zone: str | None = Field(default=None, max_length=63)
    rule: str = Field(index=True, max_length=128)
    type: str = Field(max_length=32)
    category: str = Field(index=True, max_length=32)
    labels: list[str] = _json(default_factory=list)
    object_count: int = 0
    score: float = 0.0
    bbox: list[float] | None = _json(default=None)
    started_at: datetime = _time()
    ended_at: datetime | None = _time(default=None)
    seq: int = 0
    snapshot_topic: str | None = Field(default=None, max_length=300)
    clip: dict[str, Any] | None = _json(default=None)
    # The camera's site {name, address, lat, lon} as the device sent it, else from the registry.
    site: dict[str, Any] | None = _json(default=None)
    # The site's name again as a plain column: the feed filters and searches it on both databases.
    site_name: str | None = Field(default=None, index=True, max_length=200)
    zone_title: str | None = Field(default=None, max_length=200)
    rule_title: str | None = Field(default=None, max_length=200)
    state: str = Field(default="new", index=True, max_length=16)
    state_by: str | None = Field(default=None, max_length=128)
    state_at: datetime | None = _time(default=None)
    note: str | None = Field(default=None, max_length=2000)
    received_at: datetime = _time(default_factory=utc_now)
    delivered_at: datetime | None = _time(default=None)
    acknowledged_at: datetime | None = _time(default=None)
    acknowledged_by: str | None = Field(default=None, max_length=128)
    resolved_at: datetime | None = _time(default=None)
    resolved_by: str | None = Field(default=None, max_length=128)
    # Bumped on every change; the SSE stream follows it.
    updated_at: datetime = _time(default_factory=utc_now)


class MediaObject(SQLModel, table=True):
    __tablename__ = "media"

    event_id: str = Field(primary_key=True, max_length=63)
    kind: str = Field(primary_key=True, max_length=16)
    device_id: str = Field(index=True, max_length=63)
    size: int  # the whole length the uploader declared
    sha256: str = Field(max_length=64)
    offset: int = 0
    complete: bool = False
    key: str = Field(max_length=500)  # where the bytes live in the clip store
    created_at: datetime = _time(default_factory=utc_now)
    completed_at: datetime | None = _time(default=None)


class ClaimToken(SQLModel, table=True):
    __tablename__ = "claim_token"

    token_hash: str = Field(primary_key=True, max_length=64)
    ward: str = Field(max_length=63)
    device_id: str | None = Field(default=None, max_length=63)
    expires_at: datetime = _time()
    used_at: datetime | None = _time(default=None)
    used_by: str | None = Field(default=None, max_length=63)
    created_by: str | None = Field(default=None, max_length=128)
    created_at: datetime = _time(default_factory=utc_now)
    # Withdrawn before use (a lost printout): enrollment refuses it from then on.
    revoked_at: datetime | None = _time(default=None)
    revoked_by: str | None = Field(default=None, max_length=128)


class User(SQLModel, table=True):
    __tablename__ = "app_user"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, max_length=64)
    role: str = Field(max_length=16)
    ward: str | None = Field(default=None, max_length=63)
    password_hash: str = Field(max_length=300)
    api_key_hash: str | None = Field(default=None, max_length=64, index=True)
    disabled: bool = False
    created_at: datetime = _time(default_factory=utc_now)
    # The console's language for this user (matthan.i18n.LANGUAGES); None: the deployment's.
    language: str | None = Field(default=None, max_length=8)


class AuditLog(SQLModel, table=True):
    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _time(default_factory=utc_now, index=True)
    who: str = Field(max_length=128)
    action: str = Field(max_length=64)
    target: str | None = Field(default=None, max_length=300)
    detail: dict[str, Any] | None = _json(default=None)
    # The hash chain (cloud/custody.py): position, the previous entry's hash, this entry's hash.
    seq: int | None = Field(default=None, unique=True, index=True)
    prev_hash: str | None = Field(default=None, max_length=64)
    hash: str | None = Field(default=None, max_length=64)


class AuditHead(SQLModel, table=True):
    """The one row every append locks: the chain's last position and hash (cloud/custody.py)."""

    __tablename__ = "audit_head"

    id: int = Field(primary_key=True)
    seq: int
    hash: str = Field(max_length=64)


class EvidenceCheck(SQLModel, table=True):
    """The cloud's verdict on an event's signed manifest (cloud/evidence.py), redone as media arrive."""

    __tablename__ = "evidence_check"

    event_id: str = Field(primary_key=True, max_length=63)
    status: str = Field(max_length=16, index=True)  # valid | invalid | incomplete
    reason: str = Field(max_length=2000)
    signer: str | None = Field(default=None, max_length=63)
    serial: str | None = Field(default=None, max_length=64)
    manifest_sha256: str = Field(max_length=64)
    checked_at: datetime = _time(default_factory=utc_now)


class AlertPin(SQLModel, table=True):
    """An alert kept as evidence: retention never deletes it until an admin unpins it."""

    __tablename__ = "alert_pin"

    event_id: str = Field(primary_key=True, max_length=63)
    pinned_by: str = Field(max_length=128)
    pinned_at: datetime = _time(default_factory=utc_now)
    reason: str = Field(max_length=2000)
    # When retention first found it due and kept it (recorded once in the audit log).
    kept_since: datetime | None = _time(default=None)


class RetentionPurge(SQLModel, table=True):
    """An alert whose media and personal data retention deleted (cloud/retention.py)."""

    __tablename__ = "retention_purge"

    event_id: str = Field(primary_key=True, max_length=63)
    purged_at: datetime = _time(index=True)
    rule: str = Field(max_length=64)  # e.g. "false_alarm 7d"
    files: int = 0
    bytes: int = 0


# --- attention: notification channels, escalation, outages (cloud/attention/) --------------------


class NotifyEndpoint(SQLModel, table=True):
    """Somebody reachable on one channel: a webhook URL, e-mail addresses, or an SMS/OTT gateway."""

    __tablename__ = "notify_endpoint"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, max_length=100)  # who: "Ward 1 duty officer (Zalo)"
    kind: str = Field(max_length=16)  # webhook | email | gateway
    config: dict[str, Any] = _json(default_factory=dict)
    enabled: bool = True
    created_at: datetime = _time(default_factory=utc_now)
    updated_at: datetime = _time(default_factory=utc_now)


class Notification(SQLModel, table=True):
    """The durable queue of every channel: one row per message to one endpoint, sent at least once.

    A sender claims a row by setting claimed_by/claimed_until (a lease: a sender that dies lets go
    when it runs out); a failure sets next_at with backoff; `failed` is final and shown."""

    __tablename__ = "notification"
    __table_args__ = (
        Index("ix_notification_due", "status", "next_at"),
        Index("ux_notification_once", "endpoint_id", "event_id", "reason", unique=True),
    )

    id: int | None = Field(default=None, primary_key=True)
    endpoint_id: int = Field(index=True)
    event_id: str = Field(index=True, max_length=63)
    reason: str = Field(max_length=32)  # "level-1", "level-2", "test-…"
    kind: str = Field(max_length=16)
    message: dict[str, Any] = _json()
    status: str = Field(default="pending", max_length=16)  # pending | sent | failed
    attempts: int = 0
    next_at: datetime = _time()
    claimed_by: str | None = Field(default=None, max_length=100)
    claimed_until: datetime | None = _time(default=None)
    last_error: str | None = Field(default=None, max_length=500)
    created_at: datetime = _time()
    sent_at: datetime | None = _time(default=None)


class EscalationPolicy(SQLModel, table=True):
    """Who hears about an unacknowledged alert, and when: per ward ('*' = every ward) and category
    (security_order, urban_order, outage). levels = [{"after_min": N, "endpoints": [id, …]}, …]."""

    __tablename__ = "escalation_policy"
    __table_args__ = (Index("ux_escalation_policy_scope", "ward", "category", unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    ward: str = Field(max_length=63)
    category: str = Field(max_length=32)
    levels: list[dict[str, Any]] = _json(default_factory=list)
    updated_by: str | None = Field(default=None, max_length=128)
    updated_at: datetime = _time(default_factory=utc_now)


class Escalation(SQLModel, table=True):
    """One alert's place in its policy: `level` levels done, the next due at next_at (None: over)."""

    __tablename__ = "escalation"

    event_id: str = Field(primary_key=True, max_length=63)
    policy_id: int | None = Field(default=None)
    level: int = 0
    next_at: datetime | None = _time(default=None, index=True)
    state: str = Field(default="active", max_length=16)  # active | stopped | done
    stopped_reason: str | None = Field(default=None, max_length=64)
    created_at: datetime = _time()
    updated_at: datetime = _time()


class Outage(SQLModel, table=True):
    """A device seen offline: suspected from `since`; after the debounce it is an alert (event_id).
    The primary key keeps it to one per device, however often it flaps."""

    __tablename__ = "outage"

    device_id: str = Field(primary_key=True, max_length=63)
    since: datetime = _time()  # when we first saw it offline (this episode)
    status_at: datetime | None = _time(default=None)  # the device's status time we saw then
    event_id: str | None = Field(default=None, max_length=63)


def table(model: type[SQLModel]) -> Any:
    """The SQLAlchemy Table of a model, for core statements (bulk insert, upsert)."""
    return model.__table__  # type: ignore[attr-defined]


__all__ = [
    "ALERT_STATES",
    "ROLES",
    "AlertRow",
    "AlertPin",
    "AuditHead",
    "AuditLog",
    "EvidenceCheck",
    "RetentionPurge",
    "Camera",
    "ClaimToken",
    "DesiredConfigRow",
    "Device",
    "HealthLatest",
    "HealthSample",
    "Escalation",
    "EscalationPolicy",
    "MediaObject",
    "Notification",
    "NotifyEndpoint",
    "Outage",
    "User",
    "Ward",
    "table",
]

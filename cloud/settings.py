"""Settings of the cloud service, from flags over environment (MATTHAN_CLOUD_*) over defaults.

A plain pydantic model: `Settings.from_env(db_url=…)` reads the environment and lets explicit
values (the CLI's flags, a test's arguments) win. It is built once, by the composition root, and
passed down (`app.state.settings`, the `AppSettings` dependency): nothing reads the environment
while serving a request. Nothing here opens a connection.

Two groups keep their older environment names: enrollment (MATTHAN_PROVISION_CA_DIR, _BROKER_URL,
_BROKER_DIR) and the console's time zone (MATTHAN_CONSOLE_TZ).
"""

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cloud.errors import CloudError
from matthan.i18n import Msg
from matthan_wire.codec import describe

ENV_PREFIX = "MATTHAN_CLOUD_"
ENROLLMENT_ENV_PREFIX = "MATTHAN_PROVISION_"
CONSOLE_TZ_ENV = "MATTHAN_CONSOLE_TZ"


class EnrollmentSettings(BaseModel):
    """What enrollment needs: the CA (required to enroll), the broker URL devices dial, and the
    broker-config folder (when set, the ACL and CRL are regenerated and the broker reloaded on
    every enrollment and revocation)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ca_dir: Path | None = None
    broker_url: str | None = None
    broker_dir: Path | None = None
    device_cert_days: int | None = Field(default=None, ge=1)  # None: the CA's default (90 days)

    @classmethod
    def from_env(cls, source: Mapping[str, str]) -> "EnrollmentSettings":
        return cls(
            ca_dir=source.get(f"{ENROLLMENT_ENV_PREFIX}CA_DIR") or None,
            broker_url=source.get(f"{ENROLLMENT_ENV_PREFIX}BROKER_URL") or None,
            broker_dir=source.get(f"{ENROLLMENT_ENV_PREFIX}BROKER_DIR") or None,
        )


ATTENTION_ENV_PREFIX = "MATTHAN_CLOUD_ATTENTION_"


class AttentionSettings(BaseModel):
    """Escalation, outages and notification channels (cloud/attention). Environment:
    MATTHAN_CLOUD_ATTENTION_<FIELD>, e.g. MATTHAN_CLOUD_ATTENTION_SMTP_HOST."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True  # run the attention worker inside `serve`
    tick_s: float = Field(default=2.0, gt=0.0, le=60.0)
    # A device offline this long (continuously) becomes an outage alert; shorter blips are absorbed.
    outage_debounce_s: float = Field(default=120.0, ge=0.0)
    # Alerts older than this when first seen (say, a backlog after an upgrade) are not escalated.
    escalate_max_age_h: float = Field(default=24.0, gt=0.0)
    retry_initial_s: float = Field(default=10.0, gt=0.0)
    retry_max_s: float = Field(default=900.0, gt=0.0)
    # After this many failed attempts a notification is `failed` (shown in the console), not retried.
    max_attempts: int = Field(default=20, ge=1, le=1000)
    lease_s: float = Field(default=120.0, gt=0.0)  # a sender's claim on a row; > the longest send
    send_timeout_s: float = Field(default=15.0, gt=0.0, le=120.0)
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_starttls: bool = True
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_from: str = "matthan@localhost"
    # Seals endpoints' secrets in the database (cloud/attention/sealing.py): comma-separated keys
    # from `matthan cloud endpoint-key`, the first sealing. Unset: stored as given.
    endpoint_key: str | None = Field(default=None, repr=False)
    # For tests and drills only: a file holding seconds to add to the clock (cloud/attention/clock.py).
    clock_file: Path | None = None

    @classmethod
    def from_env(cls, source: Mapping[str, str]) -> "AttentionSettings":
        values = {
            name: source[ATTENTION_ENV_PREFIX + name.upper()]
            for name in cls.model_fields
            if ATTENTION_ENV_PREFIX + name.upper() in source
        }
        return cls.model_validate(values)


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # SQLite (WAL) file by default; postgresql://user@host/db for a real deployment.
    db_url: str = "sqlite:///matthan-cloud.db"
    # None runs the API without MQTT (no ingest, desired config stored but not published).
    broker_url: str | None = "mqtt://127.0.0.1:1883"
    broker_ca: str | None = None
    broker_cert: str | None = None
    broker_key: str | None = None
    broker_username: str | None = None
    broker_password: str | None = None
    # A local folder, or s3://bucket/prefix (endpoint from s3_endpoint_url or the AWS environment).
    clips: str = "clips"
    s3_endpoint_url: str | None = None
    # Where partial uploads wait when the store is S3 (append is impossible on object stores).
    staging_dir: str = "clips-staging"
    # Signs session cookies. Without one, a random key lives as long as the process (sessions
    # do not survive a restart; set MATTHAN_CLOUD_SECRET_KEY in production).
    secret_key: str = Field(default_factory=lambda: secrets.token_urlsafe(32), min_length=16)
    public_url: str = "http://127.0.0.1:8000"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)

    # Ingest
    ingest: bool = True  # run the MQTT ingest worker inside `serve`
    # MQTT 5 shared subscription group; None = plain subscriptions (one worker).
    share_group: str | None = None
    batch_max: int = Field(default=1000, ge=1, le=5000)
    batch_wait_s: float = Field(default=0.05, gt=0.0, le=5.0)
    queue_max: int = Field(default=50_000, ge=10)
    # The queue is bounded in bytes too: a snapshot may be 1 MiB, so 50,000 of them would be 50 GB.
    queue_max_bytes: int = Field(default=256 * 1024 * 1024, ge=1024 * 1024)
    # Messages the ingest could not store (database refusal, our own bug), for an operator.
    quarantine_dir: str = "ingest-quarantine"
    quarantine_max: int = Field(default=10_000, ge=0)
    # Default health interval of a device with no desired config; offline after 3 × interval.
    health_interval_s: float = Field(default=30.0, gt=0.0)
    offline_factor: float = Field(default=3.0, ge=1.0)
    health_retention_days: float = Field(default=14.0, gt=0.0)

    # Ward stations: an alert no station has confirmed is sent again on the ward's station-alert
    # topic, first after station_resend_first_s, then with doubling gaps up to station_resend_max_s,
    # for alerts received within station_resend_window_h; a station's sync gets them all at once.
    station_delivery: bool = True
    station_resend_first_s: float = Field(default=5.0, gt=0.0)
    station_resend_max_s: float = Field(default=300.0, gt=0.0)
    station_resend_window_h: float = Field(default=24.0, gt=0.0)

    # Uploads
    max_upload_bytes: int = Field(default=512 * 1024 * 1024, ge=1)
    session_hours: float = Field(default=12.0, gt=0.0)

    # Retention by purpose (cloud/retention.py): days after an alert's outcome was decided that its
    # clip, snapshot and personal data are kept; alerts pinned as evidence are never deleted.
    retention_false_alarm_days: float = Field(default=7.0, gt=0.0)
    retention_resolved_days: float = Field(default=90.0, gt=0.0)
    # Per category and outcome, e.g. {"security_order/resolved": 180}; JSON in the environment.
    retention_days_by_category: dict[str, float] = Field(default_factory=dict)
    retention_interval_s: float = Field(default=3600.0, gt=0.0)

    # The district's clock for the console's pages and per-day counts (an IANA zone name).
    console_tz: str = "Asia/Ho_Chi_Minh"
    # The console's language for users who chose none; "auto": the browser's (Accept-Language).
    language: Literal["vi", "en", "auto"] = "vi"
    # The console's street maps: a tile server URL with {z}/{x}/{y} (the operations centre's own, or
    # e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png within its usage policy) and the credit it
    # asks for. None: the maps still show markers, on a blank background.
    map_tile_url: str | None = Field(default=None, max_length=500)
    map_attribution: str = Field(default="", max_length=300)
    enrollment: EnrollmentSettings = Field(default_factory=EnrollmentSettings)
    attention: AttentionSettings = Field(default_factory=AttentionSettings)

    @field_validator("retention_days_by_category", mode="before")
    @classmethod
    def _retention_json(cls, value: Any) -> Any:
        if isinstance(value, str):
            import json

            try:
                return json.loads(value or "{}")
            except ValueError:
                raise ValueError('retention_days_by_category: JSON like {"traffic/resolved": 30}') from None
        return value

    def retention_days(self, category: str, outcome: str) -> float | None:
        """Days to keep an alert's media after `outcome`; None while the purpose is not served yet."""
        specific = self.retention_days_by_category.get(f"{category}/{outcome}")
        if specific is not None:
            return specific
        days = {"false_alarm": self.retention_false_alarm_days, "resolved": self.retention_resolved_days}
        return days.get(outcome)

    @field_validator("db_url")
    @classmethod
    def _db_scheme(cls, url: str) -> str:
        if not url.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:", "postgres:")):
            raise ValueError(f"database URL {url!r}: use sqlite:///FILE or postgresql://user@host/db")
        return url

    @field_validator("broker_url")
    @classmethod
    def _broker_scheme(cls, url: str | None) -> str | None:
        if url in ("", "none"):  # how the environment says "no broker"
            return None
        if url is not None and not url.startswith(("mqtt://", "mqtts://")):
            raise ValueError(f"broker URL {url!r}: use mqtt://host:port or mqtts://host:port")
        return url

    @field_validator("map_tile_url")
    @classmethod
    def _tiles(cls, url: str | None) -> str | None:
        if url in (None, "", "none"):
            return None
        placeholders = all(k in url for k in ("{z}", "{x}", "{y}"))
        if not url.startswith(("https://", "http://", "/")) or not placeholders:
            raise ValueError(
                f"map tile URL {url!r}: use https://host/path/{{z}}/{{x}}/{{y}}.png (or none for no streets)"
            )
        return url

    @field_validator("clips")
    @classmethod
    def _clips(cls, where: str) -> str:
        if where.startswith("s3://") and len(where) <= len("s3://"):
            raise ValueError("clips: s3://bucket[/prefix] needs a bucket")
        return where

    @property
    def clips_is_s3(self) -> bool:
        return self.clips.startswith("s3://")

    @property
    def clips_dir(self) -> Path:
        """The local folder: the store itself, or (for S3) where partial uploads are staged."""
        if self.clips_is_s3:
            return Path(self.staging_dir)
        return Path(self.clips)

    @property
    def secure_cookies(self) -> bool:
        return self.public_url.startswith("https://")

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **explicit: Any) -> "Settings":
        """Environment MATTHAN_CLOUD_<FIELD> under explicit values; None explicit values are ignored."""
        source = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            key = ENV_PREFIX + name.upper()
            if key in source:
                values[name] = source[key]
        if CONSOLE_TZ_ENV in source:
            values.setdefault("console_tz", source[CONSOLE_TZ_ENV])
        values.pop("enrollment", None)
        values.pop("attention", None)
        values.update({k: v for k, v in explicit.items() if v is not None})
        try:
            values.setdefault("enrollment", EnrollmentSettings.from_env(source))
            values.setdefault("attention", AttentionSettings.from_env(source))
            return cls.model_validate(values)
        except ValidationError as exc:
            raise CloudError(Msg("cloud settings: %(problem)s", problem=describe(exc))) from None

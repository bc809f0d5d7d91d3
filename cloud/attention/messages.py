"""What every notification says, whatever the channel: site (when known), local time with its zone,
the rule in words, and the alert page's URL. Built once when the notification is queued, so a
message sent after a restart says what it said when it was decided."""

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel
from sqlmodel import Session

from cloud.models import AlertRow, Camera
from matthan import vocabulary


def rule_words(rule_type: str) -> str:
    """The rule type in the words an officer reads, Vietnamese first and the English after it: a
    notification goes to a phone or a mailbox whose reader's language the cloud does not know.
    The words are the catalogues' (matthan/vocabulary.py, docs/glossary-vi.md)."""
    vi = vocabulary.name("vi", rule_type, vocabulary.RULE_TYPES)
    en = vocabulary.name("en", rule_type, vocabulary.RULE_TYPES)
    return vi if vi == en else f"{vi} ({en})"


class Message(BaseModel):
    """The channel-independent content of one notification (stored in the queue row)."""

    event_id: str
    ward: str
    device_id: str
    camera_id: str
    site: str | None
    rule: str
    rule_words: str
    category: str
    started_local: str  # "2026-11-26 18:03:12 +07 (Asia/Ho_Chi_Minh)"
    started_at: datetime
    url: str
    level: int
    level_name: str
    snapshot_key: str | None = None  # where the snapshot lives in the clip store, if it does

    @property
    def subject(self) -> str:
        where = self.site or f"{self.device_id}/{self.camera_id}"
        return f"[matthan {self.ward}] {self.rule_words} — {where} — {self.started_local}"

    @property
    def text(self) -> str:
        lines = [
            f"Cảnh báo / Alert: {self.rule_words}",
            f"Địa điểm / Site: {self.site or '(chưa đặt tên / unnamed)'}",
            f"Camera: {self.device_id}/{self.camera_id}",
            f"Phường / Ward: {self.ward}",
            f"Thời gian / Time: {self.started_local}",
            f"Quy tắc / Rule: {self.rule}",
            f"Chưa xác nhận — cấp {self.level} ({self.level_name}) / Not acknowledged — level {self.level}",
            f"Xem / Open: {self.url}",
        ]
        return "\n".join(lines)

    def fields(self) -> dict[str, Any]:
        """The placeholders a gateway template may use: {site}, {time}, {rule}, {url}, …"""
        return {
            "event_id": self.event_id,
            "ward": self.ward,
            "device": self.device_id,
            "camera": self.camera_id,
            "site": self.site or f"{self.device_id}/{self.camera_id}",
            "time": self.started_local,
            "rule": self.rule_words,
            "rule_id": self.rule,
            "category": self.category,
            "url": self.url,
            "level": self.level,
            "level_name": self.level_name,
            "text": self.text,
        }


def local_time(moment: datetime, tz_name: str) -> str:
    try:
        zone = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        zone, tz_name = ZoneInfo("UTC"), "UTC"
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %z") + f" ({tz_name})"


def alert_url(public_url: str, event_id: str) -> str:
    return f"{public_url.rstrip('/')}/console/alerts/{event_id}"


def build(
    session: Session,
    alert: AlertRow,
    *,
    public_url: str,
    tz_name: str,
    level: int,
    level_name: str,
    snapshot_key: str | None,
) -> Message:
    cam = session.get(Camera, (alert.device_id, alert.camera_id))
    return Message(
        event_id=alert.event_id,
        ward=alert.ward,
        device_id=alert.device_id,
        camera_id=alert.camera_id,
        site=cam.site_name if cam is not None else None,
        rule=alert.rule,
        rule_words=rule_words(alert.type),
        category=alert.category,
        started_local=local_time(alert.started_at, tz_name),
        started_at=alert.started_at,
        url=alert_url(public_url, alert.event_id),
        level=level,
        level_name=level_name,
        snapshot_key=snapshot_key,
    )

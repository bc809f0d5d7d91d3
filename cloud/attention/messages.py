"""What every notification says, whatever the channel: site (when known), local time with its zone,
the rule in words, and the alert page's URL — in one language, the deployment's (Settings.language:
neither a ward nor an endpoint names a language of its own, and the cloud does not know the reader
of a phone number or a mailbox). Built once when the notification is queued, so a message sent
after a restart says what it said when it was decided, in the language it was decided in."""

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel
from sqlmodel import Session

from cloud.models import AlertRow, Camera
from matthan import i18n, vocabulary
from matthan.i18n import translate


def notification_language(setting: str) -> str:
    """The deployment's language setting as the language notifications are written in: "auto"
    (the console follows each browser) has no reader to follow here, so the default, Vietnamese."""
    return setting if setting in i18n.LANGUAGES else i18n.DEFAULT_LANGUAGE


def rule_words(rule_type: str, lang: str) -> str:
    """The rule type in the words an officer reads (matthan/vocabulary.py, docs/glossary-vi.md)."""
    return vocabulary.name(lang, rule_type, vocabulary.RULE_TYPES)


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
    started_local: str  # "2026-11-26 18:03:12 +0700 (Asia/Ho_Chi_Minh)"
    started_at: datetime
    url: str
    level: int
    level_name: str
    snapshot_key: str | None = None  # where the snapshot lives in the clip store, if it does
    # The language of the words above and of subject/text. Rows queued before it existed were
    # written in both languages; they are sent in the default one.
    lang: str = i18n.DEFAULT_LANGUAGE
    started_words: str = ""  # as `lang` writes it: "18:03:12 26/11/2026 GMT+7 (Asia/Ho_Chi_Minh)"

    @property
    def when(self) -> str:
        return self.started_words or self.started_local

    @property
    def subject(self) -> str:
        where = self.site or f"{self.device_id}/{self.camera_id}"
        return f"[matthan {self.ward}] {self.rule_words} — {where} — {self.when}"

    @property
    def text(self) -> str:
        t = self.lang
        lines = [
            translate(t, "Alert: %(rule)s", rule=self.rule_words),
            translate(t, "Site: %(site)s", site=self.site or translate(t, "(unnamed)")),
            translate(t, "Camera: %(camera)s", camera=f"{self.device_id}/{self.camera_id}"),
            translate(t, "Ward: %(ward)s", ward=self.ward),
            translate(t, "Time: %(time)s", time=self.when),
            translate(t, "Rule: %(rule)s", rule=self.rule),
            translate(
                t, "Not acknowledged — level %(level)d (%(name)s)", level=self.level, name=self.level_name
            ),
            translate(t, "Open: %(url)s", url=self.url),
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
            "time": self.when,
            "rule": self.rule_words,
            "rule_id": self.rule,
            "category": self.category,
            "url": self.url,
            "level": self.level,
            "level_name": self.level_name,
            "text": self.text,
            "lang": self.lang,
        }


def _zone(tz_name: str) -> tuple[ZoneInfo, str]:
    try:
        return ZoneInfo(tz_name), tz_name
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC"), "UTC"


def local_time(moment: datetime, tz_name: str) -> str:
    zone, tz_name = _zone(tz_name)
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %z") + f" ({tz_name})"


def alert_url(public_url: str, event_id: str) -> str:
    return f"{public_url.rstrip('/')}/console/alerts/{event_id}"


def build(
    session: Session,
    alert: AlertRow,
    *,
    public_url: str,
    tz_name: str,
    lang: str,
    level: int,
    level_name: str | None,
    snapshot_key: str | None,
) -> Message:
    """`level_name`: the policy's own name for the level (the operators' words), else "level N"."""
    cam = session.get(Camera, (alert.device_id, alert.camera_id))
    zone, zone_name = _zone(tz_name)
    return Message(
        event_id=alert.event_id,
        ward=alert.ward,
        device_id=alert.device_id,
        camera_id=alert.camera_id,
        site=cam.site_name if cam is not None else None,
        rule=alert.rule,
        rule_words=rule_words(alert.type, lang),
        category=alert.category,
        started_local=local_time(alert.started_at, tz_name),
        started_at=alert.started_at,
        url=alert_url(public_url, alert.event_id),
        level=level,
        level_name=level_name or translate(lang, "level %(level)d", level=level),
        snapshot_key=snapshot_key,
        lang=lang,
        started_words=f"{i18n.format_moment(alert.started_at, lang, zone)} ({zone_name})",
    )

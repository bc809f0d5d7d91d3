"""How people read an alert: the rule in words, the local time with its zone, the place on one line.

Shared by the device (the snapshot's caption), the ward station (its lines) and the cloud (the
console), so an officer reads the same words wherever the alert reaches them.
"""

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from matthan_wire.config import Site

# Vietnamese first (the officers' language), the English word after it for the operations centre.
RULE_WORDS: dict[str, str] = {
    "intrusion": "Xâm nhập khu vực cấm (intrusion)",
    "loitering": "Lảng vảng kéo dài (loitering)",
    "crowd": "Tụ tập đông người (crowd)",
    "illegal_parking": "Đỗ xe trái phép (illegal parking)",
    "encroachment": "Lấn chiếm vỉa hè (encroachment)",
    "wrong_way": "Đi ngược chiều (wrong way)",
    "camera_offline": "Camera mất tín hiệu (camera offline)",
}

STATE_WORDS: dict[str, str] = {
    "new": "mới (new)",
    "delivered": "đã nhận (delivered)",
    "acknowledged": "đang xử lý (acknowledged)",
    "resolved": "đã xử lý (resolved)",
    "false_alarm": "báo nhầm (false alarm)",
}


def rule_words(rule_type: str, title: str | None = None) -> str:
    """The rule's display name when it has one, else what its type means."""
    return title or RULE_WORDS.get(rule_type, rule_type)


def zone_of(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local_time(at: datetime, tz: str | ZoneInfo) -> str:
    """`2026-11-26 15:18:18 +07 (Asia/Ho_Chi_Minh)`: the wall clock and which clock it is."""
    zone = zone_of(tz) if isinstance(tz, str) else tz
    here = at.astimezone(zone)
    offset = here.strftime("%z")  # +0700
    short = offset[:3] if offset.endswith("00") else f"{offset[:3]}:{offset[3:]}"
    return f"{here:%Y-%m-%d %H:%M:%S} {short} ({zone.key})"


def site_line(site: Site | None) -> str:
    """`Ngã tư Bến Thành, Lê Lợi, Quận 1 (10.77250, 106.69800)`; empty when the site is unknown."""
    if site is None:
        return ""
    text = site.name
    if site.address:
        text += f", {site.address}"
    if site.lat is not None and site.lon is not None:
        text += f" ({site.lat:.5f}, {site.lon:.5f})"
    return text

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from matthan_wire import Alert, Health, Receipt, Status, WireError, decode, encode

GOLDEN = Path(__file__).parent / "golden"


def _alert(**change: object) -> bytes:
    data = json.loads((GOLDEN / "alert_start.json").read_bytes())
    data.update(change)
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"v": 2}, "v"),
        ({"device_id": "Q1 REX"}, "device_id"),
        ({"device_id": "+"}, "device_id"),
        ({"started_at": "2026-11-24T08:30:12.345"}, "UTC offset"),
        ({"score": 1.5}, "score"),
        ({"object_count": "7"}, "object_count"),
        ({"bbox": [0.1, 0.2]}, "bbox"),
        ({"bbox": [0.6, 0.2, 0.1, 0.4]}, "x1 <= x2"),
        ({"ended_at": "2026-11-24T08:31:00.000Z"}, "no ended_at"),
        ({"category": "urban_order"}, "belongs to category"),
        ({"type": "jaywalking"}, "type"),
    ],
)
def test_bad_alert_is_rejected_with_reason(change: dict[str, object], reason: str) -> None:
    with pytest.raises(WireError, match=reason):
        decode(Alert, _alert(**change))


def test_not_json_and_oversize_are_wire_errors() -> None:
    with pytest.raises(WireError):
        decode(Alert, b"\xff\xfe not json")
    with pytest.raises(WireError, match="exceeds"):
        decode(Alert, b" " * (300 * 1024))


def test_timestamps_are_utc_with_milliseconds() -> None:
    from zoneinfo import ZoneInfo

    local = datetime(2026, 11, 24, 15, 30, 12, 345678, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh"))
    raw = encode(Status(state="online", at=local))
    assert json.loads(raw)["at"] == "2026-11-24T08:30:12.345Z"


def test_receipt_needs_ids() -> None:
    with pytest.raises(WireError):
        decode(Receipt, json.dumps({"v": 1, "event_ids": [], "at": "2026-11-24T08:30:00Z"}))
    r = Receipt(event_ids=["a-1"], at=datetime.now(UTC))
    assert decode(Receipt, encode(r)) == r


def test_health_cloud_link_fields_default_for_older_agents_and_are_bounded() -> None:
    raw = json.loads((GOLDEN / "health.json").read_bytes())
    for key in ("outbox_resends_1h", "outbox_oldest_age_s"):
        older = {k: v for k, v in raw.items() if k not in ("outbox_resends_1h", "outbox_oldest_age_s")}
        assert getattr(decode(Health, json.dumps(older).encode()), key) == 0
        for bad in (-1, 2**63, 1.5, "12"):
            with pytest.raises(WireError):
                decode(Health, json.dumps({**raw, key: bad}).encode())

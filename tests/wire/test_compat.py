"""The alert's compatibility rule within v1: additive fields, a tolerant reader, strict known fields."""

import json
from pathlib import Path

import pytest

from matthan_wire import Alert, WireError, decode, encode

GOLDEN = Path(__file__).parent / "golden"
SITE = {
    "name": "Ngã tư Bến Thành",
    "address": "Lê Lợi, phường Bến Thành, Quận 1",
    "lat": 10.7725,
    "lon": 106.698,
}


def _alert(**change: object) -> dict[str, object]:
    data: dict[str, object] = json.loads((GOLDEN / "alert_start.json").read_bytes())
    data.update(change)
    return data


def test_an_older_devices_alert_without_the_additions_is_accepted_and_rewritten_identically() -> None:
    raw = (GOLDEN / "alert_start.json").read_bytes().strip()
    alert = decode(Alert, raw)
    assert alert.site is None and alert.zone_title is None and alert.rule_title is None
    assert encode(alert) == raw  # absent additions are not written as nulls


def test_a_newer_devices_unknown_top_level_field_is_ignored() -> None:
    alert = decode(Alert, json.dumps(_alert(weather={"rain_mm": 3}, priority=2)))
    assert alert.event_id == "3f1c2a9e-7b1d-4c1e-9a51-0c6f2d0e8b11"
    assert b"weather" not in encode(alert)


def test_site_and_titles_travel_in_utf8_intact() -> None:
    data = _alert(site=SITE, zone_title="vỉa hè cửa phường", rule_title="Tụ tập đông người")
    raw = json.dumps(data, ensure_ascii=False).encode()
    alert = decode(Alert, raw)
    assert alert.site is not None and alert.site.name == "Ngã tư Bến Thành"
    assert (alert.site.lat, alert.site.lon) == (10.7725, 106.698)
    out = encode(alert)
    assert "Ngã tư Bến Thành".encode() in out  # UTF-8 on the wire, not \\u escapes
    assert decode(Alert, out) == alert


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"site": {"name": ""}}, "site.name"),
        ({"site": {"name": "x", "lat": 91.0, "lon": 106.0}}, "site.lat"),
        ({"site": {"name": "x", "lat": 10.0}}, "lat and lon go together"),
        ({"site": {"name": "x", "street": "y"}}, "site.street"),  # tolerant at the top level only
        ({"site": "Bến Thành"}, "site"),
        ({"zone_title": "x" * 201}, "zone_title"),
        ({"score": 1.5, "future": True}, "score"),  # unknown ignored, malformed known still rejected
    ],
)
def test_a_malformed_known_field_is_still_rejected(change: dict[str, object], reason: str) -> None:
    with pytest.raises(WireError, match=reason):
        decode(Alert, json.dumps(_alert(**change)))

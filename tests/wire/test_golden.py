"""Golden payloads pin the wire format: field names, order, timestamp shape."""

import json
from pathlib import Path

import pytest

from matthan_wire import (
    Alert,
    AlertState,
    Command,
    DesiredConfig,
    Health,
    Receipt,
    ReportedConfig,
    Status,
    decode,
    encode,
)

GOLDEN = Path(__file__).parent / "golden"

CASES = [
    ("alert_start.json", Alert),
    ("alert_end.json", Alert),
    ("alert_tamper_start.json", Alert),
    ("health.json", Health),
    ("status_offline.json", Status),
    ("receipt.json", Receipt),
    ("alert_state.json", AlertState),
    ("command.json", Command),
    ("config_reported.json", ReportedConfig),
    ("config_desired.json", DesiredConfig),
]


@pytest.mark.parametrize(("name", "model"), CASES)
def test_golden_round_trip_is_byte_identical(name: str, model: type) -> None:
    raw = (GOLDEN / name).read_bytes().strip()
    msg = decode(model, raw)
    assert encode(msg) == raw


@pytest.mark.parametrize(("name", "model"), CASES)
def test_golden_payload_declares_schema_version(name: str, model: type) -> None:
    assert json.loads((GOLDEN / name).read_bytes())["v"] == 1


def test_payloads_from_before_the_tamper_fields_still_decode() -> None:
    """Alert.tamper and CameraHealth.tamper are additive: a sender that does not know them is fine."""
    alert = (GOLDEN / "alert_start.json").read_text().strip().replace(',"tamper":null', "")
    health = (GOLDEN / "health.json").read_text().strip().replace(',"tamper":null', "")
    assert "tamper" not in alert + health
    assert decode(Alert, alert).tamper is None
    assert decode(Health, health).cameras[0].tamper is None
    desired = json.loads((GOLDEN / "config_desired.json").read_text())
    for camera in desired["config"]["cameras"]:
        del camera["tamper"]
    assert decode(DesiredConfig, json.dumps(desired)).config.cameras[0].tamper.enabled

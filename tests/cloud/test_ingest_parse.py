"""The ingest's validation against real Mosquitto: malformed input rejected, counted and logged once
per source; alerts of older and newer devices accepted (cloud/ingest_parse.py)."""

import json
import logging

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session

from cloud.models import AlertRow, Camera, Device
from matthan_wire import Alert, Kind, encode
from matthan_wire.topics import device_topic
from tests.cloud.devicesim import SimDevice, make_alert
from tests.cloud.ingest_support import count, live, metric
from tests.support.net import wait_until

WARD, DEV = "ben-nghe", "q1-rex-01"

VALID = json.loads(encode(make_alert(DEV, WARD, seq=1)))
# Only what the contract requires: dropping an optional field (tamper, clip, …) leaves a valid alert.
REQUIRED = [k for k, f in Alert.model_fields.items() if f.is_required() and k != "v"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)


@st.composite
def mutated_alert(draw: st.DrawFn) -> bytes:
    body = dict(VALID)
    how = draw(st.sampled_from(["drop", "retype", "extra", "version", "id", "phase", "ward"]))
    if how == "drop":
        del body[draw(st.sampled_from(REQUIRED))]
    elif how == "retype":
        key = draw(st.sampled_from(["score", "seq", "labels", "started_at", "object_count", "bbox"]))
        body[key] = draw(st.sampled_from(["high", -1, {"x": 1}, "yesterday", [1, 2], True]))
    elif how == "extra":
        # A field added within v1 that is malformed (an unknown field is ignored: test_mixed_versions…).
        bad_sites = [
            "Bến Thành",
            {"name": ""},
            {"name": "a", "lat": 91, "lon": 1},
            {"name": "a", "lat": 10},
            7,
        ]
        body["site"] = draw(st.sampled_from(bad_sites))
    elif how == "version":
        body["v"] = draw(st.integers().filter(lambda v: v != 1))
    elif how == "id":
        body["event_id"] = draw(st.sampled_from(["../etc", "UPPER", "", "a/b", "#", "x" * 64]))
    elif how == "phase":
        body["ended_at"] = body["started_at"]  # a start with an end time
    else:
        body["ward"] = "da-kao"  # payload and topic disagree
    return json.dumps(body).encode()


payloads = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    mutated_alert(),
    st.text(max_size=200).map(str.encode),
)
topics = st.sampled_from(
    [Kind.ALERT, Kind.EVENT, Kind.HEALTH, Kind.STATUS, Kind.CONFIG_REPORTED, Kind.SNAPSHOT]
)


def test_a_thousand_malformed_payloads_are_rejected_counted_and_logged_once(  # type: ignore[no-untyped-def]
    make_settings, sqlite_url, broker, caplog
) -> None:
    caplog.set_level(logging.WARNING, logger="matthan.cloud.ingest")
    with live(make_settings, sqlite_url, broker) as cloud:
        dev = SimDevice(broker.port, DEV, WARD, will=False).start()
        sent: list[str] = []

        @settings(max_examples=1000, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(kind=topics, payload=payloads)
        def publish(kind: Kind, payload: bytes) -> None:
            if kind is Kind.CONFIG_REPORTED and not payload:
                payload = b"{}"  # an empty retained message clears the topic; that is not malformed
            if kind is Kind.SNAPSHOT:
                topic = device_topic(kind, WARD, DEV, "ev-1")
                payload = payload[:3].replace(b"\xff", b"") + payload[3:]  # never a JPEG header
            else:
                topic = device_topic(kind, WARD, DEV)
            dev.client.publish(topic, payload, qos=1)
            sent.append(kind.value)

        try:
            publish()
            assert len(sent) >= 1000
            wait_until(
                lambda: metric(cloud, "matthan_ingest_rejected_total") >= len(sent),
                30,
                what="every malformed payload counted",
            )
            assert metric(cloud, "matthan_ingest_rejected_total") == len(sent)
            # Still working: a good alert goes through after all that.
            good = make_alert(DEV, WARD, seq=9)
            dev.send_alert(good)
            dev.drain(timeout=10)
            assert count(cloud) == 1
        finally:
            dev.stop()
    rejected_logs = [r for r in caplog.records if "rejected" in r.getMessage()]
    # One line per (source, kind), not one per message.
    assert 1 <= len(rejected_logs) <= len(set(sent))


def test_mixed_versions_older_and_newer_devices_alerts_are_accepted(make_settings, db_url, broker) -> None:  # type: ignore[no-untyped-def]
    """An older device sends no site: the cloud fills it from its registry. A newer device sends a
    field this cloud does not know: ignored, the alert kept. A site sent is kept as sent."""
    with live(make_settings, db_url, broker) as cloud:
        with Session(cloud.app.state.engine) as s:  # type: ignore[attr-defined]
            s.add(Device(id=DEV, ward=WARD))
            s.add(Camera(device_id=DEV, id="cam-1", site_name="Chợ Bến Thành", address="Lê Lợi, Quận 1",
                         lat=10.7725, lon=106.698))  # fmt: skip
            s.commit()
        dev = SimDevice(broker.port, DEV, WARD).start()
        try:
            older = make_alert(DEV, WARD, seq=1)
            newer = json.loads(encode(make_alert(DEV, WARD, seq=2, camera="cam-2")))
            newer["site"] = {"name": "Nhà hát Thành phố", "address": None, "lat": 10.7767, "lon": 106.7031}
            newer["zone_title"] = "quảng trường"
            newer["priority"] = {"level": 2}  # added by a later release
            dev.client.publish(device_topic(Kind.ALERT, WARD, DEV), json.dumps(newer).encode(), qos=1)
            dev.send_alert(older)
            wait_until(lambda: count(cloud) == 2, 15, what="both alerts stored")
            with Session(cloud.app.state.engine) as s:  # type: ignore[attr-defined]
                a = s.get(AlertRow, older.event_id)
                b = s.get(AlertRow, newer["event_id"])
                assert a is not None and b is not None
                assert a.site == {
                    "name": "Chợ Bến Thành",
                    "address": "Lê Lợi, Quận 1",
                    "lat": 10.7725,
                    "lon": 106.698,
                }
                assert b.site == {
                    "name": "Nhà hát Thành phố",
                    "address": None,
                    "lat": 10.7767,
                    "lon": 106.7031,
                }
                assert b.zone_title == "quảng trường"
            assert metric(cloud, "matthan_ingest_rejected_total") == 0
        finally:
            dev.stop()

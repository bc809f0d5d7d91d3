"""Desired config round trip: API PUT → retained MQTT → the device applies → reported → in sync."""

import queue

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from matthan_wire import DesiredConfig, Kind, ReportedConfig, decode, encode, utc_now
from matthan_wire.config import SiteConfig
from matthan_wire.topics import device_topic
from tests.cloud.conftest import add_device, add_user, bearer
from tests.cloud.test_ingest import live
from tests.support.net import wait_until

WARD, DEV = "ben-nghe", "q1-rex-01"
SITE = {
    "cameras": [
        {
            "id": "rex-north",
            "name": "Rex hotel, north gate",
            "source": "rtsp://admin:secret@10.1.2.3/stream1",
            "zones": [
                {
                    "name": "plaza",
                    "polygon": [[0.05, 0.45], [0.95, 0.45], [0.95, 1.0], [0.05, 1.0]],
                    "rules": [{"type": "crowd", "labels": ["person"], "min_count": 6, "min_duration_s": 10}],
                }
            ],
        }
    ],
    "health": {"interval_s": 15},
}


def _device_client(port: int) -> tuple[mqtt.Client, "queue.Queue[mqtt.MQTTMessage]"]:
    got: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"dev-{DEV}", protocol=mqtt.MQTTv5)
    c.on_message = lambda _c, _u, m: got.put(m)
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c, got


def test_desired_config_round_trip(make_settings, db_url, broker) -> None:  # type: ignore[no-untyped-def]
    with live(make_settings, db_url, broker) as cloud:
        add_device(cloud, DEV, WARD)
        admin = add_user(cloud, "admin", "admin")
        r = cloud.put(f"/api/v1/devices/{DEV}/config", json=SITE, headers=bearer(admin))
        assert r.status_code == 200, r.text
        assert (r.json()["desired_version"], r.json()["in_sync"], r.json()["published"]) == (1, False, True)

        # The device connects later: the retained message is waiting for it.
        dev, got = _device_client(broker.port)
        try:
            dev.subscribe(device_topic(Kind.CONFIG_DESIRED, WARD, DEV), qos=1)
            msg = got.get(timeout=5)
            assert msg.retain
            desired = decode(DesiredConfig, msg.payload)
            assert desired.version == 1 and desired.config == SiteConfig.model_validate(SITE)
            report = ReportedConfig(version=desired.version, status="applied", at=utc_now())
            dev.publish(device_topic(Kind.CONFIG_REPORTED, WARD, DEV), encode(report), qos=1, retain=True)
            wait_until(
                lambda: cloud.get(f"/api/v1/devices/{DEV}/config", headers=bearer(admin)).json()["in_sync"],
                5,
                what="in sync after the report",
            )
            state = cloud.get(f"/api/v1/devices/{DEV}/config", headers=bearer(admin)).json()
            assert state["reported_version"] == 1 and state["config"]["cameras"][0]["id"] == "rex-north"

            # A second version: out of sync until the device reports it; a rejection is shown.
            r = cloud.put(
                f"/api/v1/devices/{DEV}/config",
                json={**SITE, "health": {"interval_s": 5}},
                headers=bearer(admin),
            )
            assert r.json()["desired_version"] == 2 and r.json()["in_sync"] is False
            assert decode(DesiredConfig, got.get(timeout=5).payload).version == 2
            bad = ReportedConfig(
                version=1,
                status="rejected",
                rejected_version=2,
                error="camera rex-north: no such device",
                at=utc_now(),
            )
            dev.publish(device_topic(Kind.CONFIG_REPORTED, WARD, DEV), encode(bad), qos=1, retain=True)
            wait_until(
                lambda: cloud.get(f"/api/v1/devices/{DEV}", headers=bearer(admin)).json()["reported_error"], 5
            )
            detail = cloud.get(f"/api/v1/devices/{DEV}", headers=bearer(admin)).json()
            assert detail["in_sync"] is False and "no such device" in detail["reported_error"]
            # The camera's stream URL is kept without its password.
            assert detail["cameras"][0]["source_redacted"] == "rtsp://***@10.1.2.3/stream1"
            assert detail["cameras"][0]["site_name"] == "Rex hotel, north gate"
        finally:
            dev.loop_stop()
            dev.disconnect()


def test_a_ward_officer_sees_no_stream_credentials(make_settings, sqlite_url, broker) -> None:  # type: ignore[no-untyped-def]
    with live(make_settings, sqlite_url, broker) as cloud:
        add_device(cloud, DEV, WARD)
        admin = add_user(cloud, "admin", "admin")
        officer = add_user(cloud, "officer", "ward_officer", WARD)
        assert cloud.put(f"/api/v1/devices/{DEV}/config", json=SITE, headers=bearer(admin)).status_code == 200
        seen = cloud.get(f"/api/v1/devices/{DEV}/config", headers=bearer(officer))
        assert seen.status_code == 200 and "secret" not in seen.text
        assert seen.json()["config"]["cameras"][0]["source"] == "rtsp://***@10.1.2.3/stream1"
        full = cloud.get(f"/api/v1/devices/{DEV}/config", headers=bearer(admin)).json()
        assert full["config"]["cameras"][0]["source"] == SITE["cameras"][0]["source"]
        # A camera with two streams: neither input's password reaches the officer.
        cam = {k: v for k, v in SITE["cameras"][0].items() if k != "source"}
        cam["inputs"] = [
            {"source": "rtsp://admin:secret@10.1.2.3/sub", "roles": ["detect"]},
            {"source": "rtsp://admin:secret@10.1.2.3/main", "roles": ["record"]},
        ]
        two = {**SITE, "cameras": [cam]}
        assert cloud.put(f"/api/v1/devices/{DEV}/config", json=two, headers=bearer(admin)).status_code == 200
        seen = cloud.get(f"/api/v1/devices/{DEV}/config", headers=bearer(officer))
        assert seen.status_code == 200 and "secret" not in seen.text
        inputs = seen.json()["config"]["cameras"][0]["inputs"]
        assert [i["source"] for i in inputs] == ["rtsp://***@10.1.2.3/sub", "rtsp://***@10.1.2.3/main"]


def test_invalid_config_is_refused_and_changes_nothing(make_settings, sqlite_url, broker) -> None:  # type: ignore[no-untyped-def]
    with live(make_settings, sqlite_url, broker) as cloud:
        add_device(cloud, DEV, WARD)
        admin = add_user(cloud, "admin", "admin")
        officer = add_user(cloud, "officer", "ward_officer", WARD)
        broken = {
            "cameras": [
                {**SITE["cameras"][0], "zones": [{"name": "flat", "polygon": [[0, 0], [1, 1], [0.5, 0.5]]}]}
            ]
        }
        r = cloud.put(f"/api/v1/devices/{DEV}/config", json=broken, headers=bearer(admin))
        assert r.status_code == 422 and "no area" in r.text
        assert (
            cloud.put(f"/api/v1/devices/{DEV}/config", json=SITE, headers=bearer(officer)).status_code == 403
        )
        assert cloud.put("/api/v1/devices/nobody/config", json=SITE, headers=bearer(admin)).status_code == 404
        state = cloud.get(f"/api/v1/devices/{DEV}/config", headers=bearer(admin)).json()
        assert state["desired_version"] is None and state["config"] is None


def test_desired_configs_are_republished_after_the_broker_lost_them(
    make_settings, sqlite_url, broker_factory
) -> None:  # type: ignore[no-untyped-def]
    b = broker_factory(persistence=False).start()
    with live(make_settings, sqlite_url, b) as cloud:
        add_device(cloud, DEV, WARD)
        admin = add_user(cloud, "admin", "admin")
        assert cloud.put(f"/api/v1/devices/{DEV}/config", json=SITE, headers=bearer(admin)).status_code == 200
        b.restart()  # no persistence: the retained desired config is gone with it
        wait_until(lambda: cloud.app.state.mqtt.connects >= 2, 15, what="cloud reconnected")  # type: ignore[attr-defined]
        dev, got = _device_client(b.port)
        try:
            # Republished before we subscribe (retained) or after (live): either way it arrives.
            dev.subscribe(device_topic(Kind.CONFIG_DESIRED, WARD, DEV), qos=1)
            assert decode(DesiredConfig, got.get(timeout=15).payload).version == 1
        finally:
            dev.loop_stop()
            dev.disconnect()

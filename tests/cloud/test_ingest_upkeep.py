"""Device state from the ingest against real Mosquitto: offline after silence (cloud/ingest_upkeep.py)
or at once by the will, health history and metrics, health kept for the retention period."""

import time
from datetime import timedelta

from sqlmodel import Session

from cloud.models import Device, HealthSample
from matthan_wire import Kind, encode, utc_now
from matthan_wire.topics import device_topic
from tests.cloud.conftest import add_user, bearer
from tests.cloud.devicesim import SimDevice, make_health
from tests.cloud.ingest_support import count, live
from tests.support.net import wait_until

WARD, DEV = "ben-nghe", "q1-rex-01"


def test_silent_device_goes_offline_after_timeout_and_lwt_at_once(make_settings, db_url, broker) -> None:  # type: ignore[no-untyped-def]
    with live(make_settings, db_url, broker, health_interval_s=1.0) as cloud:
        key = add_user(cloud, "op", "operator")

        def online(device: str) -> bool | None:
            r = cloud.get(f"/api/v1/devices/{device}", headers=bearer(key))
            return r.json()["online"] if r.status_code == 200 else None

        quiet = SimDevice(broker.port, "quiet-1", WARD).start()
        quiet.online()
        quiet.send_health()
        wait_until(lambda: online("quiet-1") is True, 5, what="online after health")
        went_quiet = time.monotonic()
        wait_until(lambda: online("quiet-1") is False, 10, what="offline after 3 x health interval")
        assert time.monotonic() - went_quiet >= 2.0  # not before the timeout (3 × 1 s, minus slack)
        quiet.stop()

    # LWT: the will arrives at once, long before a 30 s × 3 timeout could fire.
    with live(make_settings, db_url, broker, health_interval_s=30.0) as cloud:
        key = add_user(cloud, "op2", "operator")
        dying = SimDevice(broker.port, "dying-1", WARD).start()
        dying.online()
        dying.send_health()
        wait_until(
            lambda: (
                cloud.get("/api/v1/devices/dying-1", headers=bearer(key)).status_code == 200
                and cloud.get("/api/v1/devices/dying-1", headers=bearer(key)).json()["online"]
            ),
            5,
        )
        dying.client.loop_stop()
        dying.client.socket().close()  # the agent dies without DISCONNECT: the broker sends the will
        cut = time.monotonic()
        wait_until(
            lambda: not cloud.get("/api/v1/devices/dying-1", headers=bearer(key)).json()["online"],
            5,
            what="offline from the LWT",
        )
        assert time.monotonic() - cut < 5
        with Session(cloud.app.state.engine) as s:  # type: ignore[attr-defined]
            device = s.get(Device, "dying-1")
            assert device is not None and device.status_at is not None


def test_health_history_and_metrics(make_settings, db_url, broker) -> None:  # type: ignore[no-untyped-def]
    # Both databases: PostgreSQL takes health-latest and last-seen through its own array statements.
    with live(make_settings, db_url, broker) as cloud:
        dev = SimDevice(broker.port, DEV, WARD).start()
        try:
            for _ in range(3):
                dev.send_health()
                time.sleep(0.05)
            key = add_user(cloud, "op", "operator")
            wait_until(
                lambda: (
                    len(cloud.get(f"/api/v1/devices/{DEV}", headers=bearer(key)).json()["health_history"])
                    == 3
                ),
                5,
            )
            detail = cloud.get(f"/api/v1/devices/{DEV}", headers=bearer(key)).json()
            assert detail["health_latest"]["cpu_pct"] == make_health(DEV, WARD).cpu_pct
            assert detail["health"]["cameras_up"] == 1 and detail["online"] is True
            upgraded = make_health(DEV, WARD).model_copy(
                update={"agent_version": "0.2.0", "outbox_resends_1h": 41, "outbox_oldest_age_s": 720}
            )
            dev.client.publish(device_topic(Kind.HEALTH, WARD, DEV), encode(upgraded), 0)
            wait_until(
                lambda: (
                    cloud.get(f"/api/v1/devices/{DEV}", headers=bearer(key)).json()["agent_version"]
                    == "0.2.0"
                ),
                5,
                what="agent version from health",
            )
            latest = cloud.get(f"/api/v1/devices/{DEV}", headers=bearer(key)).json()["health_latest"]
            assert (latest["outbox_resends_1h"], latest["outbox_oldest_age_s"]) == (41, 720)
            listed = cloud.get(
                "/api/v1/devices", params={"ward": WARD, "online": True}, headers=bearer(key)
            ).json()
            assert [d["id"] for d in listed["items"]] == [DEV]
            text = cloud.get("/metrics").text
            assert 'matthan_ingest_messages_total{kind="health"} 4.0' in text
            assert "matthan_devices_online 1.0" in text
            assert "matthan_db_commit_seconds_count" in text
        finally:
            dev.stop()


def test_health_history_is_kept_for_the_retention_period(make_settings, sqlite_url, broker) -> None:  # type: ignore[no-untyped-def]
    with live(make_settings, sqlite_url, broker, health_retention_days=7) as cloud:
        now = utc_now()
        with Session(cloud.app.state.engine) as s:  # type: ignore[attr-defined]
            for age_days in (0, 6.9, 7.1, 30):
                s.add(
                    HealthSample(
                        device_id=DEV,
                        at=now - timedelta(days=age_days),
                        cpu_pct=1,
                        mem_mb=1,
                        disk_free_mb=1,
                        outbox_depth=0,
                        upload_backlog=0,
                        cameras_up=1,
                        cameras_total=1,
                    )
                )
            s.commit()
        assert cloud.app.state.ingest.upkeep.purge_health() == 2  # type: ignore[attr-defined]
        assert count(cloud, HealthSample) == 2

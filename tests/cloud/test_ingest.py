"""MQTT ingest against real Mosquitto, on SQLite and PostgreSQL: idempotent, receipted only after
commit, malformed input rejected and counted, outages of broker and database lose nothing."""

import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func
from sqlmodel import Session, select

from cloud.models import AlertRow, Camera, Device
from cloud.settings import Settings
from matthan_wire import Alert, Kind, encode
from matthan_wire.topics import device_topic
from tests.cloud.conftest import add_user, bearer, running
from tests.cloud.devicesim import JPEG, SimDevice, make_alert, make_health
from tests.support.broker import Mosquitto
from tests.support.net import wait_until

WARD, DEV = "ben-nghe", "q1-rex-01"


@contextmanager
def live(
    make_settings: Callable[..., Settings], db_url: str, broker: Mosquitto, **kw: Any
) -> Iterator[TestClient]:
    with running(make_settings(db_url, broker.url, **kw)) as client:
        # The SUBACK, not just the connection: devices publish right after.
        assert client.app.state.mqtt.wait_subscribed(10)  # type: ignore[attr-defined]
        yield client


def _count(client: TestClient, model: Any = AlertRow) -> int:
    with Session(client.app.state.engine) as s:  # type: ignore[attr-defined]
        return int(s.exec(select(func.count()).select_from(model)).one())


def _metric(client: TestClient, name: str) -> float:
    total = 0.0
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_duplicates_are_stored_once_and_receipted_after_commit(make_settings, db_url, broker) -> None:  # type: ignore[no-untyped-def]
    with live(make_settings, db_url, broker) as cloud:
        dev = SimDevice(broker.port, DEV, WARD).start()
        try:
            start = make_alert(DEV, WARD, seq=1)
            dev.send_alert(start)
            dev.send_alert(start)  # the device did not see the first receipt and sends it again
            dev.send_snapshot(start.event_id)
            end = make_alert(DEV, WARD, seq=2, phase="end", event_id=start.event_id)
            dev.send_alert(end)
            dev.send_alert(end)
            dev.drain(timeout=15)
            assert start.event_id in dev.receipted("event_ids")
            assert start.event_id in dev.receipted("ends")
            assert start.event_id in dev.receipted("snapshots")
            assert _count(cloud) == 1

            key = add_user(cloud, "op", "operator")
            page = cloud.get("/api/v1/alerts", headers=bearer(key)).json()
            assert page["total"] == 1
            item = page["items"][0]
            assert item["event_id"] == start.event_id and item["ended_at"] is not None
            assert item["snapshot_url"] == f"/api/v1/media/{start.event_id}/snapshot"
            assert cloud.get(item["snapshot_url"], headers=bearer(key)).content == JPEG
            assert _metric(cloud, "matthan_ingest_messages_total") >= 5
        finally:
            dev.stop()


# --- malformed input ------------------------------------------------------------------------------

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
                lambda: _metric(cloud, "matthan_ingest_rejected_total") >= len(sent),
                30,
                what="every malformed payload counted",
            )
            assert _metric(cloud, "matthan_ingest_rejected_total") == len(sent)
            # Still working: a good alert goes through after all that.
            good = make_alert(DEV, WARD, seq=9)
            dev.send_alert(good)
            dev.drain(timeout=10)
            assert _count(cloud) == 1
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
            wait_until(lambda: _count(cloud) == 2, 15, what="both alerts stored")
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
            assert _metric(cloud, "matthan_ingest_rejected_total") == 0
        finally:
            dev.stop()


# --- outages --------------------------------------------------------------------------------------


def _stream(dev: SimDevice, n: int, every: float, during: Callable[[int], None] | None = None) -> list[str]:
    ids = []
    for i in range(n):
        alert = make_alert(DEV, WARD, seq=i)
        ids.append(alert.event_id)
        dev.send_alert(alert)
        if during:
            during(i)
        time.sleep(every)
    return ids


def test_broker_restart_loses_no_alert(make_settings, pg_url, broker) -> None:  # type: ignore[no-untyped-def]
    with live(make_settings, pg_url, broker) as cloud:
        dev = SimDevice(broker.port, DEV, WARD).start()
        try:

            def restart_midway(i: int) -> None:
                if i == 60:
                    broker.kill()  # a crash: nothing saved, in-flight messages gone
                    time.sleep(0.5)
                    broker.start()

            ids = _stream(dev, 150, 0.01, restart_midway)
            acknowledged_before = dev.receipted()
            dev.drain(timeout=40)
            with Session(cloud.app.state.engine) as s:  # type: ignore[attr-defined]
                stored = set(s.exec(select(AlertRow.event_id)).all())
            assert acknowledged_before <= stored  # nothing receipted was lost
            assert stored == set(ids)  # and the device's resends filled every gap, once
            assert cloud.app.state.mqtt.connects >= 2  # type: ignore[attr-defined]
        finally:
            dev.stop()


def test_postgres_connection_drop_loses_no_alert(make_settings, pg_url, broker) -> None:  # type: ignore[no-untyped-def]
    dbname = pg_url.rsplit("/", 1)[1]
    with live(make_settings, pg_url, broker) as cloud:
        dev = SimDevice(broker.port, DEV, WARD).start()
        try:
            first = _stream(dev, 20, 0.005)
            dev.drain(timeout=10)
            # Hold the alert table so the writer's next batch waits inside its transaction, then
            # kill the writer's connection right there: the batch must be retried, not lost.
            with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{dbname}") as holder:
                holder.execute("LOCK TABLE alert IN ACCESS EXCLUSIVE MODE")
                more = _stream(dev, 30, 0.005)

                def waiting() -> list[int]:
                    rows = holder.execute(
                        "SELECT pid FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'",
                        (dbname,),
                    ).fetchall()
                    return [r[0] for r in rows]

                pids = wait_until(waiting, 10, what="the writer blocked in its transaction")
                assert not (set(more) & dev.receipted()), "receipted before commit"
                for pid in pids:
                    holder.execute("SELECT pg_terminate_backend(%s)", (pid,))
                time.sleep(0.3)
                holder.rollback()
            dev.drain(timeout=40)
            with Session(cloud.app.state.engine) as s:  # type: ignore[attr-defined]
                stored = list(s.exec(select(AlertRow.event_id)).all())
            assert sorted(stored) == sorted(first + more)  # every alert, once
            assert _metric(cloud, "matthan_ingest_db_retries_total") >= 1
        finally:
            dev.stop()


# --- device state --------------------------------------------------------------------------------


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


def test_broker_dropped_counter_is_exposed(make_settings, sqlite_url, broker_factory) -> None:  # type: ignore[no-untyped-def]
    b = broker_factory("sys_interval 1").start()
    with live(make_settings, sqlite_url, b) as cloud:
        wait_until(
            lambda: "matthan_broker_publish_dropped{" in cloud.get("/metrics").text,
            5,
            what="$SYS dropped figures",
        )
        assert "$SYS/broker/load/publish/dropped/1min" in cloud.get("/metrics").text


def test_health_history_is_kept_for_the_retention_period(make_settings, sqlite_url, broker) -> None:  # type: ignore[no-untyped-def]
    from datetime import timedelta

    from cloud.models import HealthSample
    from matthan_wire import utc_now

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
        assert cloud.app.state.ingest.purge_health() == 2  # type: ignore[attr-defined]
        assert _count(cloud, HealthSample) == 2


def test_a_message_the_database_refuses_does_not_take_its_batch_with_it(
    make_settings, pg_url, broker
) -> None:  # type: ignore[no-untyped-def]
    with live(make_settings, pg_url, broker, batch_wait_s=0.5) as cloud:
        dev = SimDevice(broker.port, DEV, WARD).start()
        try:
            good = [make_alert(DEV, WARD, seq=i) for i in range(5)]
            # Valid by the contract, refused by PostgreSQL (text cannot hold NUL).
            poison = make_alert(DEV, WARD, seq=9, rule="plaza.\x00crowd")
            for a in good[:2] + [poison] + good[2:]:
                dev.send_alert(a)
            # A malformed one in the same batch: the batch is split, and it must not be counted again.
            dev.client.publish(
                device_topic(Kind.ALERT, WARD, DEV), b'{"v": 1, "seq": 18446744073709551616}', qos=1
            )
            wait_until(
                lambda: {a.event_id for a in good} <= dev.receipted(), 15, what="good alerts receipted"
            )
            assert poison.event_id not in dev.receipted()
            with Session(cloud.app.state.engine) as s:  # type: ignore[attr-defined]
                assert set(s.exec(select(AlertRow.event_id)).all()) == {a.event_id for a in good}
            assert _metric(cloud, 'matthan_ingest_rejected_total{kind="database"}') == 1
            assert _metric(cloud, "matthan_ingest_rejected_total") == 2
            # Kept for an operator: the payload as it came, and why it was refused.
            folder = Path(cloud.app.state.settings.quarantine_dir)  # type: ignore[attr-defined]
            (meta_path,) = folder.glob("*.json")
            meta = json.loads(meta_path.read_text())
            assert meta["kind"] == "database" and "refused by the database" in meta["reason"]
            assert json.loads(meta_path.with_suffix(".bin").read_bytes())["event_id"] == poison.event_id
        finally:
            dev.stop()

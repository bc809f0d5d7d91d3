"""MQTT ingest against real Mosquitto, on SQLite and PostgreSQL: idempotent, receipted only after
commit, outages of broker and database lose nothing, a message the database refuses is quarantined
alone. Validation: test_ingest_parse.py; device state: test_ingest_upkeep.py."""

import json
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from sqlmodel import Session, select

from cloud.models import AlertRow
from matthan_wire import Kind
from matthan_wire.topics import device_topic
from tests.cloud.conftest import add_user, bearer
from tests.cloud.devicesim import JPEG, SimDevice, make_alert
from tests.cloud.ingest_support import count, live, metric, send_amid_good
from tests.support.net import wait_until

WARD, DEV = "ben-nghe", "q1-rex-01"


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
            assert count(cloud) == 1

            key = add_user(cloud, "op", "operator")
            page = cloud.get("/api/v1/alerts", headers=bearer(key)).json()
            assert page["total"] == 1
            item = page["items"][0]
            assert item["event_id"] == start.event_id and item["ended_at"] is not None
            assert item["snapshot_url"] == f"/api/v1/media/{start.event_id}/snapshot"
            assert cloud.get(item["snapshot_url"], headers=bearer(key)).content == JPEG
            assert metric(cloud, "matthan_ingest_messages_total") >= 5
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
            assert metric(cloud, "matthan_ingest_db_retries_total") >= 1
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


def test_a_message_the_database_refuses_does_not_take_its_batch_with_it(  # type: ignore[no-untyped-def]
    make_settings, pg_url, broker
) -> None:
    with live(make_settings, pg_url, broker, batch_wait_s=0.5) as cloud:
        dev = SimDevice(broker.port, DEV, WARD).start()
        try:
            # Valid by the contract, refused by PostgreSQL (text cannot hold NUL).
            poison = make_alert(DEV, WARD, seq=9, rule="plaza.\x00crowd")
            good = send_amid_good(dev, 5, poison)
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
            assert metric(cloud, 'matthan_ingest_rejected_total{kind="database"}') == 1
            assert metric(cloud, "matthan_ingest_rejected_total") == 2
            # Kept for an operator: the payload as it came, and why it was refused.
            folder = Path(cloud.app.state.settings.quarantine_dir)  # type: ignore[attr-defined]
            (meta_path,) = folder.glob("*.json")
            meta = json.loads(meta_path.read_text())
            assert meta["kind"] == "database" and "refused by the database" in meta["reason"]
            assert json.loads(meta_path.with_suffix(".bin").read_bytes())["event_id"] == poison.event_id
        finally:
            dev.stop()

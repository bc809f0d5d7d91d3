"""The alert lifecycle over HTTP and MQTT, the live SSE stream, filters, paging, ward scoping and
false-alarm counts, with a real broker and real HTTP."""

import json
import queue
import threading
import time

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlmodel import Session

from cloud.auth import create_user, issue_api_key
from matthan_wire import AlertAction, AlertState, Kind, decode, encode, utc_now
from matthan_wire.topics import ward_filter, ward_topic
from tests.cloud.conftest import add_user, bearer, served
from tests.cloud.devicesim import SimDevice, make_alert
from tests.cloud.test_ingest import live

WARD, OTHER = "ben-nghe", "da-kao"


def _station(port: int, ward: str) -> tuple[mqtt.Client, "queue.Queue[AlertState]"]:
    got: queue.Queue[AlertState] = queue.Queue()
    ready = threading.Event()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"station-{ward}", protocol=mqtt.MQTTv5)
    c.on_message = lambda _c, _u, m: got.put(decode(AlertState, m.payload))
    c.on_subscribe = lambda *a: ready.set()
    c.connect("127.0.0.1", port)
    c.loop_start()
    c.subscribe(ward_filter(Kind.ALERT_STATE, ward), qos=1)
    assert ready.wait(5)
    return c, got


def test_lifecycle_over_http_and_mqtt_reaches_every_station(make_settings, db_url, broker) -> None:  # type: ignore[no-untyped-def]
    with live(make_settings, db_url, broker) as cloud:
        dev = SimDevice(broker.port, "q1-rex-01", WARD).start()
        station, states = _station(broker.port, WARD)
        try:
            alerts = [make_alert("q1-rex-01", WARD, seq=i, camera=f"cam-{i % 2}") for i in range(4)]
            for a in alerts:
                dev.send_alert(a)
            dev.drain(timeout=10)
            op = add_user(cloud, "op", "operator")
            url = f"/api/v1/alerts/{alerts[0].event_id}/actions"

            r = cloud.post(
                url, json={"action": "acknowledge", "note": "unit 12 on the way"}, headers=bearer(op)
            )
            assert r.status_code == 200 and r.json()["state"] == "acknowledged"
            assert r.json()["acknowledged_by"] == "op" and r.json()["delivered_at"] is not None
            s = states.get(timeout=5)
            assert (s.event_id, s.state, s.by, s.note) == (
                alerts[0].event_id,
                "acknowledged",
                "op",
                "unit 12 on the way",
            )
            # Again: nothing changes, nothing is published.
            assert cloud.post(url, json={"action": "acknowledge"}, headers=bearer(op)).status_code == 200
            assert (
                cloud.post(url, json={"action": "resolve"}, headers=bearer(op)).json()["state"] == "resolved"
            )
            assert states.get(timeout=5).state == "resolved"
            assert states.empty()
            r = cloud.post(url, json={"action": "acknowledge"}, headers=bearer(op))
            assert r.status_code == 409 and "already resolved" in r.json()["detail"]

            # A ward station acts over MQTT on its ward's alert-action topic.
            action = AlertAction(
                event_id=alerts[1].event_id,
                action="false_alarm",
                by="officer-7",
                note="a parked cart",
                at=utc_now(),
            )
            station.publish(ward_topic(Kind.ALERT_ACTION, WARD), encode(action), qos=1)
            s = states.get(timeout=5)
            assert (s.event_id, s.state, s.by) == (alerts[1].event_id, "false_alarm", f"{WARD}:officer-7")
            # Another ward cannot act on this ward's alert.
            foreign = AlertAction(event_id=alerts[2].event_id, action="resolve", by="x", at=utc_now())
            station.publish(ward_topic(Kind.ALERT_ACTION, OTHER), encode(foreign), qos=1)
            time.sleep(0.5)
            assert (
                cloud.get(f"/api/v1/alerts/{alerts[2].event_id}", headers=bearer(op)).json()["state"] == "new"
            )

            quality = cloud.get("/api/v1/alerts/quality", headers=bearer(op)).json()
            fa = {(q["camera_id"], q["rule"]): (q["alerts"], q["false_alarms"]) for q in quality}
            assert fa[(alerts[1].camera_id, "plaza.crowd")] == (2, 1)
            assert fa[(alerts[0].camera_id, "plaza.crowd")] == (2, 0)

            page = cloud.get(
                "/api/v1/alerts", params={"state": ["new"], "limit": 1}, headers=bearer(op)
            ).json()
            assert page["total"] == 2 and len(page["items"]) == 1
            second = cloud.get(
                "/api/v1/alerts", params={"state": ["new"], "limit": 1, "offset": 1}, headers=bearer(op)
            ).json()
            assert second["items"][0]["event_id"] != page["items"][0]["event_id"]
            assert (
                cloud.get(
                    "/api/v1/alerts",
                    params={"camera": "cam-1", "category": "urban_order"},
                    headers=bearer(op),
                ).json()["total"]
                == 0
            )
            assert (
                cloud.get(
                    "/api/v1/alerts", params={"since": "2026-01-01T00:00:00"}, headers=bearer(op)
                ).status_code
                == 422
            )  # no offset: ambiguous
            assert (
                cloud.get(
                    "/api/v1/alerts", params={"since": utc_now().isoformat()}, headers=bearer(op)
                ).json()["total"]
                == 0
            )
        finally:
            station.loop_stop()
            station.disconnect()
            dev.stop()


def test_ward_officers_see_only_their_ward(make_settings, sqlite_url, broker) -> None:  # type: ignore[no-untyped-def]
    with live(make_settings, sqlite_url, broker) as cloud:
        here = SimDevice(broker.port, "bn-1", WARD).start()
        there = SimDevice(broker.port, "dk-1", OTHER).start()
        try:
            mine, theirs = make_alert("bn-1", WARD, 1), make_alert("dk-1", OTHER, 1)
            here.send_alert(mine)
            there.send_alert(theirs)
            here.drain(10)
            there.drain(10)
            officer = add_user(cloud, "officer", "ward_officer", WARD)
            listed = cloud.get("/api/v1/alerts", headers=bearer(officer)).json()
            assert [a["event_id"] for a in listed["items"]] == [mine.event_id]
            assert (
                cloud.get("/api/v1/alerts", params={"ward": OTHER}, headers=bearer(officer)).status_code
                == 403
            )
            assert cloud.get(f"/api/v1/alerts/{theirs.event_id}", headers=bearer(officer)).status_code == 404
            r = cloud.post(
                f"/api/v1/alerts/{theirs.event_id}/actions",
                json={"action": "acknowledge"},
                headers=bearer(officer),
            )
            assert r.status_code == 404
            assert [
                d["id"] for d in cloud.get("/api/v1/devices", headers=bearer(officer)).json()["items"]
            ] == ["bn-1"]
            assert cloud.get("/api/v1/devices/dk-1", headers=bearer(officer)).status_code == 404
            assert [w["id"] for w in cloud.get("/api/v1/wards", headers=bearer(officer)).json()] == [WARD]
        finally:
            here.stop()
            there.stop()


def test_sse_stream_carries_new_alerts_and_state_changes(make_settings, sqlite_url, broker) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(sqlite_url, broker.url)
    with served(settings) as base:
        # Users are added through the same database the server uses.
        from cloud.db import make_engine

        engine = make_engine(settings.db_url)
        with Session(engine) as s:
            key = issue_api_key(s, create_user(s, "op", "operator", "correct horse battery"))
            s.commit()
        engine.dispose()
        dev = SimDevice(broker.port, "q1-rex-01", WARD).start()
        events: queue.Queue[dict[str, object]] = queue.Queue()
        stop = threading.Event()
        opened = threading.Event()

        def follow() -> None:
            with (
                httpx.Client(base_url=base, headers=bearer(key), timeout=10) as c,
                c.stream("GET", "/api/v1/alerts/stream") as r,
            ):
                assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
                for line in r.iter_lines():
                    if line.startswith("retry:"):
                        opened.set()  # the server's first line: it follows alerts from now on
                    if line.startswith("data: "):
                        events.put(json.loads(line[6:]))
                    if stop.is_set():
                        return

        t = threading.Thread(target=follow, daemon=True)
        t.start()
        try:
            assert opened.wait(30), "the alert stream did not open"
            alert = make_alert("q1-rex-01", WARD, 1)
            sent = time.monotonic()
            dev.send_alert(alert)
            first = events.get(timeout=5)
            assert first["event_id"] == alert.event_id and first["state"] == "new"
            assert time.monotonic() - sent < 2.0  # woken by the ingest, not by the 2 s poll
            r = httpx.post(
                f"{base}/api/v1/alerts/{alert.event_id}/actions",
                json={"action": "acknowledge"},
                headers=bearer(key),
            )
            assert r.status_code == 200
            changed = events.get(timeout=5)
            assert changed["event_id"] == alert.event_id and changed["state"] == "acknowledged"
            assert httpx.get(f"{base}/api/v1/alerts/stream").status_code == 401
        finally:
            stop.set()
            dev.stop()


def test_add_user_helper_keys_work(cloud) -> None:  # type: ignore[no-untyped-def]
    key = add_user(cloud, "admin", "admin")
    assert cloud.get("/api/v1/auth/me", headers=bearer(key)).json()["role"] == "admin"

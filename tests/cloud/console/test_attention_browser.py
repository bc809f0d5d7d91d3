"""Console attention in a real headless Chromium: a new alert counts in the tab title, asks for and
raises a desktop notification while the tab is hidden, and the tone can be muted (remembered); the
escalation editor and the shift handover page, with screenshots at 1366 and 390 px in
test-output/console/."""

import csv
import io
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlmodel import Session

from cloud import auth
from cloud.models import AlertRow, Camera, Device
from matthan_wire import Alert, Kind, Topic, encode, utc_now
from tests.cloud.console.conftest import Site
from tests.cloud.console.helpers import PASSWORD, PHONE, login, shot, wait_for

pytestmark = [pytest.mark.browser]

WARD, DEVICE, CAMERA = "ben-nghe", "q1-rex-01", "rex-north"

# The page's Notification API, observed: what was asked, what was shown; `document.hidden` as the
# test sets it (a headless tab is never hidden by itself).
OBSERVE = """
window.__asked = 0; window.__shown = [];
class ObservedNotification {
  constructor(title, options) { window.__shown.push({title, body: options && options.body}); }
  static requestPermission() { window.__asked += 1; ObservedNotification.permission = "granted";
                               return Promise.resolve("granted"); }
}
ObservedNotification.permission = "default";
window.Notification = ObservedNotification;
Object.defineProperty(document, "hidden", {configurable: true, get() { return !!window.__hidden; }});
"""


@pytest.fixture(scope="module")
def people(site: Site) -> Iterator[None]:
    with Session(site.engine) as s:
        auth.create_user(s, "admin", "admin", PASSWORD)
        s.add(Device(id=DEVICE, ward=WARD))
        s.add(Camera(device_id=DEVICE, id=CAMERA, site_name="Rex, Nguyễn Huệ"))
        s.commit()
    yield


def _publish_alert(site: Site, event_id: str, seq: int) -> None:
    alert = Alert(
        event_id=event_id,
        phase="start",
        device_id=DEVICE,
        camera_id=CAMERA,
        ward=WARD,
        zone="plaza",
        rule="plaza.crowd",
        type="crowd",
        category="security_order",
        labels=["person"],
        object_count=9,
        score=0.8,
        bbox=[0.2, 0.4, 0.7, 0.95],
        started_at=utc_now() - timedelta(seconds=2),
        ended_at=None,
        seq=seq,
        snapshot=None,
        clip=None,
    )
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="attention-pub", protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", site.broker.port)
    client.loop_start()
    try:
        client.publish(str(Topic(Kind.ALERT, WARD, DEVICE)), encode(alert), qos=1).wait_for_publish(5)
    finally:
        client.loop_stop()
        client.disconnect()


def test_new_alert_counts_in_title_and_notifies_when_hidden(site: Site, people: None, new_page: Any) -> None:
    page = new_page()
    page.add_init_script(OBSERVE)
    login(page, "admin")
    page.goto("/console/alerts")
    page.wait_for_selector("#live.on")
    base_title = page.title()
    page.click("#notify-permission")
    wait_for(lambda: page.evaluate("window.__asked") == 1, what="the permission request")
    wait_for(lambda: page.locator("#notify-permission").is_hidden(), what="granted: nothing more to ask")

    page.evaluate("window.__hidden = true")
    _publish_alert(site, "rex-att-0001", 1)
    page.locator("#feed a.alert-row[data-event-id='rex-att-0001']").wait_for(timeout=15_000)
    wait_for(lambda: page.title() == f"(1) {base_title}", what="the unread count in the title")
    shown = page.evaluate("window.__shown")
    assert len(shown) == 1 and "crowd" in shown[0]["body"].lower() and "Rex" in shown[0]["body"]

    _publish_alert(site, "rex-att-0002", 2)
    wait_for(lambda: page.title() == f"(2) {base_title}", what="two unread")
    assert _feed_ids(page)[:2] == ["rex-att-0002", "rex-att-0001"]  # newest first, on top
    page.evaluate("window.__hidden = false; document.dispatchEvent(new Event('visibilitychange'))")
    wait_for(lambda: page.title() == base_title, what="the count cleared once the user is back")

    page.click("#mute")
    assert page.evaluate("localStorage.getItem('matthan.muted')") == "1"
    page.reload()
    assert "Sound off" in page.locator("#mute").inner_text()  # remembered


def _feed_ids(page: Any) -> list[str]:
    ids: list[str] = page.locator("#feed a.alert-row").evaluate_all("els => els.map(e => e.dataset.eventId)")
    return ids


def test_unacknowledged_oldest_first(site: Site, people: None, new_page: Any, test_output: Path) -> None:
    page = new_page()
    login(page, "admin")
    page.goto("/console/alerts?state=unacknowledged&order=oldest")
    page.wait_for_selector("#live.on")
    assert _feed_ids(page)[:2] == ["rex-att-0001", "rex-att-0002"]
    # A live alert joins at the end of an oldest-first list, and leaves it once acknowledged.
    _publish_alert(site, "rex-att-0003", 3)
    wait_for(
        lambda: _feed_ids(page) == ["rex-att-0001", "rex-att-0002", "rex-att-0003"], what="live row last"
    )
    shot(page, test_output, "alerts-feed")
    phone = new_page(PHONE)
    login(phone, "admin")
    phone.goto("/console/alerts?state=unacknowledged&order=oldest")
    shot(phone, test_output, "alerts-feed-phone")
    ops = site.api("admin")
    r = ops.post("/api/v1/alerts/rex-att-0003/actions", json={"action": "acknowledge", "note": "on my way"})
    ops.close()
    assert r.status_code == 200, r.text
    wait_for(lambda: _feed_ids(page) == ["rex-att-0001", "rex-att-0002"], what="the acknowledged row gone")
    assert page.inner_text("#feed-count") == "2"


def test_escalation_editor_and_handover(site: Site, people: None, new_page: Any, test_output: Path) -> None:
    ops = site.api("admin")
    for name, kind, config in [
        (
            "Ward duty officer (Zalo)",
            "gateway",
            {"url": "http://127.0.0.1:9/zns", "body": '{"t": "{{rule}}"}'},
        ),
        ("Ward commander", "email", {"to": ["chihuy@benghe.example.vn"]}),
        ("Operations centre lead", "webhook", {"url": "http://127.0.0.1:9/hook", "secret": "s" * 24}),
    ]:
        r = ops.post("/api/v1/notify/endpoints", json={"name": name, "kind": kind, "config": config})
        assert r.status_code == 201, r.text
    page = new_page()
    login(page, "admin")
    page.goto("/console/escalation")
    new = page.locator("form[data-policy='new']")
    new.locator("select[name=ward]").select_option("*")
    new.locator("select[name=category]").select_option("security_order")
    for i, (after, name, who) in enumerate(
        [(0, "ward duty officer", 1), (10, "ward commander", 2), (30, "operations-centre lead", 3)]
    ):
        new.locator(f"input[name=after_{i}]").fill(str(after))
        new.locator(f"input[name=name_{i}]").fill(name)
        new.locator(f"input[name=endpoints_{i}][value='{who}']").check()
    new.locator("button[type=submit]").first.click()
    saved = page.locator("form[data-policy='*/security_order']")
    saved.wait_for()
    assert saved.locator("input[name=after_1]").input_value() == "10"
    policies = ops.get("/api/v1/escalation/policies").json()
    assert [lv["endpoints"] for lv in policies[0]["levels"]] == [[1], [2], [3]]
    # The unacknowledged alerts reach level 1 at once (after 0 min); the channels point nowhere.
    wait_for(
        lambda: page.goto("/console/alerts/rex-att-0001") and "level-1" in page.inner_text("#notified"),
        timeout=60,  # the worker's tick and three channels' failures on a loaded machine
        what="level 1 on the alert page",
    )
    shot(page, test_output, "alert-page")
    page.goto("/console/escalation")
    shot(page, test_output, "escalation-editor")
    phone = new_page(PHONE)
    login(phone, "admin")
    phone.goto("/console/escalation")
    shot(phone, test_output, "escalation-editor-phone")

    with Session(site.engine) as s:  # an outage that ended, and a false alarm
        now = utc_now()
        s.add(
            AlertRow(
                event_id="outage-demo-1",
                device_id=DEVICE,
                camera_id="-",
                ward=WARD,
                rule="device.offline",
                type="device_offline",
                category="outage",
                started_at=now - timedelta(hours=2),
                ended_at=now - timedelta(hours=1, minutes=40),
                received_at=now - timedelta(hours=2),
                updated_at=now,
            )
        )
        s.commit()
    r = ops.post("/api/v1/alerts/rex-att-0002/actions", json={"action": "false_alarm", "note": "a queue"})
    assert r.status_code == 200, r.text
    page.goto("/console/handover")
    text = page.inner_text("main")
    assert "Open alerts" in text and "Escalations" in text and "Outages" in text and "False alarms" in text
    assert "Ward duty officer (Zalo) (gateway)" in text
    shot(page, test_output, "handover")
    phone.goto("/console/handover")
    shot(phone, test_output, "handover-phone")
    r = ops.get("/console/handover.csv")
    rows = list(csv.reader(io.StringIO(r.text.lstrip("\ufeff"))))
    assert rows[0][:3] == ["section", "event_id", "ward"]
    sections = {(row[0], row[1]) for row in rows[1:]}
    assert ("open", "rex-att-0001") in sections and ("false_alarm", "rex-att-0002") in sections
    assert ("outage", "outage-demo-1") in sections and ("escalation", "rex-att-0001") in sections
    metrics = ops.get("/metrics").text
    assert 'matthan_attention{what="escalations_active"} 2.0' in metrics  # both wait for level 2
    assert ops.get("/healthz").json()["dead_workers"] == []
    ops.close()

"""Alerts in a real headless Chromium against a real cloud and broker: an alert arrives live, opens
on its page, plays its clip and is acknowledged, then resolved; the alert map. Screenshots land in
test-output/console/."""

import hashlib
import re
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlmodel import Session

from cloud.models import AlertRow
from matthan.display import zone_of
from matthan_wire import Alert, ClipRef, Kind, Topic, encode, utc_now
from matthan_wire import Site as Site_
from tests.cloud.console.conftest import Site
from tests.cloud.console.district import BEN_NGHE, DA_KAO, REX, VN_SITE
from tests.cloud.console.helpers import PASSWORD, PHONE, login, shot, wait_for
from ward.lines import LineWriter

pytestmark = [pytest.mark.browser]


def _publish(site: Site, messages: list[tuple[str, bytes]]) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="console-test-pub", protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", site.broker.port)
    client.loop_start()
    try:
        for topic, payload in messages:
            client.publish(topic, payload, qos=1).wait_for_publish(5)
    finally:
        client.loop_stop()
        client.disconnect()


def _alert(
    event_id: str, phase: Literal["start", "end"], seq: int, started: datetime, clip: ClipRef | None = None
) -> Alert:
    return Alert(
        event_id=event_id, phase=phase, device_id=REX, camera_id="rex-south", ward=BEN_NGHE, zone="plaza",
        rule="plaza.crowd", type="crowd", category="security_order", labels=["person"], object_count=7,
        score=0.81, bbox=[0.2, 0.4, 0.7, 0.95], started_at=started,
        ended_at=utc_now() if phase == "end" else None, seq=seq,
        snapshot=str(Topic(Kind.SNAPSHOT, BEN_NGHE, REX, event_id)), clip=clip,
        site=Site_(**VN_SITE), zone_title="quảng trường đi bộ",
    )  # fmt: skip


def _upload(site: Site, token: str, event_id: str, kind: str, data: bytes) -> None:
    digest = hashlib.sha256(data).hexdigest()
    r = site.api_anonymous().patch(
        f"/api/v1/media/{event_id}/{kind}",
        content=data,
        headers={
            "Authorization": f"Bearer {token}",
            "Upload-Offset": "0",
            "Upload-Length": str(len(data)),
            "Upload-Sha256": digest,
            "Chunk-Sha256": digest,
            "Content-Type": "application/offset+octet-stream",
        },
    )
    assert r.status_code == 201, r.text


def test_an_alert_arrives_live_opens_on_its_page_plays_and_is_acknowledged_then_resolved(
    site: Site, fleet: dict[str, Any], history: dict[str, int], new_page: Any, test_output: Path
) -> None:
    # rex-south watches a plaza (its zone is drawn over the clip on the alert's page).
    config = fleet["ops"].get(f"/api/v1/devices/{REX}/config").json()["config"]
    config["cameras"][1]["zones"] = [{
        "name": "plaza", "title": "quảng trường đi bộ",
        "polygon": [[0.1, 0.35], [0.9, 0.35], [0.9, 0.95], [0.1, 0.95]],
        "rules": [{"type": "crowd", "min_count": 5, "labels": ["person"]}],
    }]  # fmt: skip
    assert fleet["ops"].put(f"/api/v1/devices/{REX}/config", json=config).status_code == 200
    page = new_page()
    login(page, "lan")
    page.goto("/console/alerts")
    page.wait_for_selector("#live.on")  # the EventSource is connected
    total_before = int(page.locator("[data-testid=stat-total]").inner_text())
    event_id = "rex-north-20261124-0001"
    started = utc_now() - timedelta(seconds=2)
    published = time.monotonic()
    _publish(site, [
        (str(Topic(Kind.ALERT, BEN_NGHE, REX)), encode(_alert(event_id, "start", 1, started))),
        (str(Topic(Kind.SNAPSHOT, BEN_NGHE, REX, event_id)), fleet["jpeg"]),
    ])  # fmt: skip
    row = page.locator(f"a.alert-row[data-event-id='{event_id}']")
    row.wait_for(timeout=10_000)
    print(f"\nconsole: alert published -> row on screen in {time.monotonic() - published:.2f} s")
    text = row.inner_text()
    assert "ongoing" in text and "Crowd gathering" in text and VN_SITE["name"] in text  # an English user
    wait_for(lambda: row.locator("img.thumb").evaluate("i => i.naturalWidth") > 0, what="thumbnail loaded")
    # The "Last 7 days" panel follows the live feed.
    wait_for(
        lambda: int(page.locator("[data-testid=stat-total]").inner_text()) == total_before + 1,
        what="7-day total counts the new alert",
    )

    clip_bytes = fleet["clip"].read_bytes()
    _upload(site, fleet["tokens"][REX], event_id, "clip", clip_bytes)
    ref = ClipRef(
        name=f"{event_id}.mp4", sha256=hashlib.sha256(clip_bytes).hexdigest(), size=len(clip_bytes),
        start=utc_now() - timedelta(seconds=25), end=utc_now(), duration_s=4.0,
    )  # fmt: skip
    _publish(
        site, [(str(Topic(Kind.EVENT, BEN_NGHE, REX)), encode(_alert(event_id, "end", 2, started, ref)))]
    )
    wait_for(lambda: "ongoing" not in row.inner_text(), what="the row follows the end")
    shot(page, test_output, "alerts-feed")

    # Watched from before the page opens: the player starts fetching the clip as soon as it loads.
    clip_responses: list[tuple[str | None, int]] = []

    def on_response(r: Any) -> None:
        if r.url.endswith(f"/{event_id}/clip"):
            clip_responses.append((r.request.headers.get("range"), r.status))

    page.on("response", on_response)
    row.click()
    page.wait_for_url(f"**/console/alerts/{event_id}")
    assert page.locator("[data-testid=site-name]").inner_text() == VN_SITE["name"]
    assert page.locator("[data-testid=site-address]").inner_text() == VN_SITE["address"]
    assert page.locator("[data-testid=site-position]").inner_text() == "10.77640, 106.70120"

    # The snapshot opens at full size.
    page.locator("button.zoomable").click()
    zoomed = page.locator("dialog#zoom[open] img")
    zoomed.wait_for()
    wait_for(lambda: zoomed.evaluate("i => i.naturalWidth") > 0, what="zoomed snapshot")
    assert (
        zoomed.evaluate("i => i.getBoundingClientRect().width")
        > page.locator("#snapshot").evaluate("i => i.getBoundingClientRect().width") * 0.9
    )
    page.keyboard.press("Escape")
    page.wait_for_selector("dialog#zoom:not([open])", state="attached")

    video = page.locator("video#clip")
    video.evaluate("v => { v.muted = true; return v.play(); }")
    wait_for(lambda: video.evaluate("v => v.currentTime") > 1.0, timeout=15, what="clip playing")
    assert video.evaluate("v => v.duration") == pytest.approx(4.0, abs=0.3)
    assert video.evaluate("v => v.videoWidth") == 768
    assert clip_responses and all(
        rng and rng.startswith("bytes=") and st == 206 for rng, st in clip_responses
    )
    video.evaluate("v => v.pause()")
    # The zone is drawn over the clip, and the site is a marker on a street map.
    assert page.locator("svg.zone-over polygon").count() == 1
    page.wait_for_selector(".map[data-ready='1'] .map-marker[data-state='new']")
    wait_for(
        lambda: page.locator(".map img.leaflet-tile-loaded").count() > 0,
        what="street tiles from the tile folder",
    )
    shot(page, test_output, "alert-page")

    page.fill("form.act-page textarea[name=note]", "Tổ 2 đang đến hiện trường")
    page.click("form.act-page button[value=acknowledge]")
    page.wait_for_selector("ol.history li[data-step='acknowledged']")
    page.fill("form.act-page textarea[name=note]", "Đã giải tán, không có thiệt hại")
    page.click("form.act-page button[value=resolve]")
    resolved = page.locator("ol.history li[data-step='resolved']")
    resolved.wait_for()
    acked = page.locator("ol.history li[data-step='acknowledged']")
    for step, note in ((acked, "Tổ 2 đang đến hiện trường"), (resolved, "Đã giải tán, không có thiệt hại")):
        t = step.inner_text()
        assert "by user:lan" in t and note in t
        assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", step.locator(".when").inner_text())
    assert page.locator("form.act-page").count() == 0  # nothing left to do
    alert = fleet["ops"].get(f"/api/v1/alerts/{event_id}").json()
    assert (
        alert["state"] == "resolved" and alert["acknowledged_by"] == "lan" and alert["resolved_by"] == "lan"
    )
    shot(page, test_output, "alert-page-resolved")

    phone = new_page(PHONE)
    login(phone, "lan")
    phone.goto(f"/console/alerts/{event_id}")
    phone.wait_for_selector(".map[data-ready='1']")
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shot(phone, test_output, "alert-page-phone")
    phone.goto("/console/alerts")
    phone.locator(f"a.alert-row[data-event-id='{event_id}'][data-state='resolved']").wait_for()
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shot(phone, test_output, "alerts-feed-phone")

    # The address a ward station prints opens the same page, after logging in.
    station_url = LineWriter(tz=zone_of("Asia/Ho_Chi_Minh"), console_url=site.url).url(event_id)
    assert station_url == f"{site.url}/console/alerts/{event_id}"
    other = new_page()
    other.goto(station_url)
    other.wait_for_url("**/console/login**")
    other.fill("input[name=username]", "lan")
    other.fill("input[name=password]", PASSWORD)
    other.click("button[type=submit]")
    other.wait_for_url(f"**/console/alerts/{event_id}")
    assert other.locator("[data-testid=site-name]").inner_text() == VN_SITE["name"]

    page.goto("/console/reports")
    assert page.locator("[data-testid=stat-total]").inner_text() == str(sum(history.values()) + 1)
    wards = page.locator("#per-ward tbody tr").evaluate_all("rs => rs.map(r => r.cells[0].innerText)")
    assert sorted(wards) == [BEN_NGHE, DA_KAO]
    assert "plaza.crowd" in page.locator("#per-rule").inner_text()


def test_the_alert_map_shows_markers_on_streets_and_opens_the_alert(
    site: Site, fleet: dict[str, Any], history: dict[str, int], new_page: Any, test_output: Path
) -> None:
    with Session(site.engine) as s:
        for i, (lat, lon) in enumerate([(10.7764, 106.7012), (10.7742, 106.7038), (10.7902, 106.6969)]):
            a = s.get(AlertRow, f"hist-{i:03d}")
            assert a is not None
            a.site = {"name": f"Điểm {i + 1}", "address": None, "lat": lat, "lon": lon}
            a.site_name = a.site["name"]
            s.add(a)
        s.commit()
    for viewport, name in ((None, "alerts-map"), (PHONE, "alerts-map-phone")):
        page = new_page(viewport) if viewport else new_page()
        login(page, "lan")
        page.goto("/console/alerts?limit=40")
        markers = page.locator("#alert-map .map-marker")
        page.wait_for_selector("#alert-map[data-ready='1']")
        assert markers.count() >= 3
        states = set(markers.evaluate_all("ms => ms.map(m => m.getAttribute('data-state'))"))
        assert states <= {"new", "delivered", "acknowledged", "resolved", "false_alarm"} and len(states) >= 2
        tiles = page.locator("#alert-map img.leaflet-tile-loaded")
        wait_for(lambda t=tiles: t.count() > 0, what="tiles")
        assert page.evaluate("document.documentElement.scrollWidth") <= (viewport or {"width": 1366})["width"]
        page.locator("#alert-map").scroll_into_view_if_needed()
        shot(page, test_output, name)
    target = markers.first.get_attribute("data-url")
    markers.first.dispatch_event("click")
    page.wait_for_url(f"**{target}")

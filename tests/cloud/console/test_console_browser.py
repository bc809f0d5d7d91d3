"""The console in a real headless Chromium against a real cloud, broker and (stand-in) devices.

Log in; watch a device go offline when its agent dies; watch an alert arrive live, play its clip
and acknowledge it; draw a zone and see the desired config change and get applied; and check a
ward officer sees nothing of another ward, in the pages and in the API.
Screenshots of each page land in test-output/console/.
"""

import hashlib
import random
import re
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlmodel import Session

from cloud import auth
from cloud.models import AlertRow, Device
from matthan.display import zone_of
from matthan_wire import Alert, ClipRef, Kind, Topic, encode, utc_now
from matthan_wire import Site as Site_
from tests.cloud.console.conftest import Site
from tests.cloud.console.helpers import PASSWORD, PHONE, login, shot, wait_for
from ward.lines import LineWriter

pytestmark = [pytest.mark.browser]

REX, HUE, DAKAO = "q1-rex-01", "q1-hue-01", "q1-dakao-01"
BEN_NGHE, DA_KAO = "ben-nghe", "da-kao"
# Real positions around Nguyen Hue walking street and Da Kao, District 1.
CAMERAS = {
    REX: [("rex-north", 10.77640, 106.70120), ("rex-south", 10.77590, 106.70160)],
    HUE: [("hue-fountain", 10.77420, 106.70380)],
    DAKAO: [("dk-market", 10.79020, 106.69690)],
}
WARD = {REX: BEN_NGHE, HUE: BEN_NGHE, DAKAO: DA_KAO}
VN_SITE: dict[str, Any] = {
    "name": "Phố đi bộ Nguyễn Huệ (đầu Lê Lợi)", "address": "Nguyễn Huệ, phường Bến Nghé, Quận 1",
    "lat": 10.7764, "lon": 106.7012,
}  # fmt: skip


@pytest.fixture(scope="module")
def fleet(site: Site, assets_dir: Path) -> Iterator[dict[str, Any]]:
    """Users, three commissioned devices running, camera positions, and a first desired config."""
    tokens: dict[str, str] = {}
    with Session(site.engine) as s:
        auth.create_user(s, "admin", "admin", PASSWORD)
        auth.create_user(s, "lan", "operator", PASSWORD)
        for dev, ward in WARD.items():
            d = Device(
                id=dev, ward=ward, commissioned_by="tech-minh", commissioned_at=utc_now() - timedelta(days=3)
            )
            tokens[dev] = auth.issue_device_token(s, d)
        auth.create_user(s, "officer-dk", "ward_officer", PASSWORD, ward=DA_KAO)  # a known ward
        s.commit()
    procs = {dev: site.start_device(WARD[dev], dev, [c for c, _, _ in cams]) for dev, cams in CAMERAS.items()}
    ops = site.api("lan")
    for dev, cams in CAMERAS.items():
        for cam, lat, lon in cams:
            r = ops.put(
                f"/api/v1/devices/{dev}/cameras/{cam}", json={"site_name": None, "lat": lat, "lon": lon}
            )
            assert r.status_code == 200, r.text
    site_config = {
        "cameras": [
            {"id": "rex-north", "source": "rtsp://viewer:s3cret@10.1.2.3/stream1", "zones": [], "lines": []},
            {"id": "rex-south", "source": "rtsp://viewer:s3cret@10.1.2.4/stream1"},
        ],
        "health": {"interval_s": 1},
    }
    r = ops.put(f"/api/v1/devices/{REX}/config", json=site_config)
    assert r.status_code == 200, r.text
    wait_for(lambda: ops.get(f"/api/v1/devices/{REX}/config").json()["in_sync"], what="first config applied")
    clip, jpeg = _footage(assets_dir, site.workdir)
    yield {"tokens": tokens, "procs": procs, "ops": ops, "clip": clip, "jpeg": jpeg}
    ops.close()


HISTORY_RULES = [
    (REX, "rex-north", BEN_NGHE, "plaza", "plaza.crowd", "crowd", "security_order"),
    (REX, "rex-south", BEN_NGHE, "curb", "curb.illegal_parking", "illegal_parking", "urban_order"),
    (DAKAO, "dk-market", DA_KAO, "sidewalk", "sidewalk.encroachment", "encroachment", "urban_order"),
    (DAKAO, "dk-market", DA_KAO, "gate", "gate.intrusion", "intrusion", "security_order"),
]


@pytest.fixture(scope="module")
def history(site: Site, fleet: dict[str, Any]) -> dict[str, int]:
    """Two weeks of handled alerts, as the ingest and the officers would have left them.

    Written straight to the database (the live path is tested with the new alert); they give the
    report real figures and the ward test alerts of both wards to keep apart.
    """
    rng = random.Random(8)
    now = utc_now()
    counts = {BEN_NGHE: 0, DA_KAO: 0}
    with Session(site.engine) as s:
        for i in range(24):
            dev, cam, ward, zone, rule, kind, category = HISTORY_RULES[i % len(HISTORY_RULES)]
            started = now - timedelta(days=1 + i * 13 / 24, minutes=rng.randint(0, 600))
            handled = started + timedelta(seconds=rng.randint(40, 900))
            state = rng.choice(["resolved", "resolved", "false_alarm", "acknowledged"])
            s.add(
                AlertRow(
                    event_id=f"hist-{i:03d}", device_id=dev, camera_id=cam, ward=ward, zone=zone, rule=rule,
                    type=kind, category=category, labels=["person"], object_count=rng.randint(1, 9),
                    score=round(rng.uniform(0.5, 0.95), 2), started_at=started,
                    ended_at=started + timedelta(seconds=rng.randint(20, 400)), state=state,
                    state_by="officer-dk" if ward == DA_KAO else "lan", state_at=handled,
                    acknowledged_at=handled if state == "acknowledged" else None,
                    resolved_at=handled if state != "acknowledged" else None, received_at=started,
                    updated_at=handled,
                )
            )  # fmt: skip
            counts[ward] += 1
        s.commit()
    return counts


def _footage(assets: Path, work: Path) -> tuple[Path, bytes]:
    """Four seconds of real street footage as a device would record them, and a frame as its snapshot."""
    src = assets / "video" / "car-detection.mp4"
    clip, snap = work / "clip.mp4", work / "snap.jpg"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-ss", "3", "-t", "4", "-i", str(src), "-an", "-c:v", "libx264",
         "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(clip)],
        check=True, timeout=60,
    )  # fmt: skip
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-ss", "4", "-i", str(src), "-frames:v", "1", "-q:v", "4", str(snap)],
        check=True, timeout=60,
    )  # fmt: skip
    return clip, snap.read_bytes()


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


def test_login_then_a_device_goes_offline_when_its_agent_dies(
    site: Site, fleet: dict[str, Any], new_page: Any, test_output: Path
) -> None:
    page = new_page()
    page.goto("/console/alerts")
    assert "/console/login" in page.url  # every page needs a session
    page.fill("input[name=username]", "lan")
    page.fill("input[name=password]", "not the password")
    page.click("button[type=submit]")
    assert page.locator("[role=alert]").inner_text() == "Wrong user name or password."
    shot(page, test_output, "login")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/console/alerts")
    page.goto("/console/fleet")
    for dev in WARD:
        page.wait_for_selector(f"tr.dev[data-device='{dev}'][data-state='online']")
    hue = page.locator(f"tr.dev[data-device='{HUE}']")
    assert "ssd_mobilenet_v1_coco_quant" in hue.inner_text()
    page.wait_for_selector("#fleet-map[data-ready='1']")
    assert page.locator("#fleet-map .map-marker").count() == 4  # every camera with a position is on the map
    wait_for(lambda: page.locator("#fleet-map img.leaflet-tile-loaded").count() > 0, what="street tiles")
    shot(page, test_output, "fleet-online")

    killed = time.monotonic()
    fleet["procs"][HUE].kill()  # SIGKILL: no goodbye, the broker publishes the agent's will
    fleet["procs"][HUE].wait(5)
    # No reload: the table refreshes itself and the offline device moves to the top.
    page.wait_for_selector(f"tr.dev[data-device='{HUE}'][data-state='offline']", timeout=15_000)
    print(f"\nconsole: agent killed -> shown offline in {time.monotonic() - killed:.1f} s (page refresh 5 s)")
    assert page.locator("tr.dev").first.get_attribute("data-device") == HUE
    assert "device offline" in page.locator(f"tr.dev[data-device='{HUE}']").inner_text()
    assert page.locator("[data-testid=n-offline]").inner_text() == "1"
    down = page.locator("#fleet-map .map-marker[data-state='down']")
    wait_for(lambda: down.count() == 1, what="its cameras' marker turns red without a reload")
    shot(page, test_output, "fleet-offline")

    page.click(f"a[href='/console/devices/{REX}']")
    page.wait_for_selector("svg.chart polyline")
    assert page.locator("svg.chart").count() == 6
    shot(page, test_output, "device")

    phone = new_page(PHONE)
    login(phone, "lan")
    phone.wait_for_selector(f"tr.dev[data-device='{HUE}'][data-state='offline']")
    # At phone width the table turns into stacked cards: nothing may stick out sideways.
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shot(phone, test_output, "fleet-phone")


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


def test_drawing_a_zone_changes_the_desired_config_and_the_device_applies_it(
    site: Site, fleet: dict[str, Any], new_page: Any, test_output: Path
) -> None:
    ops = fleet["ops"]
    before = ops.get(f"/api/v1/devices/{REX}/config").json()
    page = new_page()
    login(page, "lan")
    page.goto(f"/console/devices/{REX}/cameras/rex-north/zones")
    page.wait_for_selector("[data-sync=applied]")
    assert "s3cret" not in page.content()  # the stream credentials stay on the server
    # The stage takes the snapshot's size once it has loaded; measure after that, or the clicks
    # land where the drawing area was (seen on a loaded machine).
    page.wait_for_function(
        "() => { const i = document.querySelector('.stage img');"
        " return !i || (i.complete && i.naturalWidth > 0); }"
    )
    box = page.locator(".stage svg").bounding_box()
    assert box is not None
    corners = [(0.10, 0.50), (0.90, 0.50), (0.90, 0.95), (0.10, 0.95)]
    page.click("button[data-mode=zone]")
    for x, y in corners:
        page.mouse.click(box["x"] + x * box["width"], box["y"] + y * box["height"])
    page.mouse.click(box["x"] + corners[0][0] * box["width"], box["y"] + corners[0][1] * box["height"])
    # Drag the second corner to a new place (the new zone is selected, so its corners have handles).
    page.mouse.move(box["x"] + 0.90 * box["width"], box["y"] + 0.50 * box["height"])
    page.mouse.down()
    page.mouse.move(box["x"] + 0.85 * box["width"], box["y"] + 0.45 * box["height"], steps=5)
    page.mouse.move(box["x"] + 0.80 * box["width"], box["y"] + 0.40 * box["height"], steps=5)
    page.mouse.up()
    corners[1] = (0.80, 0.40)
    page.fill("input[name=shape-name]", "plaza")
    page.select_option("select[name=new-rule-type]", "crowd")
    page.click("text=Add rule")
    page.fill(".rule[data-rule=crowd] input[name=min_count]", "8")
    page.click("button[data-mode=line]")
    page.mouse.click(box["x"] + 0.3 * box["width"], box["y"] + 0.4 * box["height"])
    page.mouse.click(box["x"] + 0.7 * box["width"], box["y"] + 0.4 * box["height"])
    page.click("text=Add rule")  # a line offers wrong_way
    page.click("#save-zones")
    page.wait_for_selector("#save-status.ok")

    after = ops.get(f"/api/v1/devices/{REX}/config").json()
    assert after["desired_version"] == before["desired_version"] + 1
    cam = next(c for c in after["config"]["cameras"] if c["id"] == "rex-north")
    (zone,) = cam["zones"]
    assert zone["name"] == "plaza"
    assert zone["polygon"] == [pytest.approx(list(c), abs=0.01) for c in corners]
    assert zone["rules"] == [{**zone["rules"][0], "type": "crowd", "min_count": 8, "labels": ["person"]}]
    (line,) = cam["lines"]
    assert line["rules"][0]["type"] == "wrong_way"
    # The stream credentials the editor never showed are still there, and the other camera too.
    assert cam["source"] == "rtsp://viewer:s3cret@10.1.2.3/stream1"
    assert [c["id"] for c in after["config"]["cameras"]] == ["rex-north", "rex-south"]
    # The stand-in device got the retained desired config over MQTT and reported it applied.
    page.wait_for_selector(f"[data-sync=applied]:has-text('v{after['desired_version']}')", timeout=10_000)
    shot(page, test_output, "zones")

    # A zone the device would refuse is refused here too, with the model's reason, and nothing changes.
    page.click("text=plaza — crowd")
    page.fill(".rule[data-rule=crowd] input[name=min_count]", "1")
    page.click("#save-zones")
    page.wait_for_selector("#save-status.error")
    assert "greater than or equal to 2" in page.locator("#save-status").inner_text()
    assert ops.get(f"/api/v1/devices/{REX}/config").json()["desired_version"] == after["desired_version"]

    phone = new_page(PHONE)
    login(phone, "lan")
    phone.goto(f"/console/devices/{REX}/cameras/rex-north/zones")
    phone.wait_for_selector("text=plaza — crowd")
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shot(phone, test_output, "zones-phone")


def test_a_ward_officer_sees_only_their_ward(
    site: Site, fleet: dict[str, Any], history: dict[str, int], new_page: Any, test_output: Path
) -> None:
    page = new_page(PHONE)
    login(page, "officer-dk")
    devices = page.locator("tr.dev").evaluate_all("rows => rows.map(r => r.dataset.device)")
    assert devices == [DAKAO]
    assert "ward_officer" not in page.locator("[data-testid=whoami]").inner_text()  # shown as words
    shot(page, test_output, "fleet-ward-officer-phone")
    for url, status in [
        (f"/console/devices/{REX}", 404),
        (f"/console/devices/{REX}/cameras/rex-north/zones", 404),
        (f"/console/alerts?ward={BEN_NGHE}", 403),
        (f"/console/fleet?ward={BEN_NGHE}", 403),
    ]:
        resp = page.goto(url)
        assert resp is not None and resp.status == status, url
    assert "you may only see ward da-kao" in page.inner_text("main")
    shot(page, test_output, "ward-officer-refused")
    page.goto(f"/console/devices/{DAKAO}")
    page.wait_for_selector("svg.chart")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shot(page, test_output, "device-ward-officer-phone")
    page.goto("/console/alerts")
    rows = page.locator("a.alert-row")
    assert rows.count() == history[DA_KAO]
    ids = rows.evaluate_all("rs => rs.map(r => r.dataset.eventId)")
    with Session(site.engine) as s:
        assert {s.get(AlertRow, i).ward for i in ids} == {DA_KAO}  # type: ignore[union-attr]
    page.goto("/console/reports")
    wards = page.locator("#per-ward tbody tr").evaluate_all("rs => rs.map(r => r.cells[0].innerText)")
    assert wards == [DA_KAO]
    # The same browser session against the JSON API.
    api = page.context.request
    assert api.get(f"/api/v1/alerts?ward={BEN_NGHE}").status == 403
    assert api.get(f"/api/v1/devices/{REX}").status == 404
    assert [d["id"] for d in api.get("/api/v1/devices").json()["items"]] == [DAKAO]
    assert api.get("/api/v1/alerts").json()["total"] == history[DA_KAO]
    assert api.get("/api/v1/media/rex-north-20261124-0001/clip").status in (403, 404)
    assert re.search(r"officer-dk", page.locator("[data-testid=whoami]").inner_text())


def test_the_admin_reads_who_changed_what(
    site: Site, fleet: dict[str, Any], new_page: Any, test_output: Path
) -> None:
    page = new_page()
    login(page, "admin")
    page.click("nav >> text=Audit")
    rows = page.locator("#audit tbody tr")
    entries = rows.evaluate_all(
        "rs => rs.map(r => [r.cells[1].innerText, r.cells[2].innerText, r.cells[3].innerText])"
    )
    assert ["user:admin", "login", "console"] in entries
    assert ["user:lan", "config.set", REX] in entries  # the first desired config, sent through the API
    assert ["user:lan", "camera.set", f"{REX}/rex-north"] in entries
    shot(page, test_output, "audit")

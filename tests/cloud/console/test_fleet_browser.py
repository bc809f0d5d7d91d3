"""The fleet in a real headless Chromium against a real cloud, broker and stand-in devices: log in,
watch a device go offline when its agent dies; a ward officer sees nothing of another ward, in the
pages and in the API. Screenshots land in test-output/console/."""

import re
import time
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session

from cloud.models import AlertRow
from tests.cloud.console.conftest import Site
from tests.cloud.console.district import BEN_NGHE, DA_KAO, DAKAO, HUE, REX, WARD
from tests.cloud.console.helpers import PASSWORD, PHONE, login, shot, wait_for

pytestmark = [pytest.mark.browser]


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

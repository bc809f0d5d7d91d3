"""The zone editor in a real headless Chromium: drawing a zone changes the desired config, the
stand-in device applies it, and a zone the device would refuse is refused with the model's reason.
Screenshots land in test-output/console/."""

from pathlib import Path
from typing import Any

import pytest

from tests.cloud.console.conftest import Site
from tests.cloud.console.district import REX
from tests.cloud.console.helpers import PHONE, login, shot

pytestmark = [pytest.mark.browser]


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

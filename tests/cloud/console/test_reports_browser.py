"""The report in a real headless Chromium over two weeks of alerts in two wards: at phone width the
page itself never scrolls sideways (wide tables scroll inside their own box), and a bad address
(`?days=abc`) is the console's own page in the reader's language, not the API's JSON.
Screenshots land in test-output/console/."""

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session

from cloud import auth
from cloud.models import AlertRow, Device
from matthan_wire import utc_now
from tests.cloud.console.conftest import Site
from tests.cloud.console.helpers import PASSWORD, PHONE, login, shot

pytestmark = [pytest.mark.browser]

LONG_WARD = "phuong-ben-thanh-quan-1-thanh-pho-ho-chi-minh-khu-vuc-cho-ben"
SIDEWAYS = "document.scrollingElement.scrollWidth - window.innerWidth"
# What sticks out past the right edge, to name the culprit when the page does scroll sideways.
STICKING_OUT = """() => [...document.querySelectorAll('main *')]
  .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
  .filter(e => !e.closest('.table-wrap'))
  .map(e => e.tagName + '.' + e.className + '#' + e.id).slice(0, 8)"""


def test_the_report_fits_a_phone_and_a_bad_address_is_a_readable_page(
    site: Site, history: dict[str, int], new_page: Any, test_output: Path
) -> None:
    with Session(site.engine) as s:
        auth.create_user(s, "hoa", "operator", PASSWORD).language = "vi"
        # A ward id as long as ids go: its name widens the ward filter and a column of the report.
        s.add(Device(id="q1-btn-01", ward=LONG_WARD))
        s.add(
            AlertRow(
                event_id="long-ward-1", device_id="q1-btn-01", camera_id="cam-1", ward=LONG_WARD,
                zone="sidewalk-by-the-market-hall", rule="sidewalk-by-the-market-hall.encroachment",
                type="encroachment", category="urban_order", started_at=utc_now() - timedelta(hours=3),
            )
        )  # fmt: skip
        s.commit()
    page = new_page()
    login(page, "lan")
    page.goto("/console/reports")
    assert page.locator("[data-testid=stat-total]").inner_text() == str(sum(history.values()) + 1)
    shot(page, test_output, "reports")
    for user, suffix in (("lan", "phone"), ("hoa", "vi-phone")):
        phone = new_page(PHONE)
        login(phone, user)
        phone.goto("/console/reports")
        phone.wait_for_selector("#per-day-ward tbody tr")
        assert phone.evaluate(SIDEWAYS) <= 0, f"{user}: sideways, {phone.evaluate(STICKING_OUT)}"
        # The wide tables keep every column: they scroll inside their own box.
        wrap = phone.locator("#per-day-ward").locator("xpath=..")
        assert wrap.evaluate("w => getComputedStyle(w).overflowX") == "auto"
        shot(phone, test_output, f"reports-{suffix}")

    resp = phone.goto("/console/reports?days=abc")
    assert resp is not None and resp.status == 422
    assert resp.headers["content-type"].startswith("text/html")
    assert "“Số ngày”: cần một số nguyên" in phone.inner_text("main")
    assert phone.evaluate(SIDEWAYS) <= 0
    shot(phone, test_output, "reports-invalid-vi-phone")
    resp = page.goto("/console/reports?days=0")
    assert resp is not None and resp.status == 422
    assert "“Days” must be at least 1" in page.inner_text("main")
    shot(page, test_output, "reports-invalid")

"""The audit log page in a real headless Chromium: an administrator reads who changed what, filters
by action, actor, day and text, pages through with the filters kept, and sees the name a refused
sign-in tried and where it came from. Screenshots land in test-output/console/."""

from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session

from cloud import audit
from matthan_wire import utc_now
from tests.cloud.console.conftest import Site
from tests.cloud.console.district import REX
from tests.cloud.console.helpers import PHONE, login, shot

pytestmark = [pytest.mark.browser]
SIDEWAYS = "document.scrollingElement.scrollWidth - window.innerWidth"


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


def test_the_admin_filters_and_pages_the_log(
    site: Site, fleet: dict[str, Any], new_page: Any, test_output: Path
) -> None:
    with Session(site.engine) as s:
        for i in range(130):
            audit.record(s, "user:bao", "zone.note", f"cam-{i:03d}", note=f"kiểm tra lần {i}")
        s.commit()
    stranger = new_page()
    stranger.goto("/console/login")
    stranger.fill("input[name=username]", "khach-la")
    stranger.fill("input[name=password]", "guessing")
    stranger.click("button[type=submit]")
    stranger.wait_for_selector("[role=alert]")

    page = new_page()
    login(page, "admin")
    page.goto("/console/audit")
    page.select_option("select[name=action]", "zone.note")
    page.select_option("select[name=size]", "100")
    page.click("#audit-filters button")
    assert page.locator("#audit tbody tr").count() == 100
    assert set(page.locator("#audit tbody tr").evaluate_all("rs => rs.map(r => r.dataset.action)")) == {
        "zone.note"
    }
    older = page.locator("a[rel=next]")
    assert "action=zone.note" in (older.get_attribute("href") or "")
    older.click()
    page.wait_for_url("**page=2**")
    assert page.locator("#audit tbody tr").count() == 30 and page.locator("a[rel=next]").count() == 0
    assert "size=100" in page.url and "action=zone.note" in page.url
    assert page.locator("#audit tbody tr td").nth(3).inner_text() == "cam-029"  # newest first
    page.click("a[rel=prev]")
    page.wait_for_url(lambda url: "page=" not in url)

    page.fill("input[name=q]", "lần 7")
    page.fill("input[name=actor]", "bao")
    page.click("#audit-filters button")
    targets = page.locator("#audit tbody tr").evaluate_all("rs => rs.map(r => r.cells[3].innerText)")
    assert sorted(targets) == ["cam-007", *[f"cam-{i:03d}" for i in range(70, 80)]]
    tomorrow = (utc_now().astimezone(ZoneInfo(site.settings.console_tz)) + timedelta(days=1)).strftime(
        "%Y-%m-%d"
    )
    page.fill("input[name=since]", tomorrow)
    page.click("#audit-filters button")
    assert page.locator("#audit tbody tr td.muted").count() == 1  # nothing matches

    page.goto("/console/audit?action=login_failed")
    tried = page.locator("#audit tbody tr .login-tried").first.inner_text()
    assert "khach-la" in tried and "127.0.0.1" in tried
    shot(page, test_output, "audit-filtered")
    phone = new_page(PHONE)
    login(phone, "admin")
    phone.goto("/console/audit?action=zone.note&q=l%E1%BA%A7n")
    assert phone.evaluate(SIDEWAYS) <= 0
    shot(phone, test_output, "audit-phone")

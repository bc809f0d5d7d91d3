"""The console in a real headless Chromium, in each user's language: a Vietnamese-speaking officer
and an English-speaking one log in to the same site and read every page in their own language.

Screenshots of fleet, alerts and reports in Vietnamese at 1366 px and 390 px land in
test-output/console/ (`*-vi.png`, `*-vi-phone.png`); the test also measures that no text overflows
its box (a longer Vietnamese label must wrap or fit, not spill) and that the page does not scroll
sideways on a phone.
"""

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from cloud import auth
from cloud.models import AlertRow, Device, User
from matthan_wire import utc_now
from tests.cloud.console.conftest import Site
from tests.cloud.console.helpers import DESKTOP, PASSWORD, PHONE, login, shot, wait_for

pytestmark = [pytest.mark.browser]

DEV, WARD = "q1-bt-01", "ben-thanh"
CAMS = [
    ("cho-ben-thanh", "Chợ Bến Thành · cửa Nam", 10.77250, 106.69800),
    ("le-loi", "Đường Lê Lợi", 10.77330, 106.70030),
]
TYPES = [
    ("crowd", "security_order", "Tụ tập đông người", "new"),
    ("illegal_parking", "urban_order", "Đỗ xe trái phép", "acknowledged"),
    ("encroachment", "urban_order", "Lấn chiếm vỉa hè", "resolved"),
    ("wrong_way", "urban_order", "Đi ngược chiều", "false_alarm"),
    ("intrusion", "security_order", "Xâm nhập khu vực cấm", "delivered"),
    ("loitering", "security_order", "Lảng vảng", "new"),
    ("camera_offline", "security_order", "Mất kết nối camera", "new"),
]

# Elements whose text must fit their box: labels, buttons, badges, headings, table heads, tiles.
OVERFLOW_JS = """() => {
  const bad = [];
  const boxes = 'button, .btn, .badge, h1, h2, h3, th, .tile, nav a, label.f, .brand';
  for (const el of document.querySelectorAll(boxes)) {
    if (el.offsetParent === null) continue;
    if (el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).overflowX === 'visible') {
      bad.push(el.tagName + '.' + el.className + ': ' + el.textContent.trim().slice(0, 40));
    }
  }
  const sideways = document.documentElement.scrollWidth > window.innerWidth + 1;
  return {bad, sideways, width: document.documentElement.scrollWidth};
}"""


@pytest.fixture(scope="module")
def district(site: Site) -> Iterator[None]:
    with Session(site.engine) as s:
        auth.create_user(s, "hoa", "operator", PASSWORD)
        auth.create_user(s, "john", "operator", PASSWORD)
        s.add(
            Device(
                id=DEV,
                ward=WARD,
                commissioned_by="ky-thuat-minh",
                commissioned_at=utc_now() - timedelta(days=2),
            )
        )
        s.commit()
        auth.create_user(s, "officer-bt", "ward_officer", PASSWORD, ward=WARD)  # a known ward now
        for name, lang in (("hoa", "vi"), ("john", "en"), ("officer-bt", "vi")):
            s.exec(select(User).where(User.name == name)).one().language = lang
        now = utc_now()
        for i, (kind, category, _vi, state) in enumerate(TYPES):
            cam = CAMS[i % 2][0]
            s.add(
                AlertRow(
                    event_id=f"ev-vi-{i}", device_id=DEV, camera_id=cam, ward=WARD,
                    zone=None if kind == "camera_offline" else "plaza", rule=f"{cam}.{kind}", type=kind,
                    category=category, labels=["person"], object_count=3 + i, score=0.6 + i / 20,
                    started_at=now - timedelta(hours=3 * i, minutes=7), state=state,
                    state_by=None if state in ("new", "delivered") else "officer-bt",
                    state_at=None if state in ("new", "delivered") else now - timedelta(hours=3 * i),
                )
            )  # fmt: skip
        s.commit()
    sim = site.start_device(WARD, DEV, [c for c, *_ in CAMS])
    ops = site.api("hoa")
    for cam, name, lat, lon in CAMS:
        r = ops.put(f"/api/v1/devices/{DEV}/cameras/{cam}", json={"site_name": name, "lat": lat, "lon": lon})
        assert r.status_code == 200, r.text
    site_config = {
        "cameras": [{"id": c, "source": f"rtsp://10.1.3.{i}/stream1"} for i, (c, *_) in enumerate(CAMS)],
        "health": {"interval_s": 1},
    }
    r = ops.put(f"/api/v1/devices/{DEV}/config", json=site_config)
    assert r.status_code == 200, r.text
    yield
    ops.close()
    sim.terminate()
    sim.wait(10)


def _fits(page: Any, name: str) -> None:
    found = page.evaluate(OVERFLOW_JS)
    assert not found["bad"], f"{name}: text spills out of its box: {found['bad']}"
    assert not found["sideways"], f"{name}: the page scrolls sideways ({found['width']} px)"


@pytest.mark.parametrize("viewport, suffix", [(DESKTOP, "vi"), (PHONE, "vi-phone")])
def test_a_vietnamese_user_reads_fleet_alerts_and_reports_in_vietnamese(
    site: Site, district: None, new_page: Any, test_output: Path, viewport: dict[str, int], suffix: str
) -> None:
    page = new_page(viewport)
    login(page, "hoa")
    assert page.locator("html").get_attribute("lang") == "vi"
    page.wait_for_selector(f"tr.dev[data-device='{DEV}'][data-state='online']")
    fleet = page.locator("main").inner_text()
    for words in ("Tình trạng thiết bị", "thiết bị hoạt động", "Chợ Bến Thành · cửa Nam", "Bản đồ camera"):
        assert words in fleet, words
    assert "Fleet health" not in fleet
    shot(page, test_output, f"fleet-{suffix}")
    _fits(page, "fleet")

    page.goto("/console/alerts")
    text = page.locator("main").inner_text()
    for _kind, _cat, vi, _state in TYPES:
        assert vi in text, vi
    for words in ("mới", "đã tiếp nhận", "đã xử lý", "báo động sai", "Loại cảnh báo"):
        assert words in text, words
    shot(page, test_output, f"alerts-{suffix}")
    _fits(page, "alerts")

    page.goto("/console/alerts/ev-vi-0")
    text = page.locator("main").inner_text()
    for words in (
        "Tụ tập đông người",
        "Chứng cứ",
        "Diễn biến",
        "Tiếp nhận",
        "Báo động sai",
        "chưa đặt địa điểm",
    ):
        assert words in text, words
    assert "Project-Id-Version" not in text  # an empty note once showed the catalogue's header
    shot(page, test_output, f"alert-page-{suffix}")
    _fits(page, "alert page")

    page.goto("/console/reports")
    text = page.locator("main").inner_text()
    for words in ("Báo cáo", "Cảnh báo theo ngày và theo nhóm", "An ninh trật tự", "Trật tự đô thị"):
        assert words in text, words
    shot(page, test_output, f"reports-{suffix}")
    _fits(page, "reports")


def test_acting_on_an_alert_in_vietnamese(site: Site, district: None, new_page: Any) -> None:
    page = new_page()
    login(page, "officer-bt")
    page.goto("/console/alerts/ev-vi-5")
    page.locator("textarea[name=note]").fill("Tổ tuần tra đã đến, mời đối tượng rời đi")
    page.locator("button[value=acknowledge]").click()
    wait_for(lambda: "đã tiếp nhận" in page.locator("[data-testid=history]").inner_text().lower())
    history = page.locator("[data-testid=history]").inner_text()
    assert "officer-bt" in history and "Tổ tuần tra đã đến, mời đối tượng rời đi" in history


def test_an_english_user_reads_the_same_site_in_english(site: Site, district: None, new_page: Any) -> None:
    page = new_page()
    login(page, "john")
    assert page.locator("html").get_attribute("lang") == "en"
    assert "Fleet health" in page.locator("main").inner_text()
    page.goto("/console/alerts")
    text = page.locator("main").inner_text()
    assert "Crowd gathering" in text and "Illegal parking" in text and "Tụ tập" not in text
    page.goto("/console/account")
    page.select_option("#language", "vi")
    page.click("main button[type=submit]")
    page.wait_for_url("**/console/account?saved=1")
    assert (
        page.locator("html").get_attribute("lang") == "vi" and "Đã lưu." in page.locator("main").inner_text()
    )


def test_the_zone_editors_script_speaks_vietnamese(site: Site, district: None, new_page: Any) -> None:
    page = new_page()
    login(page, "hoa")
    page.goto(f"/console/devices/{DEV}/cameras/{CAMS[0][0]}/zones")
    # Written by zones.js from the page's catalogue JSON, not by the template.
    page.wait_for_selector("#shape-list li")
    assert "Chưa có vùng hoặc vạch nào" in page.locator("#shape-list").inner_text()
    assert "Chọn một vùng hoặc vạch" in page.locator("#shape-props").inner_text()
    assert "Vẽ vùng" in page.locator(".toolbar").inner_text()

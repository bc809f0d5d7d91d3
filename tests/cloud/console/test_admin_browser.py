"""Claim tokens and users in a real headless Chromium, as a Vietnamese-reading administrator: issue a
token (shown once, with its QR code and enroll command), revoke it; add a ward officer (an unknown
ward is refused), change, disable and reset them. Neither page scrolls sideways at 390 px.
Screenshots land in test-output/console/."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session

from cloud import auth
from cloud.models import Ward
from tests.cloud.console.conftest import Site
from tests.cloud.console.helpers import PASSWORD, PHONE, login, shot

pytestmark = [pytest.mark.browser]

SIDEWAYS = "document.scrollingElement.scrollWidth - window.innerWidth"


@pytest.fixture(scope="module")
def admins(site: Site) -> Iterator[None]:
    with Session(site.engine) as s:
        auth.create_user(s, "root", "admin", PASSWORD).language = "vi"
        auth.create_user(s, "lan", "operator", PASSWORD)
        s.add(Ward(id="ben-nghe"))
        s.add(Ward(id="da-kao"))
        s.commit()
    yield


def test_an_admin_issues_and_revokes_claim_tokens(
    site: Site, admins: None, new_page: Any, test_output: Path
) -> None:
    page = new_page()
    login(page, "root")
    page.click("nav >> a[href='/console/claims']")
    page.fill("input[name=ward]", "ben-nghe")
    page.fill("input[name=device_id]", "q1-rex-09")
    page.click("#issue button[type=submit]")
    token = page.locator("[data-testid=claim-token]").inner_text()
    assert token.startswith("mct_")
    assert f"--token {token} --device-id q1-rex-09 --ward ben-nghe" in page.inner_text(
        "[data-testid=enroll-command]"
    )
    assert "Mã kích hoạt" in page.inner_text("h1")  # the page in the admin's language
    shot(page, test_output, "claims-issued")
    page.goto("/console/claims")
    assert token not in page.content()
    row = page.locator("#claims tbody tr[data-status=open]")
    ref = row.get_attribute("data-ref")
    row.locator("button").click()
    page.wait_for_selector(f"#claims tr[data-ref='{ref}'][data-status=revoked]")
    shot(page, test_output, "claims")

    phone = new_page(PHONE)
    login(phone, "root")
    phone.goto("/console/claims")
    phone.fill("input[name=ward]", "da-kao")
    phone.click("#issue button[type=submit]")
    phone.wait_for_selector("[data-testid=claim-token]")
    assert phone.evaluate(SIDEWAYS) <= 0, "the issued token's page scrolls sideways"
    shot(phone, test_output, "claims-issued-phone")
    phone.goto("/console/claims")
    assert phone.evaluate(SIDEWAYS) <= 0
    shot(phone, test_output, "claims-phone")


def test_an_admin_adds_changes_disables_and_resets_a_user(
    site: Site, admins: None, new_page: Any, test_output: Path
) -> None:
    page = new_page()
    login(page, "root")
    page.click("nav >> a[href='/console/users']")
    page.fill("#add input[name=name]", "minh")
    page.select_option("#add select[name=role]", "ward_officer")
    page.fill("#add input[name=ward]", "phu-my")
    page.click("#add button[type=submit]")
    assert "phường phu-my" in page.inner_text("main").lower()  # refused, in the admin's language
    shot(page, test_output, "users-unknown-ward")
    page.go_back()
    page.fill("#add input[name=name]", "minh")
    page.select_option("#add select[name=role]", "ward_officer")
    page.fill("#add input[name=ward]", "da-kao")
    page.click("#add button[type=submit]")
    password = page.locator("[data-testid=new-password]").inner_text()
    row = page.locator("#users tr[data-user=minh]")
    assert row.get_attribute("data-role") == "ward_officer"
    row.locator("summary").click()
    row.locator("select[name=role]").select_option("operator")
    row.locator("form.filters button").click()
    page.wait_for_selector("#users tr[data-user=minh][data-role=operator]")
    page.locator("#users tr[data-user=minh] summary").click()
    page.locator("#users tr[data-user=minh] button[name=toggle]").click()
    page.wait_for_selector("#users tr[data-user=minh][data-disabled='1']")
    officer = new_page()
    officer.goto("/console/login")
    officer.fill("input[name=username]", "minh")
    officer.fill("input[name=password]", password)
    officer.click("button[type=submit]")
    assert officer.locator("[role=alert]").count() == 1  # a disabled user cannot sign in
    page.locator("#users tr[data-user=minh] summary").click()
    page.locator("#users tr[data-user=minh] button[name=toggle]").click()
    page.wait_for_selector("#users tr[data-user=minh][data-disabled='0']")
    page.locator("#users tr[data-user=minh] summary").click()
    page.locator("#users tr[data-user=minh] button[name=reset]").click()
    fresh = page.locator("[data-testid=new-password]").inner_text()
    assert fresh != password
    login(officer, "minh", fresh)
    page.locator("#users tr[data-user=minh] summary").click()
    shot(page, test_output, "users")

    phone = new_page(PHONE)
    login(phone, "root")
    phone.goto("/console/users")
    phone.locator("#users tr[data-user=minh] summary").click()
    assert phone.evaluate(SIDEWAYS) <= 0
    shot(phone, test_output, "users-phone")

"""The audit log page in a real headless Chromium: an administrator reads who changed what.
Screenshots land in test-output/console/."""

from pathlib import Path
from typing import Any

import pytest

from tests.cloud.console.conftest import Site
from tests.cloud.console.district import REX
from tests.cloud.console.helpers import login, shot

pytestmark = [pytest.mark.browser]


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

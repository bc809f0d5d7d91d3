"""Helpers for the console's browser tests (fixtures live in conftest.py)."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.net import wait_until

DESKTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}
PASSWORD = "correct horse battery"


def login(page: Any, user: str, password: str = PASSWORD) -> None:
    page.goto("/console/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/console/fleet**")


def shot(page: Any, out: Path, name: str) -> None:
    folder = out / "console"
    folder.mkdir(parents=True, exist_ok=True)
    # From the top: a full-page shot of a scrolled page draws the sticky bar mid-page.
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    return wait_until(predicate, timeout=timeout, interval=0.1, what=what)

"""The console's browser harness: a real cloud (uvicorn, SQLite, ingest) on a real Mosquitto, and a
real headless Chromium driven by Playwright.

One site per test module (starting Chromium and the cloud costs a few seconds); each test gets a
fresh browser context (its own cookies).
"""

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

# The district's devices, users and alerts, for the modules that ask for them.
from tests.cloud.console.district import fleet, history
from tests.cloud.console.helpers import DESKTOP, PASSWORD
from tests.cloud.console.tiles import tile_server
from tests.support.broker import Mosquitto
from tests.support.net import free_port, wait_until

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[3]
__all__ = ["Site", "fleet", "history"]


@dataclass
class Site:
    url: str
    broker: Mosquitto
    engine: Any
    settings: Any
    workdir: Path
    sims: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def api(self, user: str) -> httpx.Client:
        """An HTTP client logged in as `user` through the JSON API (cookie + CSRF header)."""
        client = httpx.Client(base_url=self.url, timeout=10)
        r = client.post("/api/v1/auth/login", json={"name": user, "password": PASSWORD})
        r.raise_for_status()
        client.headers["X-CSRF-Token"] = r.json()["csrf_token"]
        return client

    def api_anonymous(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10)

    def start_device(self, ward: str, device: str, cameras: list[str]) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.cloud.console.device_sim",
                self.broker.url,
                ward,
                device,
                ",".join(cameras),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.sims.append(proc)
        return proc


def _skip_without_chromium() -> None:
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing (CI requires it)")
        pytest.skip(f"{CHROMIUM} not installed")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    from cloud.app import create_app
    from cloud.settings import Settings

    work = tmp_path_factory.mktemp("console")
    tiles = tile_server(work / "tiles")
    tile_url = tiles.__enter__()
    broker = Mosquitto(work / "broker").start()
    port = free_port()
    settings = Settings(
        db_url=f"sqlite:///{work / 'cloud.db'}",
        broker_url=broker.url,
        clips=str(work / "clips"),
        secret_key="console-test-secret-key-0123456789",
        public_url=f"http://127.0.0.1:{port}",
        port=port,
        # Fast enough for a test to watch a silent device go offline without waiting minutes.
        health_interval_s=2.0,
        # Street maps from a tile folder the test made, served on loopback (tests/cloud/console/tiles.py).
        map_tile_url=tile_url,
        map_attribution="test tiles",
        # Users without a language of their own read English (the existing tests' texts);
        # test_i18n_browser.py logs in users who chose Vietnamese.
        language="en",
    )
    app = create_app(settings)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=1)
    )
    thread = threading.Thread(target=server.run, name="console-uvicorn", daemon=True)
    thread.start()
    wait_until(lambda: server.started or not thread.is_alive(), timeout=30, what="cloud server start")
    if not server.started:
        broker.stop()
        raise RuntimeError("the cloud did not start; its log above says why")
    s = Site(f"http://127.0.0.1:{port}", broker, app.state.engine, settings, work)
    try:
        yield s
    finally:
        for proc in s.sims:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
        server.should_exit = True
        thread.join(10)
        broker.stop()
        tiles.__exit__(None, None, None)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    _skip_without_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def new_page(browser: Any, site: Site) -> Iterator[Callable[..., Any]]:
    contexts: list[Any] = []

    def make(viewport: dict[str, int] = DESKTOP) -> Any:
        ctx = browser.new_context(viewport=viewport, base_url=site.url)
        ctx.set_default_timeout(10_000)
        contexts.append(ctx)
        return ctx.new_page()

    yield make
    for ctx in contexts:
        ctx.close()

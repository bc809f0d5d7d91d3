"""Fixtures of the cloud tests: the app in its lifespan, devices with tokens, users with keys."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from cloud.app import create_app
from cloud.auth import create_user, issue_api_key, issue_device_token
from cloud.models import Device, Ward
from cloud.settings import Settings


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def make(db_url: str, broker_url: str | None = None, **kw: Any) -> Settings:
        # The tests read the console's English texts; the Vietnamese ones have tests of their own.
        kw.setdefault("language", "en")
        kw.setdefault("quarantine_dir", str(tmp_path / "quarantine"))
        return Settings(
            db_url=db_url, broker_url=broker_url, clips=str(tmp_path / "clips"), secret_key="t" * 32, **kw
        )

    return make


@contextmanager
def running(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def cloud(make_settings: Callable[..., Settings], sqlite_url: str) -> Iterator[TestClient]:
    """The API alone on SQLite (no broker)."""
    with running(make_settings(sqlite_url)) as client:
        yield client


def add_device(client: TestClient, device_id: str, ward: str) -> str:
    """A device row with an upload token, as enrollment leaves it; returns the token."""
    with Session(client.app.state.engine) as s:  # type: ignore[attr-defined]
        device = s.get(Device, device_id) or Device(id=device_id, ward=ward)
        token = issue_device_token(s, device)
        s.commit()
    return token


def add_user(client: TestClient, name: str, role: str, ward: str | None = None) -> str:
    """A user with an API key; returns the key. A ward officer's ward is added first, as an admin
    adds a ward before its officers."""
    with Session(client.app.state.engine) as s:  # type: ignore[attr-defined]
        if ward is not None and s.get(Ward, ward) is None:
            s.add(Ward(id=ward))
        user = create_user(s, name, role, "correct horse battery", ward)
        key = issue_api_key(s, user)
        s.commit()
    return key


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@contextmanager
def served(settings: Settings) -> Iterator[str]:
    """The app behind a real uvicorn on a free loopback port; yields its base URL."""
    import threading

    import uvicorn

    from tests.support.net import free_port, wait_port

    port = free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_config=None, timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_port(port, timeout=20)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)

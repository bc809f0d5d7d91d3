"""What the ingest tests share: the cloud running against a broker (subscribed before devices
publish), and the figures they read back (stored rows, metrics)."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func
from sqlmodel import Session, select

from cloud.models import AlertRow
from cloud.settings import Settings
from tests.cloud.conftest import running
from tests.support.broker import Mosquitto


@contextmanager
def live(
    make_settings: Callable[..., Settings], db_url: str, broker: Mosquitto, **kw: Any
) -> Iterator[TestClient]:
    with running(make_settings(db_url, broker.url, **kw)) as client:
        # The SUBACK, not just the connection: devices publish right after.
        assert client.app.state.mqtt.wait_subscribed(10)  # type: ignore[attr-defined]
        yield client


def count(client: TestClient, model: Any = AlertRow) -> int:
    with Session(client.app.state.engine) as s:  # type: ignore[attr-defined]
        return int(s.exec(select(func.count()).select_from(model)).one())


def metric(client: TestClient, name: str) -> float:
    total = 0.0
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total

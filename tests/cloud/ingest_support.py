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
from matthan_wire import Alert
from tests.cloud.conftest import running
from tests.cloud.devicesim import SimDevice, make_alert
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


def send_amid_good(dev: SimDevice, n: int, bad: Alert) -> list[Alert]:
    """`bad` sent between n good alerts of the device (two before it), so that it shares their
    batch; returns the good ones."""
    good = [make_alert(dev.device, dev.ward, seq=i) for i in range(n)]
    for a in good[:2] + [bad] + good[2:]:
        dev.send_alert(a)
    return good

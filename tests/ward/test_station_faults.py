"""Fault tests on a real site: every alert generated reaches the ward station and the cloud.

The site: a CA, Mosquitto from the generated broker config (mTLS, ACLs, client id = certificate
name, persistence with autosave every 60 s), the cloud service (ingest + station delivery, on
SQLite), a device's real delivery path (outbox → publisher → link, with its certificate) fed at a
steady rate, and `matthan ward listen` with the station's certificate and its state file.

Each test ends with generated = station = cloud, counted as distinct event ids, and no alert
printed twice at the station. Run with `-s` to see the figures.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from cloud.models import AlertRow
from cloud.registry import broker_config as bc
from cloud.settings import Settings
from matthan_wire import Alert, decode
from matthan_wire.config import BrokerConfig
from matthan_wire.identities import CLOUD_USER, station_user
from provisioning import pki
from tests.cloud.conftest import running
from tests.provisioning.conftest import SecureBroker, issue
from tests.support.receipts import wait_for
from tests.support.site import OutboxDevice, StationProcess

pytestmark = pytest.mark.slow

GOLDEN = Path(__file__).parent.parent / "wire" / "golden"
BASE = decode(Alert, (GOLDEN / "alert_start.json").read_bytes().strip())
WARD, DEVICE = BASE.ward, BASE.device_id
RATE = 5.0  # alerts per second while generating


@dataclass
class Site:
    broker: SecureBroker
    cloud: TestClient
    device: OutboxDevice
    station: StationProcess

    def cloud_ids(self) -> set[str]:
        with Session(self.cloud.app.state.engine) as s:  # type: ignore[attr-defined]
            return set(s.exec(select(AlertRow.event_id)).all())

    def restart_broker_after_sigkill(self) -> None:
        epoch = self.device.link.epoch
        ready = self.station.readiness()
        self.broker.kill()
        self.broker.start()
        # Readiness of every client on the new broker: the device has a new connection, the
        # station logged its SUBACKs again, the cloud is connected.
        wait_for(lambda: self.device.link.epoch > epoch, 30, "the device to reconnect")
        if self.station.proc is not None:
            self.station.wait_ready(ready + 1)
        wait_for(lambda: self.cloud.app.state.mqtt.connected, 30, "the cloud to reconnect")  # type: ignore[attr-defined]

    def converge(self, timeout: float) -> tuple[int, int, int]:
        self.device.stop_generating()
        generated = set(self.device.generated)
        try:
            wait_for(
                lambda: (
                    self.device.outbox.depth() == 0
                    and set(self.station.shown()) == generated
                    and self.cloud_ids() == generated
                ),
                timeout,
                "generated = station = cloud",
            )
        except AssertionError:
            station, cloud = set(self.station.shown()), self.cloud_ids()
            raise AssertionError(
                f"generated={len(generated)} station={len(station & generated)} "
                f"cloud={len(cloud & generated)} outbox={self.device.outbox.depth()}"
            ) from None
        shown = self.station.shown()
        assert len(shown) == len(set(shown)), "an alert was printed twice at the station"
        return len(generated), len(set(shown)), len(self.cloud_ids())


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    ca_dir = pki.init_ca(tmp_path / "ca")
    registry = bc.Registry(devices=[bc.RegistryDevice(id=DEVICE, ward=WARD)], wards=[WARD])
    broker = SecureBroker(ca_dir, registry).start()
    ids = tmp_path / "ids"
    device_id = issue(ca_dir, DEVICE, ids)
    station_id = issue(ca_dir, station_user(WARD), ids, device=False)
    cloud_id = issue(ca_dir, CLOUD_USER, ids, device=False)
    url = f"mqtts://127.0.0.1:{broker.port}"
    settings = Settings(
        db_url=f"sqlite:///{tmp_path / 'cloud.db'}",
        broker_url=url,
        broker_ca=str(broker.ca),
        broker_cert=str(cloud_id.cert),
        broker_key=str(cloud_id.key),
        clips=str(tmp_path / "clips"),
        secret_key="s" * 32,
    )
    device = OutboxDevice(
        tmp_path / "outbox.db",
        BrokerConfig(
            url=url, ca=str(broker.ca), cert=str(device_id.cert), key=str(device_id.key), keepalive_s=5
        ),
        BASE,
    )
    station = StationProcess(tmp_path / "station", WARD, url, broker.ca, station_id.cert, station_id.key)
    try:
        with running(settings) as cloud:
            assert cloud.app.state.mqtt.wait_connected(20)  # type: ignore[attr-defined]
            device.start()
            assert device.link.wait_connected(20)
            station.start()
            try:
                yield Site(broker, cloud, device, station)
            finally:
                station.stop()
                device.stop()
    finally:
        broker.cleanup()


def test_a_station_away_during_a_broker_crash_gets_every_alert(site: Site) -> None:
    site.device.generate(RATE)
    wait_for(lambda: len(site.station.shown()) >= 10, 30, "alerts at the station")
    assert site.station.stop() == 0  # the station goes away
    away_from = len(site.device.generated)
    # While it is away, alerts reach the cloud and are receipted: the device forgets them, and
    # only the broker's memory holds the station's copies.
    wait_for(lambda: len(site.cloud_ids()) >= away_from + 40, 30, "alerts stored while the station is away")
    site.restart_broker_after_sigkill()
    restarted_at = len(site.device.generated)
    wait_for(lambda: len(site.cloud_ids()) >= restarted_at + 5, 30, "alerts after the crash")
    site.station.start()  # back, with or without its session at the broker
    wait_for(lambda: len(site.station.shown()) > away_from, 30, "the station to show new alerts")
    generated, at_station, in_cloud = site.converge(40)
    print(f"\nfault=station-away-broker-sigkill generated={generated} station={at_station} cloud={in_cloud}")
    assert generated == at_station == in_cloud


def test_three_broker_sigkills_lose_nothing(site: Site) -> None:
    site.device.generate(RATE)
    wait_for(lambda: len(site.station.shown()) >= 10, 30, "alerts at the station")
    for _ in range(3):
        # Spaced by progress, not by a clock: each crash comes once 30 more alerts (~6 s at 5/s)
        # have reached the cloud since the broker came back.
        stored = len(site.cloud_ids())
        wait_for(lambda n=stored: len(site.cloud_ids()) >= n + 30, 30, "alerts stored between crashes")
        site.restart_broker_after_sigkill()
    generated, at_station, in_cloud = site.converge(45)
    print(f"\nfault=three-broker-sigkills generated={generated} station={at_station} cloud={in_cloud}")
    assert generated == at_station == in_cloud

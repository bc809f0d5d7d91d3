"""cloud/station_delivery.py on a real broker: unconfirmed alerts go to the ward's stations again."""

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from matthan_wire import Alert, AlertAction, Kind, StationSync, decode, encode, utc_now
from matthan_wire.topics import device_topic, ward_topic
from tests.cloud.conftest import running
from tests.support.broker import Mosquitto
from tests.support.receipts import Probe, wait_for

GOLDEN = Path(__file__).parent.parent / "wire" / "golden"
BASE = decode(Alert, (GOLDEN / "alert_start.json").read_bytes().strip())
WARD, DEVICE = BASE.ward, BASE.device_id
COPIES = ward_topic(Kind.STATION_ALERT, WARD)


def _alert(event_id: str) -> bytes:
    return encode(BASE.model_copy(update={"event_id": event_id}))


def _copies(station: Probe, event_id: str) -> int:
    return sum(decode(Alert, p).event_id == event_id for p in station.on(COPIES))


def test_an_unconfirmed_alert_is_sent_again_until_a_station_confirms(
    broker: Mosquitto, make_settings: Callable[..., object], db_url: str
) -> None:
    settings = make_settings(db_url, broker.url, station_resend_first_s=0.3, station_resend_max_s=0.6)
    with running(settings) as client:  # type: ignore[arg-type]
        assert client.app.state.mqtt.wait_connected(10)  # type: ignore[attr-defined]
        station = Probe(broker.port, [COPIES], client_id="station-stand-in")
        device = Probe(broker.port, [], client_id=DEVICE)
        try:
            _publish_until_stored(client, device, ["ev-1"])
            wait_for(lambda: _copies(station, "ev-1") >= 3, 15, "three copies of the unconfirmed alert")
            first = decode(Alert, station.on(COPIES)[0])
            assert first == BASE.model_copy(update={"event_id": "ev-1"})  # the alert as the device sent it
            action = AlertAction(event_id="ev-1", action="deliver", by="station-1", at=utc_now())
            station.publish(ward_topic(Kind.ALERT_ACTION, WARD), encode(action))
            wait_for(
                lambda: client.get("/healthz").status_code == 200 and _delivered(client, "ev-1"),
                10,
                "the alert delivered",
            )
            seen = _copies(station, "ev-1")
            time.sleep(1.5)  # more than two resend gaps: a confirmed alert gets no more copies
            assert _copies(station, "ev-1") <= seen + 1  # one may have been on its way
        finally:
            device.stop()
            station.stop()


def test_a_station_sync_replays_every_unconfirmed_alert_of_its_ward_at_once(
    broker: Mosquitto, make_settings: Callable[..., object], db_url: str
) -> None:
    # Resends far apart: only the sync can bring the copies within the test's time.
    settings = make_settings(db_url, broker.url, station_resend_first_s=600.0)
    with running(settings) as client:  # type: ignore[arg-type]
        assert client.app.state.mqtt.wait_connected(10)  # type: ignore[attr-defined]
        device = Probe(broker.port, [], client_id=DEVICE)
        station = Probe(broker.port, [COPIES], client_id="station-stand-in")
        try:
            _publish_until_stored(client, device, ["ev-a", "ev-b"])
            assert station.on(COPIES) == []
            sync = StationSync(station="station-1", at=utc_now())
            station.publish(ward_topic(Kind.STATION_SYNC, WARD), encode(sync))
            wait_for(lambda: len(station.on(COPIES)) >= 2, 10, "both alerts replayed")
            assert {decode(Alert, p).event_id for p in station.on(COPIES)} == {"ev-a", "ev-b"}
            # A malformed sync is refused and counted; nothing else happens.
            station.publish(ward_topic(Kind.STATION_SYNC, WARD), b"{")
            refused = b'matthan_ingest_rejected_total{kind="station-sync"} 1.0'
            wait_for(lambda: refused in client.get("/metrics").content, 10, "the refusal counted")
        finally:
            device.stop()
            station.stop()


def _publish_until_stored(client: object, device: Probe, event_ids: list[str]) -> None:
    """As the device's outbox does: send again until the cloud has it (its subscription may not
    be acknowledged yet when the test starts publishing)."""
    deadline = time.monotonic() + 15
    while _stored(client) < len(event_ids):
        assert time.monotonic() < deadline, "the cloud did not store the alerts"
        for eid in event_ids:
            device.publish(device_topic(Kind.ALERT, WARD, DEVICE), _alert(eid))
        time.sleep(0.5)


def _delivered(client: object, event_id: str) -> bool:
    from sqlmodel import Session

    from cloud.models import AlertRow

    with Session(client.app.state.engine) as s:  # type: ignore[attr-defined]
        row = s.get(AlertRow, event_id)
        return row is not None and row.state == "delivered"


def _stored(client: object) -> int:
    from sqlalchemy import func
    from sqlmodel import Session, select

    from cloud.models import AlertRow

    with Session(client.app.state.engine) as s:  # type: ignore[attr-defined]
        return int(s.exec(select(func.count()).select_from(AlertRow)).one())


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_delivery_thread_turns_healthz_red(
    broker: Mosquitto, make_settings: Callable[..., object], sqlite_url: str
) -> None:
    settings = make_settings(sqlite_url, broker.url)
    with running(settings) as client:  # type: ignore[arg-type]
        delivery = client.app.state.station_delivery  # type: ignore[attr-defined]
        assert client.get("/healthz").json()["dead_workers"] == []

        def die() -> int:
            raise SystemExit("simulated: a BaseException the delivery loop does not catch")

        delivery.run_once = die
        delivery._wake.set()
        wait_for(lambda: not delivery.alive, 10, "delivery thread ended")
        r = client.get("/healthz")
        assert r.status_code == 503 and r.json()["dead_workers"] == ["station-delivery"]

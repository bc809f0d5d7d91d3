"""The outbox publisher's resend schedule during a cloud outage, on a real Mosquitto.

The device side is the real outbox (SQLite), publisher and MQTT link; the ward station is a persistent
QoS 1 session counting every copy (tests/support/receipts.py CopyCounter); the cloud is the receipt
stand-in. The outbox and the publisher run on a clock the test moves (tests/support/clock.py), so ten
minutes without a cloud take seconds; the broker, the network and the threads are real.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest

from device.outbox import MessageKind, NewMessage, Outbox
from device.outbox_publisher import REPLAY_GRACE_S
from matthan_wire import Alert, Kind, decode, encode
from matthan_wire.config import BrokerConfig, OutboxConfig
from matthan_wire.topics import device_topic
from tests.support.broker import Mosquitto
from tests.support.clock import SimClock
from tests.support.delivery import DEVICE, WARD, DeliveryPath
from tests.support.receipts import CopyCounter, ReceiptStandIn, wait_for

GOLDEN = Path(__file__).parent.parent / "wire" / "golden"
BASE = decode(Alert, (GOLDEN / "alert_start.json").read_bytes().strip())
STEP_S = 5.0


class SimDevice(DeliveryPath):
    """The agent's delivery path on a simulated clock."""

    def __init__(self, db: Path, port: int, clock: SimClock, limits: OutboxConfig | None = None) -> None:
        self.clock = clock
        outbox = Outbox(db, limits or OutboxConfig(), clock=clock.now)
        super().__init__(outbox, BrokerConfig(url=f"mqtt://127.0.0.1:{port}", keepalive_s=5))

    def start(self) -> "SimDevice":
        self.link.start()
        self.publisher.start()
        assert self.link.wait_connected(10)
        return self

    def stop(self) -> None:
        self.publisher.stop()
        self.link.stop()
        self.outbox.close()

    def alert(self) -> str:
        eid = f"ev-{len(self.generated):06d}"
        a = BASE.model_copy(update={"event_id": eid, "seq": self.outbox.next_seq(), "snapshot": None})
        topic = device_topic(Kind.ALERT, WARD, DEVICE)
        self.outbox.put([NewMessage(a.event_id, MessageKind.ALERT, topic, encode(a))])
        self.generated.append(a.event_id)
        self.publisher.wake()
        return a.event_id

    def step(self, seconds: float, station: CopyCounter) -> None:
        """Move the clock, then wait until every copy due by then is sent, acknowledged and at the station."""
        self.clock.advance(seconds)
        self.publisher.wake()
        wait_for(self.publisher.settled, 10, "the publisher to send what is due")
        c = self.publisher.counters
        sent = c.published + c.republished
        wait_for(lambda: station.received() >= sent, 10, f"the station to receive {sent} copies")


@pytest.fixture
def station(broker: Mosquitto) -> Iterator[CopyCounter]:
    s = CopyCounter(broker.port, WARD, keep_order=True)
    yield s
    s.stop()


def test_ten_minutes_without_cloud_send_each_alert_three_times_then_all_are_receipted(
    tmp_path: Path, broker: Mosquitto, station: CopyCounter
) -> None:
    cloud = ReceiptStandIn(broker.port).start()
    cloud.pause()  # subscribed, but commits nothing and sends no receipt: the cloud is down
    dev = SimDevice(tmp_path / "outbox.db", broker.port, SimClock()).start()
    try:
        for t in range(0, 600, int(STEP_S)):
            if t < 300:  # an alert every 5 s for the first 5 minutes: 60 alerts
                dev.alert()
            dev.step(STEP_S, station)
        copies = station.snapshot()
        assert set(copies) == set(dev.generated)
        # The bound (defaults: 30 s, ×4, cap 600 s): copies at 0, ≥ 30 and ≥ 150 s, the next ≥ 630 s.
        # Every alert here is at least 300 s old, so each got exactly three; at 30 s fixed, 11 to 21.
        assert sorted(set(copies.values())) == [3]
        stats = dev.publisher.stats()
        assert stats.resends_1h == 2 * len(dev.generated)
        assert stats.oldest_age_s >= 595 and stats.depth == len(dev.generated)

        cloud.resume()  # it kept what its session received: receipts for all of it, at once
        wait_for(lambda: dev.outbox.depth() == 0, 10, "the receipts to empty the outbox")
        assert cloud.seen() == set(dev.generated)
        assert dev.outbox.stats().alerts_acked_total == len(dev.generated)
        dev.step(REPLAY_GRACE_S + 1, station)  # a replay, if any, finds nothing left to send
        assert max(station.snapshot().values()) == 3
        assert dev.publisher.stats().oldest_age_s == 0
    finally:
        dev.stop()
        cloud.stop()


def test_cloud_back_without_its_backlog_gets_everything_replayed_in_order(
    tmp_path: Path, broker: Mosquitto, station: CopyCounter
) -> None:
    """The cloud returns with a fresh broker session (what was queued for it is gone): its first
    receipt ends the silence and the device replays the whole backlog, oldest first."""
    dev = SimDevice(tmp_path / "outbox.db", broker.port, SimClock()).start()
    cloud: ReceiptStandIn | None = None
    try:
        backlog: list[str] = []
        for _ in range(36):  # 3 minutes, no cloud at all
            if len(backlog) < 20:
                backlog.append(dev.alert())
            dev.step(STEP_S, station)
        assert dev.outbox.depth() == 20 and max(station.snapshot().values()) <= 3
        before = len(station.order)
        cloud = ReceiptStandIn(broker.port, client_id="cloud-ingest-new-session").start()
        fresh = dev.alert()
        wait_for(lambda: fresh in cloud.seen(), 10, "the cloud to receive the new alert")
        wait_for(lambda: dev.outbox.depth() == 20, 10, "the receipt for the new alert")
        dev.step(REPLAY_GRACE_S, station)
        wait_for(lambda: dev.outbox.depth() == 0, 10, "the replayed backlog to be receipted")
        assert cloud.seen() == set(backlog) | {fresh}
        replayed = [e for e in station.order[before:] if e != fresh]
        assert replayed == backlog, "the backlog goes again once each, in publishing order"
        assert dev.publisher.counters.replays >= 1
        assert max(station.snapshot().values()) <= 4
    finally:
        dev.stop()
        if cloud is not None:
            cloud.stop()

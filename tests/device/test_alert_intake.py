"""Where an event enters the agent: the outbox first, then the clip maker; a clip maker's failure
loses nothing, and an alert the card cannot store still goes out once."""

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from device.alert_intake import AlertIntake
from device.events import DetectedEvent
from device.outbox import MessageKind, Outbox
from device.outbox_publisher import OutboxPublisher
from matthan.mqtt import MqttLink
from matthan_wire import Alert, Kind, decode, utc_now
from matthan_wire.config import BrokerConfig
from matthan_wire.topics import device_topic
from tests.support.broker import Mosquitto
from tests.support.receipts import Probe, wait_for

GOLDEN = Path(__file__).parent.parent / "wire" / "golden"
START = decode(Alert, (GOLDEN / "alert_start.json").read_bytes().strip())
END = START.model_copy(update={"phase": "end", "ended_at": utc_now(), "snapshot": None})
WARD, DEVICE = START.ward, START.device_id
TOPICS = {k: device_topic(k, WARD, DEVICE) for k in (Kind.ALERT, Kind.EVENT)}


class ClipSink:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.seen: list[tuple[str, str, bytes | None]] = []

    def event_started(self, alert: Alert, snapshot_jpeg: bytes | None) -> None:
        self.seen.append(("start", alert.event_id, snapshot_jpeg))
        if self.fail:
            raise OSError("card full")

    def event_ended(self, alert: Alert) -> None:
        self.seen.append(("end", alert.event_id, None))


def link_to(port: int) -> MqttLink:
    return MqttLink(
        BrokerConfig(url=f"mqtt://127.0.0.1:{port}"),
        DEVICE,
        subscriptions=[],
        on_message=lambda topic, payload: None,
    )


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    ob = Outbox(tmp_path / "outbox.db")
    yield ob
    ob.close()


def intake(outbox: Outbox, link: MqttLink, sink: ClipSink | None) -> AlertIntake:
    return AlertIntake(outbox, OutboxPublisher(outbox, link), link, TOPICS, sink)


def test_start_and_end_are_in_the_outbox_before_the_clip_maker_hears_of_them(outbox: Outbox) -> None:
    sink = ClipSink()
    taken = intake(outbox, link_to(1), sink)
    taken.take(DetectedEvent(START, b"jpeg"))
    taken.take(DetectedEvent(END, None))
    held = outbox.after(0, 10)
    assert [(m.event_id, m.kind) for m in held] == [
        (START.event_id, MessageKind.ALERT),
        (START.event_id, MessageKind.SNAPSHOT),
        (START.event_id, MessageKind.EVENT),
    ]
    assert [m.topic for m in held] == [
        TOPICS[Kind.ALERT],
        device_topic(Kind.SNAPSHOT, WARD, DEVICE, START.event_id),
        TOPICS[Kind.EVENT],
    ]
    assert held[1].payload == b"jpeg"
    assert sink.seen == [("start", START.event_id, b"jpeg"), ("end", START.event_id, None)]


def test_a_failing_clip_maker_loses_no_alert(outbox: Outbox, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="matthan.device.agent"):
        intake(outbox, link_to(1), ClipSink(fail=True)).take(DetectedEvent(START, None))
    assert [m.kind for m in outbox.after(0, 10)] == [MessageKind.ALERT]
    assert f"clip sink failed event={START.event_id}" in caplog.text


def test_an_alert_the_outbox_cannot_store_is_published_once(outbox: Outbox, broker: Mosquitto) -> None:
    probe = Probe(broker.port, [TOPICS[Kind.ALERT]])
    link = link_to(broker.port)
    link.start()
    try:
        assert link.wait_connected(10)
        taken = intake(outbox, link, None)
        outbox.close()  # what a failed card looks like to SQLite: every write raises
        taken.take(DetectedEvent(START, None))
        assert taken.unstored_total == 1
        wait_for(lambda: len(probe.on(TOPICS[Kind.ALERT])) == 1, 10, "the alert at the broker")
        assert decode(Alert, probe.on(TOPICS[Kind.ALERT])[0]).event_id == START.event_id
    finally:
        link.stop()
        probe.stop()

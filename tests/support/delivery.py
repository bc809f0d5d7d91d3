"""The device's delivery path as device/agent.py wires it (outbox → publisher → MQTT link, receipts
and PUBACKs back to the publisher), for the tests that drive it against a real Mosquitto."""

from device.outbox import Outbox
from device.outbox_publisher import OutboxPublisher
from matthan.backoff import Backoff
from matthan.mqtt import MqttLink
from matthan_wire import Kind
from matthan_wire.config import BrokerConfig
from matthan_wire.topics import device_topic

WARD, DEVICE = "ben-nghe", "q1-rex-01"


class DeliveryPath:
    def __init__(self, outbox: Outbox, broker: BrokerConfig) -> None:
        self.outbox = outbox
        self.publisher: OutboxPublisher
        self.link = MqttLink(
            broker,
            DEVICE,
            subscriptions=[(device_topic(Kind.RECEIPT, WARD, DEVICE), 1)],
            on_message=lambda topic, payload: self.publisher.on_receipt(payload),
            on_published=lambda mid, ok: self.publisher.on_published(mid, ok),
            status_topic=device_topic(Kind.STATUS, WARD, DEVICE),
            backoff=Backoff(initial=0.2, maximum=2.0),
        )
        self.publisher = OutboxPublisher(self.outbox, self.link)
        self.generated: list[str] = []  # event ids, in the order the test made them

"""A device's delivery path as the benchmarks build it, wired the way the agent wires it: an outbox
published over one MQTT link, the receipts on the device's receipt topic handed back to the outbox,
and the device's status topic for its will. Light on imports: the soak measures its process's RSS."""

from typing import Any

from device.outbox import Outbox
from device.outbox_publisher import OutboxPublisher
from matthan.mqtt import MqttLink
from matthan_wire import Kind
from matthan_wire.config import BrokerConfig
from matthan_wire.topics import device_topic


def outbox_link(
    outbox: Outbox, port: int, ward: str, device: str, **link: Any
) -> tuple[MqttLink, OutboxPublisher]:
    """The link (not started) and its publisher; `link` passes further MqttLink options."""
    publisher: OutboxPublisher
    mqtt = MqttLink(
        BrokerConfig(url=f"mqtt://127.0.0.1:{port}"), device,
        subscriptions=[(device_topic(Kind.RECEIPT, ward, device), 1)],
        on_message=lambda t, p: publisher.on_receipt(p),
        on_published=lambda mid, ok: publisher.on_published(mid, ok),
        status_topic=device_topic(Kind.STATUS, ward, device), **link,
    )  # fmt: skip
    publisher = OutboxPublisher(outbox, mqtt)
    return mqtt, publisher

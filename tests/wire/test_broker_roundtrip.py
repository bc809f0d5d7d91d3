"""An Alert crosses a real Mosquitto and decodes on the other side."""

import queue
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from matthan_wire import Alert, Kind, decode, parse_topic
from matthan_wire.topics import device_filter, device_topic
from tests.support.broker import Mosquitto

GOLDEN = Path(__file__).parent / "golden"


def _client(name: str) -> mqtt.Client:
    return mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name, protocol=mqtt.MQTTv5)


def test_alert_through_real_broker(broker: Mosquitto) -> None:
    got: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    subscribed = threading.Event()
    sub = _client("ward-station")
    sub.on_message = lambda c, u, m: got.put(m)
    sub.on_subscribe = lambda c, u, mid, codes, props: subscribed.set()
    sub.connect("127.0.0.1", broker.port)
    sub.loop_start()
    sub.subscribe(device_filter(Kind.ALERT, ward="ben-nghe"), qos=1)
    pub = _client("q1-rex-01")
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    try:
        assert subscribed.wait(5)
        raw = (GOLDEN / "alert_start.json").read_bytes().strip()
        sent = decode(Alert, raw)
        pub.publish(device_topic(Kind.ALERT, sent.ward, sent.device_id), raw, qos=1).wait_for_publish(5)
        msg = got.get(timeout=5)
        assert parse_topic(msg.topic).kind is Kind.ALERT
        assert msg.qos == 1
        assert decode(Alert, msg.payload) == sent
    finally:
        for c in (pub, sub):
            c.loop_stop()
            c.disconnect()

"""The checklist's broker item: connect with the device's own certificate, publish a nonce to its
check topic and read it back — the broker, the certificate and the device's ACL in one round."""

import secrets
import threading
import time
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from matthan.i18n import Msg
from matthan_wire.config import DeviceConfig
from matthan_wire.identities import check_topic
from provisioning.check_report import Checked

NETWORK_TIMEOUT_S = 5.0


def check_broker(config: DeviceConfig) -> Checked:
    b, dev = config.broker, config.device
    url = urlsplit(b.url)
    host, port = url.hostname or "", url.port or (8883 if url.scheme == "mqtts" else 1883)
    where = f"{host}:{port}"
    topic = check_topic(dev.ward, dev.id)
    nonce = secrets.token_hex(8).encode()
    got = threading.Event()
    connected = threading.Event()
    outcome: list[str] = []
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"{dev.id}-check-{nonce[:6].decode()}",
        protocol=mqtt.MQTTv5,
    )
    if url.scheme == "mqtts":
        client.tls_set(ca_certs=b.ca, certfile=b.cert, keyfile=b.key)
    if b.username:
        client.username_pw_set(b.username, b.password)

    def on_connect(c: mqtt.Client, u: object, flags: object, rc: object, props: object) -> None:
        outcome.append(str(rc))
        connected.set()
        c.subscribe(topic, qos=1)

    def on_subscribe(c: mqtt.Client, u: object, mid: int, codes: list[ReasonCode], props: Properties) -> None:
        c.publish(topic, nonce, qos=1)

    def on_disconnect(c: mqtt.Client, u: object, flags: object, rc: object, props: object) -> None:
        outcome.append(f"disconnected: {rc}")
        connected.set()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_disconnect = on_disconnect
    client.on_message = lambda c, u, m: got.set() if m.payload == nonce else None
    started = time.perf_counter()
    try:
        client.connect(host, port, keepalive=10)
    except OSError as exc:
        return Checked("broker", "fail", f"{where}: {exc.strerror or exc}")
    client.loop_start()
    try:
        if not connected.wait(NETWORK_TIMEOUT_S):
            return Checked("broker", "fail", Msg("%(where)s: no answer to CONNECT", where=where))
        if outcome and outcome[0] != "Success":
            return Checked("broker", "fail", Msg("%(where)s: refused (%(why)s)", where=where, why=outcome[0]))
        if not got.wait(NETWORK_TIMEOUT_S):
            return Checked(
                "broker",
                "fail",
                Msg("connected, but the test message on %(topic)s did not come back (ACL?)", topic=topic),
            )
        ms = (time.perf_counter() - started) * 1000
        echo = Msg("%(where)s as %(device)s, echo in %(ms)s ms", where=where, device=dev.id, ms=f"{ms:.0f}")
        return Checked("broker", "pass", echo)
    finally:
        client.disconnect()
        client.loop_stop()

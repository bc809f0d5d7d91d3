"""The MQTT link and the outbox publisher against a real Mosquitto: nothing leaves before its receipt.

The receipting side is tests/support/receipts.py (a stand-in for the cloud ingest); the ward side is
the real ward subscriber.
"""

import logging
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from device.outbox import MessageKind, NewMessage, Outbox
from matthan_wire import Alert, Kind, Status, decode, encode
from matthan_wire.config import BrokerConfig, OutboxConfig
from matthan_wire.topics import device_topic
from tests.support.broker import Mosquitto
from tests.support.delivery import DEVICE, WARD, DeliveryPath
from tests.support.receipts import ReceiptStandIn, WardCollector, wait_for

GOLDEN = Path(__file__).parent.parent / "wire" / "golden"
BASE = decode(Alert, (GOLDEN / "alert_start.json").read_bytes().strip())


class Device(DeliveryPath):
    def __init__(self, db: Path, broker_url: str, resend_after_s: float = 30.0, **broker: object) -> None:
        outbox = Outbox(db, OutboxConfig(resend_after_s=resend_after_s))
        super().__init__(outbox, BrokerConfig(url=broker_url, keepalive_s=5, **broker))

    def start(self) -> "Device":
        self.link.start()
        self.publisher.start()
        return self

    def stop(self) -> None:
        self.publisher.stop()
        self.link.stop()

    def alert(self, n: int = 1, prefix: str = "ev") -> list[str]:
        msgs = []
        for _ in range(n):
            i = len(self.generated)
            a = BASE.model_copy(
                update={"event_id": f"{prefix}-{i:06d}", "seq": self.outbox.next_seq(), "snapshot": None}
            )
            msgs.append(
                NewMessage(a.event_id, MessageKind.ALERT, device_topic(Kind.ALERT, WARD, DEVICE), encode(a))
            )
            self.generated.append(a.event_id)
        self.outbox.put(msgs)
        self.publisher.wake()
        return [m.event_id for m in msgs]


@pytest.fixture
def parts(tmp_path: Path, broker: Mosquitto) -> Iterator[tuple[Device, WardCollector, ReceiptStandIn]]:
    ward = WardCollector(broker.port, WARD).start()
    cloud = ReceiptStandIn(broker.port).start()
    dev = Device(tmp_path / "outbox.db", broker.url, resend_after_s=2.0).start()
    assert dev.link.wait_connected(10)
    yield dev, ward, cloud
    dev.stop()
    cloud.stop()
    ward.stop()


def test_alert_reaches_ward_and_leaves_outbox_on_receipt(
    parts: tuple[Device, WardCollector, ReceiptStandIn],
) -> None:
    dev, ward, cloud = parts
    cloud.pause()
    [eid] = dev.alert()
    wait_for(lambda: eid in ward.seen(), 10, "ward receives the alert")
    wait_for(lambda: dev.publisher.counters.pubacks >= 1, 5, "PUBACK")
    time.sleep(0.5)
    assert dev.outbox.depth() == 1, "a PUBACK alone must not remove the message"
    cloud.resume()
    wait_for(lambda: dev.outbox.depth() == 0, 10, "receipt empties the outbox")
    assert dev.outbox.stats().alerts_acked_total == 1


def test_broker_sigkill_right_after_puback_still_delivers(tmp_path: Path, broker: Mosquitto) -> None:
    """Mosquitto PUBACKs before the message is on disk; the outbox resends until the receipt."""
    # The ward station has a persistent session but is offline, so the alert waits in the broker.
    ward = WardCollector(broker.port, WARD).start()
    ward.stop()
    dev = Device(tmp_path / "outbox.db", broker.url, resend_after_s=1.0).start()
    try:
        assert dev.link.wait_connected(10)
        [eid] = dev.alert()
        wait_for(lambda: dev.publisher.counters.pubacks >= 1, 5, "PUBACK")
        broker.kill()
        assert dev.outbox.depth() == 1
        broker.start()
        ward = WardCollector(broker.port, WARD).start()
        cloud = ReceiptStandIn(broker.port).start()
        try:
            wait_for(lambda: eid in ward.seen(), 20, "the alert after the broker's crash")
            wait_for(lambda: dev.outbox.depth() == 0, 10, "receipt after the crash")
        finally:
            cloud.stop()
            ward.stop()
    finally:
        dev.stop()


def test_broker_down_longer_than_keepalive_loses_nothing(
    parts: tuple[Device, WardCollector, ReceiptStandIn], broker: Mosquitto
) -> None:
    dev, ward, cloud = parts
    stop = threading.Event()

    def generate() -> None:
        while not stop.is_set():
            dev.alert(5)
            time.sleep(0.05)

    gen = threading.Thread(target=generate)
    gen.start()
    try:
        time.sleep(1.0)
        broker.stop()
        time.sleep(dev.link.keepalive_s + 2)  # longer than the keepalive, alerts still being generated
        assert not dev.link.connected
        broker.start()
        time.sleep(1.5)
    finally:
        stop.set()
        gen.join()
    generated = set(dev.generated)
    wait_for(lambda: ward.seen() >= generated, 30, "every alert at the ward")
    wait_for(lambda: dev.outbox.depth() == 0, 20, "every alert receipted")
    assert ward.seen() == generated
    assert dev.outbox.stats().alerts_total == len(generated) == dev.outbox.stats().alerts_acked_total
    assert dev.link.counters.disconnects >= 1


def test_replay_after_restart_is_in_order(tmp_path: Path, broker: Mosquitto) -> None:
    """Alerts queued while the agent had no broker go out oldest first when it is back."""
    ward = WardCollector(broker.port, WARD).start()
    cloud = ReceiptStandIn(broker.port).start()
    broker.stop()
    dev = Device(tmp_path / "outbox.db", broker.url)
    dev.alert(200)
    dev.outbox.close()
    # A restarted agent on the same outbox file.
    dev = Device(tmp_path / "outbox.db", broker.url).start()
    dev.generated = [f"ev-{i:06d}" for i in range(200)]
    try:
        time.sleep(0.5)
        broker.start()
        wait_for(lambda: len(ward.seen()) == 200, 30, "the replay")
        first_seen = list(dict.fromkeys(ward.event_ids))
        assert first_seen == dev.generated
        wait_for(lambda: dev.outbox.depth() == 0, 10, "receipts")
    finally:
        dev.stop()
        cloud.stop()
        ward.stop()


def test_status_online_retained_and_offline_as_will(tmp_path: Path, broker: Mosquitto) -> None:
    topic = device_topic(Kind.STATUS, WARD, DEVICE)
    code = textwrap.dedent(
        f"""
        import time
        from matthan.mqtt import MqttLink
        from matthan_wire.config import BrokerConfig
        link = MqttLink(BrokerConfig(url={broker.url!r}, keepalive_s=5), {DEVICE!r}, subscriptions=[],
                        on_message=lambda t, p: None, status_topic={topic!r})
        link.start()
        assert link.wait_connected(10)
        print("up", flush=True)
        time.sleep(60)
        """
    )
    agent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert agent.stdout is not None and agent.stdout.readline().strip() == "up"
        wait_for(lambda: _retained(broker, topic).state == "online", 5, "retained online")
        agent.send_signal(signal.SIGKILL)  # no DISCONNECT: the broker sends the will
        agent.wait(5)
        wait_for(lambda: _retained(broker, topic).state == "offline", 5, "the will")
    finally:
        agent.kill()
        agent.wait(5)
    # A clean stop says offline itself (a clean DISCONNECT sends no will).
    dev = Device(tmp_path / "outbox.db", broker.url).start()
    assert dev.link.wait_connected(10)
    wait_for(lambda: _retained(broker, topic).state == "online", 5, "online again")
    dev.stop()
    assert _retained(broker, topic).state == "offline"


def _retained(broker: Mosquitto, topic: str) -> Status:
    out = subprocess.run(
        ["mosquitto_sub", "-p", str(broker.port), "-t", topic, "-C", "1", "-W", "3", "-V", "mqttv5"],
        capture_output=True,
        timeout=10,
    )
    return decode(Status, out.stdout.strip())


def test_refused_connect_is_reported_and_backed_off(
    tmp_path: Path,
    broker_factory: Callable[..., Mosquitto],
    caplog: pytest.LogCaptureFixture,
) -> None:
    pw = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pw), DEVICE, "right"], check=True, timeout=10)
    b = broker_factory(extra_config=f"allow_anonymous false\npassword_file {pw}")
    b.conf.write_text(b.conf.read_text().replace("allow_anonymous true\n", ""))
    b.start()
    caplog.set_level(logging.INFO, logger="matthan.mqtt")
    dev = Device(tmp_path / "outbox.db", b.url, username=DEVICE, password="wrong").start()
    try:
        time.sleep(4.0)
        assert not dev.link.connected
        refused = dev.link.counters.refused
        # Backoff 0.2 s doubling to 2 s: about 4–6 attempts in 4 s; a spinning client makes hundreds.
        assert 2 <= refused <= 8, refused
        assert dev.link.counters.connects == 0
        assert (
            "not authorized" in (dev.link.last_refusal or "").lower()
            or "bad user" in (dev.link.last_refusal or "").lower()
        )
        assert any("connect refused" in r.getMessage() for r in caplog.records)
        assert not any("mqtt connected" in r.getMessage() for r in caplog.records)
    finally:
        dev.stop()


def test_publish_refused_by_acl_is_counted_not_success(
    tmp_path: Path, broker_factory: Callable[..., Mosquitto]
) -> None:
    acl = tmp_path / "acl"
    # Anonymous may say its status and read receipts, but not publish alerts.
    acl.write_text(
        f"topic readwrite matthan/v1/{WARD}/{DEVICE}/status\ntopic read matthan/v1/{WARD}/{DEVICE}/receipt\n"
    )
    b = broker_factory(extra_config=f"acl_file {acl}").start()
    dev = Device(tmp_path / "outbox.db", b.url, resend_after_s=60).start()
    try:
        assert dev.link.wait_connected(10)
        dev.alert()
        wait_for(lambda: dev.link.counters.publish_refused >= 1, 5, "reason 135 on the PUBACK")
        wait_for(lambda: dev.publisher.counters.refused >= 1, 5, "the publisher counts it")
        assert dev.outbox.depth() == 1
    finally:
        dev.stop()


@pytest.mark.slow
def test_more_than_65535_messages_on_one_connection(
    parts: tuple[Device, WardCollector, ReceiptStandIn],
) -> None:
    """paho's in-memory queue tops out near 65,535; the outbox window keeps it small."""
    dev, ward, cloud = parts
    n = 70_000
    for _ in range(n // 10_000):
        dev.alert(10_000)
    wait_for(lambda: len(ward.seen()) >= n, 120, f"{n} alerts at the ward")
    wait_for(lambda: dev.outbox.depth() == 0, 30, "every alert receipted")
    assert ward.seen() == set(dev.generated)
    assert dev.link.counters.connects == 1, "all on one connection"
    assert dev.outbox.stats().alerts_acked_total == n


def _pki(d: Path) -> dict[str, Path]:
    """A CA, a broker certificate for 127.0.0.1 and a device client certificate (CN = device id)."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return path

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder().subject_name(name("test-ca")).issuer_name(name("test-ca"))
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    out = {"ca": d / "ca.pem"}
    out["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for who, san in (("server", x509.IPAddress(ipaddress.ip_address("127.0.0.1"))), (DEVICE, None)):
        key = ec.generate_private_key(ec.SECP256R1())
        b = (
            x509.CertificateBuilder().subject_name(name(who)).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        )  # fmt: skip
        if san is not None:
            b = b.add_extension(x509.SubjectAlternativeName([san]), critical=False)
        cert = b.sign(ca_key, hashes.SHA256())
        out[f"{who}.pem"] = d / f"{who}.pem"
        out[f"{who}.pem"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        out[f"{who}.key"] = write_key(key, d / f"{who}.key")
    return out


def test_tls_with_client_certificate(tmp_path: Path, broker_factory: Callable[..., Mosquitto]) -> None:
    from tests.support.net import free_port

    pki = _pki(tmp_path)
    port = free_port()
    listener = (
        f"listener {port} 127.0.0.1\ncafile {pki['ca']}\ncertfile {pki['server.pem']}\n"
        f"keyfile {pki['server.key']}\nrequire_certificate true\nuse_identity_as_username true"
    )
    b = broker_factory(listener=listener, port=port, extra_config="allow_anonymous false").start()
    url = f"mqtts://127.0.0.1:{b.port}"
    dev = Device(
        tmp_path / "outbox.db",
        url,
        ca=str(pki["ca"]),
        cert=str(pki[f"{DEVICE}.pem"]),
        key=str(pki[f"{DEVICE}.key"]),
    ).start()
    # Without a client certificate the broker refuses the handshake: never "connected".
    anon = Device(tmp_path / "anon.db", url, ca=str(pki["ca"])).start()
    try:
        assert dev.link.wait_connected(10), "mTLS connection"
        # Until the broker has answered the anonymous client's attempt, however slow the machine.
        wait_for(
            lambda: anon.link.counters.connect_failures + anon.link.counters.refused >= 1,
            30,
            "a refused attempt",
        )
        assert not anon.link.connected and anon.link.counters.connects == 0
    finally:
        anon.stop()
        dev.stop()

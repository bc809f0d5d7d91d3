"""A stand-in for the cloud's MQTT ingest, for device-side tests only.

The real ingest (cloud/) commits alerts, ends and snapshots to its database and then publishes a
`Receipt` on the device's `receipt` topic. Device tests need something that receipts without
starting the cloud, so this subscribes to every device's alert, event and snapshot topics with a
persistent session (like the ingest) and answers each batch with a Receipt at once. It keeps the
set of event ids it saw. `pause()` stops receipting (a cloud that is down) while still recording.

It is not the ingest: it commits nothing. The lead's integration tests use the real one.
"""

import json
import queue
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from matthan_wire import Kind, Receipt, encode, parse_topic, utc_now
from matthan_wire.topics import device_filter, device_topic
from tests.support.net import wait_until


class ReceiptStandIn:
    def __init__(self, port: int, client_id: str = "cloud-ingest-standin", batch: int = 1000) -> None:
        self.port = port
        self.batch = batch
        self.alerts: set[str] = set()
        self.ends: set[str] = set()
        self.snapshots: set[str] = set()
        self.messages = 0
        self.receipts_sent = 0
        self._paused = threading.Event()
        self._incoming: queue.SimpleQueue[tuple[str, str, str, Kind]] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self._client.max_inflight_messages_set(1000)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._thread = threading.Thread(target=self._run, name="receipt-standin", daemon=True)

    def start(self) -> "ReceiptStandIn":
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
        self._client.reconnect_delay_set(0.2, 1)  # type: ignore[arg-type]
        self._client.connect_async("127.0.0.1", self.port, keepalive=10, clean_start=False, properties=props)
        self._client.loop_start()
        self._thread.start()
        if not self._connected.wait(10):
            raise RuntimeError("receipt stand-in could not connect")
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._client.disconnect()
        self._client.loop_stop()

    def pause(self) -> None:
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()

    def seen(self) -> set[str]:
        with self._lock:
            return set(self.alerts)

    def _on_connect(
        self, client: mqtt.Client, userdata: object, flags: object, reason: object, props: object
    ) -> None:
        for kind in (Kind.ALERT, Kind.EVENT, Kind.SNAPSHOT):
            client.subscribe(device_filter(kind), qos=1)
        self._connected.set()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        t = parse_topic(msg.topic)
        if t.kind is Kind.SNAPSHOT:
            event_id = t.event_id or ""
        else:
            event_id = json.loads(msg.payload)["event_id"]
        self._incoming.put((t.ward, t.device or "", event_id, t.kind))

    def _run(self) -> None:
        pending: dict[tuple[str, str], dict[Kind, set[str]]] = {}
        while not self._stop.is_set():
            try:
                item = self._incoming.get(timeout=0.02)
            except queue.Empty:
                item = None
            while item is not None:
                ward, device, event_id, kind = item
                self.messages += 1
                with self._lock:
                    {Kind.ALERT: self.alerts, Kind.EVENT: self.ends, Kind.SNAPSHOT: self.snapshots}[kind].add(
                        event_id
                    )
                pending.setdefault((ward, device), {}).setdefault(kind, set()).add(event_id)
                try:
                    item = self._incoming.get_nowait()
                except queue.Empty:
                    item = None
            if self._paused.is_set() or not pending:
                continue
            for (ward, device), kinds in pending.items():
                self._receipt(ward, device, kinds)
            pending.clear()

    def _receipt(self, ward: str, device: str, kinds: dict[Kind, set[str]]) -> None:
        alerts = sorted(kinds.get(Kind.ALERT, set()))
        ends = sorted(kinds.get(Kind.EVENT, set()))
        snaps = sorted(kinds.get(Kind.SNAPSHOT, set()))
        topic = device_topic(Kind.RECEIPT, ward, device)
        while alerts or ends or snaps:
            r = Receipt(
                event_ids=alerts[: self.batch],
                ends=ends[: self.batch],
                snapshots=snaps[: self.batch],
                at=utc_now(),
            )
            alerts, ends, snaps = alerts[self.batch :], ends[self.batch :], snaps[self.batch :]
            self._client.publish(topic, encode(r), qos=1)
            self.receipts_sent += 1


def wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    """net.wait_until, failing as an assertion (what these tests wait for is what they check)."""
    try:
        wait_until(predicate, timeout, what=what)
    except TimeoutError as exc:
        raise AssertionError(str(exc)) from None


class WardCollector:
    """The real ward subscriber (ward.listener) on a thread, remembering every alert it printed."""

    def __init__(self, port: int, ward: str, client_id: str = "ward-test-station") -> None:
        import io

        from matthan_wire.config import BrokerConfig
        from ward.listener import WardListener

        self.event_ids: list[str] = []
        self.out = io.StringIO()
        self.listener = WardListener(
            ward,
            BrokerConfig(url=f"mqtt://127.0.0.1:{port}", keepalive_s=5),
            out=self.out,
            client_id=client_id,
            on_alert=lambda a: self.event_ids.append(a.event_id),
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "WardCollector":
        self.listener.start()
        if not self.listener.link.wait_connected(10):
            raise RuntimeError("ward subscriber could not connect")
        self._stop.clear()
        ready = self.listener.syncs
        self._thread = threading.Thread(target=self.listener.run, args=(self._stop,), daemon=True)
        self._thread.start()
        # Connected is not enough: only after the SUBACKs does the broker route alerts to it.
        wait_for(lambda: self.listener.syncs > ready, 10, "the ward subscriber's subscriptions")
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.listener.stop()

    def seen(self) -> set[str]:
        return set(self.event_ids)


class Probe:
    """A plain MQTT 5 client for tests: publishes, and collects what arrives on its filters."""

    def __init__(self, port: int, filters: list[str], client_id: str = "test-probe") -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda c, u, mid, codes, props: self._subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        for f in filters:
            self._subscribed.clear()
            self.client.subscribe(f, qos=1)
            if not self._subscribed.wait(5):
                raise RuntimeError(f"probe could not subscribe to {f}")

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload)))

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def on(self, topic: str) -> list[bytes]:
        with self._lock:
            return [p for t, p in self.messages if t == topic]

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class CopyCounter:
    """A ward station as the broker sees it: a persistent QoS 1 session on the ward's alert topics,
    counting every copy of every alert (the real station dedupes; this counts what it must dedupe)."""

    def __init__(
        self, port: int, ward: str, client_id: str = "ward-copy-counter", keep_order: bool = False
    ) -> None:
        self.copies: dict[str, int] = {}
        self.order: list[str] = []  # every copy's event id in arrival order, when keep_order
        self._keep_order = keep_order
        self.total = 0
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._filter = f"matthan/v1/{ward}/+/{Kind.ALERT.value}"
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.on_connect = lambda c, u, f, r, p: c.subscribe(self._filter, qos=1)
        self.client.on_subscribe = lambda c, u, mid, codes, props: self._subscribed.set()
        self.client.on_message = self._on_message
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
        self.client.connect("127.0.0.1", port, clean_start=False, properties=props)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError("copy counter could not subscribe")

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        event_id = json.loads(msg.payload)["event_id"]
        with self._lock:
            self.total += 1
            self.copies[event_id] = self.copies.get(event_id, 0) + 1
            if self._keep_order:
                self.order.append(event_id)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.copies)

    def received(self) -> int:
        with self._lock:
            return self.total

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

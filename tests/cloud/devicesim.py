"""A device as the cloud sees it, in the test process: a real paho MQTT 5 client with a tiny
outbox (kept until the cloud's receipt names it, resent otherwise), status with an offline will,
health, and config reports. Only the wire contract is used, as a real agent would."""

import threading
import time
import uuid
from datetime import timedelta

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from matthan_wire import Alert, CameraHealth, Health, Kind, Receipt, Status, decode, encode, utc_now
from matthan_wire.topics import device_topic

JPEG = b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF" + bytes(200) + b"\xff\xd9"


def make_alert(
    device: str,
    ward: str,
    seq: int,
    phase: str = "start",
    camera: str = "cam-1",
    rule: str = "plaza.crowd",
    event_id: str | None = None,
) -> Alert:
    started = utc_now() - timedelta(seconds=5)
    return Alert(
        event_id=event_id or f"{device}-{uuid.uuid4().hex[:12]}",
        phase=phase,  # type: ignore[arg-type]
        device_id=device,
        camera_id=camera,
        ward=ward,
        zone="plaza",
        rule=rule,
        type="crowd",
        category="security_order",
        labels=["person"],
        object_count=7,
        score=0.81,
        bbox=[0.1, 0.2, 0.5, 0.9],
        started_at=started,
        ended_at=utc_now() if phase == "end" else None,
        seq=seq,
        snapshot=None,
        clip=None,
    )


def make_health(device: str, ward: str) -> Health:
    return Health(
        device_id=device,
        ward=ward,
        at=utc_now(),
        uptime_s=12.0,
        cpu_pct=31.5,
        mem_mb=512.0,
        disk_free_mb=2048.0,
        temp_c=55.0,
        outbox_depth=0,
        upload_backlog=0,
        config_version=None,
        model="ssd_mobilenet_v1_coco_quant.tflite",
        cameras=[
            CameraHealth(
                id="cam-1", stream_up=True, fps_in=25.0, fps_detect=5.0, detect_ms=7.3, last_frame_age_s=0.04
            )
        ],
    )


class SimDevice:
    def __init__(self, port: int, device: str, ward: str, will: bool = True) -> None:
        self.device, self.ward, self.port = device, ward, port
        self.receipts: list[Receipt] = []
        self.outbox: dict[tuple[str, str], tuple[str, bytes]] = {}  # (event_id, kind) → (topic, payload)
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"sim-{device}-{uuid.uuid4().hex[:6]}",
            protocol=mqtt.MQTTv5,
        )
        self.client.reconnect_delay_set(0.1, 1.0)
        self.status_topic = device_topic(Kind.STATUS, ward, device)
        if will:
            self.client.will_set(self.status_topic, encode(Status(state="offline", at=utc_now())), 1, True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *a: self.connected.clear()
        self.client.on_message = self._on_message

    def start(self) -> "SimDevice":
        self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()
        assert self.connected.wait(10), "simulated device could not connect"
        return self

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()

    def _on_connect(self, c: mqtt.Client, *_: object) -> None:
        c.subscribe(device_topic(Kind.RECEIPT, self.ward, self.device), qos=1)
        self.connected.set()

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        receipt = decode(Receipt, msg.payload)
        with self.lock:
            self.receipts.append(receipt)
            for ids, kind in (
                (receipt.event_ids, "alert"),
                (receipt.ends, "event"),
                (receipt.snapshots, "snapshot"),
            ):
                for event_id in ids:
                    self.outbox.pop((event_id, kind), None)

    def online(self) -> None:
        self.client.publish(self.status_topic, encode(Status(state="online", at=utc_now())), 1, True)

    def send_alert(self, alert: Alert) -> None:
        kind = Kind.ALERT if alert.phase == "start" else Kind.EVENT
        topic = device_topic(kind, self.ward, self.device)
        payload = encode(alert)
        with self.lock:
            self.outbox[(alert.event_id, kind.value)] = (topic, payload)
        self.client.publish(topic, payload, qos=1)

    def send_snapshot(self, event_id: str, jpeg: bytes = JPEG) -> None:
        topic = device_topic(Kind.SNAPSHOT, self.ward, self.device, event_id)
        with self.lock:
            self.outbox[(event_id, "snapshot")] = (topic, jpeg)
        self.client.publish(topic, jpeg, qos=1)

    def send_health(self) -> None:
        self.client.publish(
            device_topic(Kind.HEALTH, self.ward, self.device), encode(make_health(self.device, self.ward)), 0
        )

    def resend(self) -> int:
        """What a device does every resend_after_s: publish again whatever has no receipt yet."""
        with self.lock:
            pending = list(self.outbox.values())
        for topic, payload in pending:
            self.client.publish(topic, payload, qos=1)
        return len(pending)

    def receipted(self, kind: str = "event_ids") -> set[str]:
        with self.lock:
            return {e for r in self.receipts for e in getattr(r, kind)}

    def drain(self, timeout: float = 30.0, every: float = 1.0) -> None:
        """Resend until the outbox is empty (every message receipted)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if not self.outbox:
                    return
            time.sleep(every)
            if self.connected.is_set():
                self.resend()
        raise TimeoutError(f"{len(self.outbox)} messages never receipted")

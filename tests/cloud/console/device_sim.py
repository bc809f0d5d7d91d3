"""A stand-in device agent for the console tests: a real MQTT client in its own process.

It does what the console can observe of an agent: status online with an offline will, health
every second, and it applies each desired config it receives by reporting it back. Killing the
process (SIGKILL) is the agent dying: the broker publishes the will, as it would in the field.

    python -m tests.cloud.console.device_sim BROKER_URL WARD DEVICE CAMERA[,CAMERA...]
"""

import sys
import threading
import time
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from matthan_wire import (
    CameraHealth,
    DesiredConfig,
    Health,
    Kind,
    ReportedConfig,
    Status,
    Topic,
    decode,
    encode,
    utc_now,
)


def main(argv: list[str]) -> int:
    url, ward, device, cameras = argv[0], argv[1], argv[2], argv[3].split(",")
    parts = urlsplit(url)
    started = time.monotonic()
    version: list[int | None] = [None]
    lock = threading.Lock()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sim-{device}", protocol=mqtt.MQTTv5)
    status_topic = str(Topic(Kind.STATUS, ward, device))
    client.will_set(status_topic, encode(Status(state="offline", at=utc_now())), qos=1, retain=True)

    def on_connect(c: mqtt.Client, _u: object, _f: object, rc: object, _p: object = None) -> None:
        c.publish(status_topic, encode(Status(state="online", at=utc_now())), qos=1, retain=True)
        c.subscribe(str(Topic(Kind.CONFIG_DESIRED, ward, device)), qos=1)

    def on_message(c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        desired = decode(DesiredConfig, bytes(msg.payload))
        with lock:
            version[0] = desired.version
        report = ReportedConfig(version=desired.version, status="applied", at=utc_now())
        c.publish(str(Topic(Kind.CONFIG_REPORTED, ward, device)), encode(report), qos=1, retain=True)
        print(f"applied {desired.version}", flush=True)

    client.on_connect = on_connect
    client.on_message = on_message
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 0
    client.connect(parts.hostname or "127.0.0.1", parts.port or 1883, keepalive=5, properties=props)
    client.loop_start()
    n = 0
    while True:
        n += 1
        with lock:
            running = version[0]
        health = Health(
            device_id=device,
            ward=ward,
            at=utc_now(),
            uptime_s=time.monotonic() - started,
            cpu_pct=30.0 + (n % 7) * 4.0,
            mem_mb=410.0 + n % 5,
            disk_free_mb=5200.0 - n,
            temp_c=52.0 + (n % 4),
            outbox_depth=0,
            upload_backlog=n % 3,
            config_version=running,
            model="ssd_mobilenet_v1_coco_quant.tflite",
            cameras=[
                CameraHealth(
                    id=cam,
                    stream_up=True,
                    fps_in=12.5,
                    fps_detect=5.0,
                    detect_ms=8.1 + i,
                    last_frame_age_s=0.1,
                    expected_fps=12.5,
                    quality=0.98,
                )
                for i, cam in enumerate(cameras)
            ],
        )
        client.publish(str(Topic(Kind.HEALTH, ward, device)), encode(health), qos=0)
        time.sleep(1.0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

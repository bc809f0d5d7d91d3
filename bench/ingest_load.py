"""The load of the ingest benchmark (bench/ingest.py): simulated devices and the broker's reference
consumer, each in its own process.

The mix is four health messages (QoS 0) to one alert start (QoS 1). Each publisher process stands
in for many devices with one connection (the broker and the ingest see the same topics and
payloads as from separate devices; the ACL is not part of this measurement). A publisher times
each alert from publish to its receipt; the counter is a paho subscriber that does nothing but
count (the ceiling for any Python consumer here).
"""

import multiprocessing as mp
import time
import uuid
from datetime import timedelta
from typing import Any

from matthan_wire import Alert, CameraHealth, Health, Kind, Receipt, decode, encode, utc_now
from matthan_wire.topics import device_topic

CAMERAS_PER_DEVICE = 1115 / 128
PUBLISHERS = 2
ALERT_EVERY = 5  # one alert start in five messages
EVENT_PLACEHOLDER = "evplaceholder-0000000000000000"


# --- payloads ------------------------------------------------------------------------------------


def devices(n: int) -> list[tuple[str, str]]:
    """(ward, device) pairs: ten devices to a ward, as in the reference district."""
    return [(f"ward-{i // 10:03d}", f"dev-{i:05d}") for i in range(n)]


def health_payload(ward: str, device: str) -> bytes:
    cams = max(1, round(CAMERAS_PER_DEVICE))
    return encode(
        Health(
            device_id=device,
            ward=ward,
            at=utc_now(),
            uptime_s=3600.0,
            cpu_pct=42.0,
            mem_mb=700.0,
            disk_free_mb=9000.0,
            temp_c=58.5,
            outbox_depth=0,
            upload_backlog=1,
            config_version=3,
            model="ssd_mobilenet_v1_coco_quant.tflite",
            cameras=[
                CameraHealth(
                    id=f"cam-{c}",
                    stream_up=True,
                    fps_in=25.0,
                    fps_detect=5.0,
                    detect_ms=7.3,
                    last_frame_age_s=0.04,
                )
                for c in range(cams)
            ],
        )
    )


def alert_template(ward: str, device: str) -> bytes:
    now = utc_now()
    return encode(
        Alert(
            event_id=EVENT_PLACEHOLDER,
            phase="start",
            device_id=device,
            camera_id="cam-1",
            ward=ward,
            zone="plaza",
            rule="plaza.crowd",
            type="crowd",
            category="security_order",
            labels=["person"],
            object_count=7,
            score=0.8,
            bbox=[0.1, 0.2, 0.5, 0.9],
            started_at=now - timedelta(seconds=10),
            ended_at=None,
            seq=1,
            snapshot=None,
            clip=None,
        )
    )


# --- a publisher process (many devices, one connection) ------------------------------------------


def publisher(
    port: int,
    devs: list[tuple[str, str]],
    seconds: float,
    rate: float | None,
    out: Any,
    ready: Any,
    go: Any,
    tag: str,
    receipts: bool,
) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    sent_at: dict[str, float] = {}
    lags: list[float] = []
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{tag}-{uuid.uuid4().hex[:6]}", protocol=mqtt.MQTTv5
    )
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)

    def on_message(_c: Any, _u: Any, msg: Any) -> None:
        now = time.time()
        for event_id in decode(Receipt, msg.payload).event_ids:
            t = sent_at.pop(event_id, None)
            if t is not None:
                lags.append(now - t)

    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.loop_start()
    if receipts:
        client.subscribe([(device_topic(Kind.RECEIPT, w, d), 1) for w, d in devs])
    health = [(device_topic(Kind.HEALTH, w, d), health_payload(w, d)) for w, d in devs]
    alerts = [(device_topic(Kind.ALERT, w, d), alert_template(w, d)) for w, d in devs]
    prefix = uuid.uuid4().hex[:8]
    time.sleep(0.5)
    ready.set()
    go.wait()
    started = time.time()
    n = alerts_sent = 0
    while True:
        now = time.time()
        if now - started >= seconds:
            break
        if rate is not None and n >= (now - started) * rate:
            time.sleep(0.001)
            continue
        i = n % len(devs)
        if n % ALERT_EVERY == 0:
            topic, template = alerts[i]
            event_id = f"{prefix}-{alerts_sent:021d}"
            if receipts:
                sent_at[event_id] = time.time()
            client.publish(topic, template.replace(EVENT_PLACEHOLDER.encode(), event_id.encode()), qos=1)
            alerts_sent += 1
        else:
            topic, payload = health[i]
            client.publish(topic, payload, qos=0)
        n += 1
    elapsed = time.time() - started
    deadline = time.time() + 10
    while sent_at and time.time() < deadline:
        time.sleep(0.1)
    client.loop_stop()
    client.disconnect()
    out.put(
        {"published": n, "alerts": alerts_sent, "seconds": elapsed, "lags": lags, "unreceipted": len(sent_at)}
    )


# --- broker reference: a paho subscriber that only counts -----------------------------------------


def counter(port: int, out: Any, ready: Any, finished: Any, idle_s: float) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    state = {"n": 0, "first": 0.0, "last": 0.0}

    def on_message(_c: Any, _u: Any, _m: Any) -> None:
        now = time.time()
        if state["n"] == 0:
            state["first"] = now
        state["n"] += 1
        state["last"] = now

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"bench-count-{uuid.uuid4().hex[:6]}", protocol=mqtt.MQTTv5
    )
    client.on_message = on_message
    client.on_subscribe = lambda *a: ready.set()
    client.connect("127.0.0.1", port)
    client.subscribe("matthan/v1/#", qos=1)
    client.loop_start()
    # Until the publishers are done and nothing has come for idle_s (a starved subscriber may
    # pause for a while mid-run; that must not end the count).
    while not finished.is_set() or time.time() - state["last"] < idle_s:
        time.sleep(0.1)
    client.loop_stop()
    out.put({"received": state["n"], "seconds": max(1e-9, state["last"] - state["first"])})


def run_publishers(
    port: int, devs: list[tuple[str, str]], seconds: float, rate: float | None, receipts: bool = True
) -> list[dict[str, Any]]:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    go = ctx.Event()
    readies = []
    procs = []
    for k in range(PUBLISHERS):
        ready = ctx.Event()
        share = devs[k::PUBLISHERS]
        per_rate = rate / PUBLISHERS if rate else None
        p = ctx.Process(
            target=publisher, args=(port, share, seconds, per_rate, out, ready, go, str(k), receipts)
        )
        p.start()
        procs.append(p)
        readies.append(ready)
    for r in readies:
        r.wait(60)
    go.set()
    results = [out.get(timeout=seconds + 90) for _ in procs]
    for p in procs:
        p.join(10)
    return results

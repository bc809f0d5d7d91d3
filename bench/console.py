"""Console benchmark: how heavy are the pages the operations centre keeps open, at district size?

    .venv/bin/python -m bench.console

The real app (cloud.app.create_app, SQLite WAL, no broker) with a synthetic fleet written straight
to the database: 128 devices with 1,115 cameras (the reference district), then 5 districts' worth;
2 % of cameras down, a device in 17 offline; 30 alerts a day for 30 days per district. For each,
the median time and the size of what the browser fetches:
- the fleet table part (fetched again every 5 s by every open fleet page), side by side with the
  same part listing every camera (what the table did before it listed only cameras in trouble);
- the alert feed page (20 cards) and the report page (30 days of alerts, figures per day, ward, rule).

Times are server-side, in-process (Starlette's TestClient): rendering and queries, no network.
"""

import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlmodel import Session

from cloud import auth
from cloud.app import create_app
from cloud.console import views
from cloud.models import AlertRow, Camera, Device, HealthLatest, table
from cloud.settings import Settings
from matthan_wire.timeutil import utc_now

DISTRICT_DEVICES, DISTRICT_CAMERAS, ALERTS_PER_DAY = 128, 1115, 30
RUNS = 9
PASSWORD = "bench-password-1"


def seed(client: TestClient, districts: int) -> None:
    now = utc_now()
    devices, cameras, healths, alerts = [], [], [], []
    for k in range(districts):
        left = DISTRICT_CAMERAS
        for i in range(DISTRICT_DEVICES):
            dev = f"d{k}-dev-{i:03d}"
            n = min(9, left) if i < DISTRICT_DEVICES - 1 else left
            left -= n
            online = i % 17 != 0
            devices.append({"id": dev, "ward": f"d{k}-ward-{i % 10}", "online": online, "created_at": now,
                            "last_seen": now - timedelta(seconds=i if online else 900)})  # fmt: skip
            cams = []
            for j in range(n):
                cameras.append(
                    {"device_id": dev, "id": f"cam-{j}", "lat": 10.77 + i * 2e-4, "lon": 106.69 + j * 2e-4}
                )
                cams.append({"id": f"cam-{j}", "stream_up": (i * 9 + j) % 50 != 7, "fps_in": 12.5,
                             "fps_detect": 5.0, "detect_ms": 9.0, "last_frame_age_s": 0.1,
                             "quality": 0.97})  # fmt: skip
            healths.append({"device_id": dev, "at": now, "body": {
                "model": "ssd_mobilenet_v1_coco_quant.tflite", "temp_c": 55.0, "disk_free_mb": 5000.0,
                "outbox_depth": 0, "upload_backlog": 1, "cameras": cams}})  # fmt: skip
        for a in range(ALERTS_PER_DAY * 30):
            started = now - timedelta(minutes=a * 48 + 1)
            state = ("resolved", "false_alarm", "acknowledged", "new")[a % 4]
            kind = ("crowd", "intrusion")[a % 2]
            alerts.append({
                "event_id": f"d{k}-ev-{a:05d}", "device_id": f"d{k}-dev-{a % 128:03d}", "camera_id": "cam-0",
                "ward": f"d{k}-ward-{a % 10}", "zone": "plaza", "type": kind, "rule": f"plaza.{kind}",
                "category": "security_order", "labels": ["person"], "object_count": 3, "score": 0.8,
                "started_at": started, "ended_at": started + timedelta(minutes=2),
                "seq": a, "state": state, "state_at": started + timedelta(minutes=5), "state_by": "bench",
                "acknowledged_at": started + timedelta(minutes=5) if state != "new" else None,
                "received_at": started, "updated_at": started,
            })  # fmt: skip
    engine = client.app.state.engine  # type: ignore[attr-defined]
    with Session(engine) as s:
        for model, rows in (
            (Device, devices),
            (Camera, cameras),
            (HealthLatest, healths),
            (AlertRow, alerts),
        ):
            s.execute(table(model).insert(), rows)
        auth.create_user(s, "ops", "operator", PASSWORD)
        s.commit()


def login(client: TestClient) -> None:
    page = client.get("/console/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token is not None
    r = client.post(
        "/console/login", data={"username": "ops", "password": PASSWORD, "csrf_token": token.group(1)}
    )
    r.raise_for_status()


def timed(client: TestClient, url: str) -> tuple[float, int]:
    client.get(url).raise_for_status()  # warm: templates compiled, caches filled
    ms, size = [], 0
    for _ in range(RUNS):
        t0 = time.perf_counter()
        r = client.get(url)
        ms.append((time.perf_counter() - t0) * 1000)
        size = len(r.content)
    return statistics.median(ms), size


@contextmanager
def every_camera_row() -> Iterator[None]:
    """The table as it was before: every camera of every device gets a row."""
    original = views.DeviceView.camera_rows
    views.DeviceView.camera_rows = property(lambda v: v.cameras)  # type: ignore[assignment,method-assign]
    try:
        yield
    finally:
        views.DeviceView.camera_rows = original  # type: ignore[method-assign]


def measure(districts: int) -> dict[str, tuple[float, int]]:
    with tempfile.TemporaryDirectory(prefix="bench-console-") as tmp:
        settings = Settings(
            db_url=f"sqlite:///{Path(tmp) / 'cloud.db'}", broker_url=None, clips=str(Path(tmp) / "clips"),
            secret_key="bench-console-secret-key-0123456789",
        )  # fmt: skip
        with TestClient(create_app(settings)) as client:
            seed(client, districts)
            login(client)
            out = {"fleet part": timed(client, "/console/fleet/part")}
            with every_camera_row():
                out["fleet part, every camera"] = timed(client, "/console/fleet/part")
            out["alert feed"] = timed(client, "/console/alerts")
            out["report, 30 days"] = timed(client, "/console/reports")
            return out


def main() -> int:
    results: dict[int, dict[str, tuple[float, int]]] = {}
    for districts in (1, 5):
        print(f"{districts} district(s) …", file=sys.stderr, flush=True)
        results[districts] = measure(districts)
    print("## Console pages (`python -m bench.console`)\n")
    print(
        f"Server-side time (median of {RUNS}, in-process, SQLite) and bytes per fetch. One district: "
        f"{DISTRICT_DEVICES} devices, {DISTRICT_CAMERAS:,} cameras, "
        f"{ALERTS_PER_DAY * 30} alerts in 30 days.\n"
    )
    print("| page | 1 district ms | KiB | 5 districts ms | KiB | time ×5 / ×1 |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for page in results[1]:
        (t1, b1), (t5, b5) = results[1][page], results[5][page]
        print(f"| {page} | {t1:.0f} | {b1 / 1024:.0f} | {t5:.0f} | {b5 / 1024:.0f} | {t5 / t1:.1f} |")
    r1 = results[1]
    full, part = r1["fleet part, every camera"], r1["fleet part"]
    print(
        f"\nListing only cameras in trouble: the 5-s refresh of one district is "
        f"{full[1] / part[1]:.1f}× smaller and {full[0] / part[0]:.1f}× faster to render than listing "
        "every camera.\n"
    )
    load = os.getloadavg()
    print(f"Load average during the run (1/5/15 min): {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}.\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

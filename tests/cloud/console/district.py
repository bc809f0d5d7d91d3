"""The district the console's browser tests look at: three devices in two wards of District 1
(stand-in agents on the test's broker), their cameras' positions, users of each role, and two weeks
of handled alerts. conftest.py offers `fleet` and `history` to every browser test module; each
module gets its own site, so these are built once per module that asks for them."""

import random
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlmodel import Session

from cloud import auth
from cloud.models import AlertRow, Device
from matthan_wire import utc_now
from tests.cloud.console.helpers import PASSWORD, wait_for

if TYPE_CHECKING:  # conftest imports this module for its fixtures
    from tests.cloud.console.conftest import Site

REX, HUE, DAKAO = "q1-rex-01", "q1-hue-01", "q1-dakao-01"
BEN_NGHE, DA_KAO = "ben-nghe", "da-kao"
# Real positions around Nguyen Hue walking street and Da Kao, District 1.
CAMERAS = {
    REX: [("rex-north", 10.77640, 106.70120), ("rex-south", 10.77590, 106.70160)],
    HUE: [("hue-fountain", 10.77420, 106.70380)],
    DAKAO: [("dk-market", 10.79020, 106.69690)],
}
WARD = {REX: BEN_NGHE, HUE: BEN_NGHE, DAKAO: DA_KAO}
VN_SITE: dict[str, Any] = {
    "name": "Phố đi bộ Nguyễn Huệ (đầu Lê Lợi)", "address": "Nguyễn Huệ, phường Bến Nghé, Quận 1",
    "lat": 10.7764, "lon": 106.7012,
}  # fmt: skip


@pytest.fixture(scope="module")
def fleet(site: "Site", assets_dir: Path) -> Iterator[dict[str, Any]]:
    """Users, three commissioned devices running, camera positions, and a first desired config."""
    tokens: dict[str, str] = {}
    with Session(site.engine) as s:
        auth.create_user(s, "admin", "admin", PASSWORD)
        auth.create_user(s, "lan", "operator", PASSWORD)
        for dev, ward in WARD.items():
            d = Device(
                id=dev, ward=ward, commissioned_by="tech-minh", commissioned_at=utc_now() - timedelta(days=3)
            )
            tokens[dev] = auth.issue_device_token(s, d)
        auth.create_user(s, "officer-dk", "ward_officer", PASSWORD, ward=DA_KAO)  # a known ward
        s.commit()
    procs = {dev: site.start_device(WARD[dev], dev, [c for c, _, _ in cams]) for dev, cams in CAMERAS.items()}
    ops = site.api("lan")
    for dev, cams in CAMERAS.items():
        for cam, lat, lon in cams:
            r = ops.put(
                f"/api/v1/devices/{dev}/cameras/{cam}", json={"site_name": None, "lat": lat, "lon": lon}
            )
            assert r.status_code == 200, r.text
    site_config = {
        "cameras": [
            {"id": "rex-north", "source": "rtsp://viewer:s3cret@10.1.2.3/stream1", "zones": [], "lines": []},
            {"id": "rex-south", "source": "rtsp://viewer:s3cret@10.1.2.4/stream1"},
        ],
        "health": {"interval_s": 1},
    }
    r = ops.put(f"/api/v1/devices/{REX}/config", json=site_config)
    assert r.status_code == 200, r.text
    wait_for(lambda: ops.get(f"/api/v1/devices/{REX}/config").json()["in_sync"], what="first config applied")
    clip, jpeg = footage(assets_dir, site.workdir)
    yield {"tokens": tokens, "procs": procs, "ops": ops, "clip": clip, "jpeg": jpeg}
    ops.close()


HISTORY_RULES = [
    (REX, "rex-north", BEN_NGHE, "plaza", "plaza.crowd", "crowd", "security_order"),
    (REX, "rex-south", BEN_NGHE, "curb", "curb.illegal_parking", "illegal_parking", "urban_order"),
    (DAKAO, "dk-market", DA_KAO, "sidewalk", "sidewalk.encroachment", "encroachment", "urban_order"),
    (DAKAO, "dk-market", DA_KAO, "gate", "gate.intrusion", "intrusion", "security_order"),
]


@pytest.fixture(scope="module")
def history(site: "Site", fleet: dict[str, Any]) -> dict[str, int]:
    """Two weeks of handled alerts, as the ingest and the officers would have left them.

    Written straight to the database (the live path is tested with the new alert); they give the
    report real figures and the ward test alerts of both wards to keep apart.
    """
    rng = random.Random(8)
    now = utc_now()
    counts = {BEN_NGHE: 0, DA_KAO: 0}
    with Session(site.engine) as s:
        for i in range(24):
            dev, cam, ward, zone, rule, kind, category = HISTORY_RULES[i % len(HISTORY_RULES)]
            started = now - timedelta(days=1 + i * 13 / 24, minutes=rng.randint(0, 600))
            handled = started + timedelta(seconds=rng.randint(40, 900))
            state = rng.choice(["resolved", "resolved", "false_alarm", "acknowledged"])
            s.add(
                AlertRow(
                    event_id=f"hist-{i:03d}", device_id=dev, camera_id=cam, ward=ward, zone=zone, rule=rule,
                    type=kind, category=category, labels=["person"], object_count=rng.randint(1, 9),
                    score=round(rng.uniform(0.5, 0.95), 2), started_at=started,
                    ended_at=started + timedelta(seconds=rng.randint(20, 400)), state=state,
                    state_by="officer-dk" if ward == DA_KAO else "lan", state_at=handled,
                    acknowledged_at=handled if state == "acknowledged" else None,
                    resolved_at=handled if state != "acknowledged" else None, received_at=started,
                    updated_at=handled,
                )
            )  # fmt: skip
            counts[ward] += 1
        s.commit()
    return counts


def footage(assets: Path, work: Path) -> tuple[Path, bytes]:
    """Four seconds of real street footage as a device would record them, and a frame as its snapshot."""
    src = assets / "video" / "car-detection.mp4"
    clip, snap = work / "clip.mp4", work / "snap.jpg"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-ss", "3", "-t", "4", "-i", str(src), "-an", "-c:v", "libx264",
         "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(clip)],
        check=True, timeout=60,
    )  # fmt: skip
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-ss", "4", "-i", str(src), "-frames:v", "1", "-q:v", "4", str(snap)],
        check=True, timeout=60,
    )  # fmt: skip
    return clip, snap.read_bytes()

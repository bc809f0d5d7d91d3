"""`matthan demo` headless for a bounded time: alerts reach the ward station and the cloud, with clips."""

import json
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import cv2
import psutil
import pytest

from tests.support.procs import kill_all, read_line_starting, wait_gone

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_run(
    tmp_path_factory: pytest.TempPathFactory, assets_dir: Path
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    workdir = tmp_path_factory.mktemp("demo")
    out = subprocess.run(
        [sys.executable, "-m", "matthan", "demo", "--duration", "80", "--workdir", str(workdir),
         "--cloud-port", "0", "--broker-port", "0"],
        capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    return workdir, out


def test_demo_starts_and_stops_cleanly(demo_run: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    workdir, out = demo_run
    assert out.returncode == 0, out.stderr[-3000:]
    assert "matthan demo is running" in out.stdout
    login = json.loads((workdir / "login.json").read_text())
    assert login["user"] == "admin" and login["password"] in out.stdout
    for name in ("ward station ben-nghe", "device q1-demo-01", "device q1-demo-02", "cloud", "broker"):
        assert f"stopped {name} exit=0" in out.stderr, name
    # The agents' control loops beat (what the container HEALTHCHECK reads).
    assert (workdir / "devices" / "q1-demo-01" / "data" / "heartbeat").exists()
    # Reverse order: the ward station stops first, the broker last.
    order = [ln for ln in out.stderr.splitlines() if "matthan.supervisor: stopped" in ln]
    assert "ward station" in order[0] and "broker" in order[-1]


def test_alerts_reach_the_ward_station_and_the_cloud_with_clips(
    demo_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    workdir, _ = demo_run
    login = json.loads((workdir / "login.json").read_text())
    page = f"{login['url']}/console/alerts/"
    # Alert lines end with the alert's page (the station runs with --console-url).
    ward_lines = [ln for ln in (workdir / "ward" / "alerts.log").read_text().splitlines() if page in ln]
    ward_events = {ln.rsplit(page, 1)[1].split()[0] for ln in ward_lines}
    assert ward_events, "the ward station received no alert"
    # The real agent's alert carries its camera's site: Vietnamese name, address and position intact
    # at the station (local time with its zone) and in the cloud.
    crowd = [ln for ln in ward_lines if "Tụ tập đông người trên phố đi bộ" in ln]
    assert crowd, ward_lines[:5]
    assert "Phố đi bộ Nguyễn Huệ (đầu Lê Lợi), Nguyễn Huệ, phường Bến Nghé, Quận 1" in crowd[0]
    assert "(10.77450, 106.70380)" in crowd[0] and "+07 (Asia/Ho_Chi_Minh)" in crowd[0]
    assert "(vỉa hè phố đi bộ)" in crowd[0]
    snapshots = list((workdir / "ward" / "snapshots").glob("*.jpg"))
    assert snapshots and cv2.imread(str(snapshots[0])) is not None

    db = sqlite3.connect(workdir / "cloud.db")
    cloud_events = {row[0] for row in db.execute("SELECT event_id FROM alert")}
    # Every alert the station saw is in the cloud's database (the station may see fewer: it
    # subscribes last).
    assert ward_events <= cloud_events
    sites = {json.loads(row[0])["name"]: json.loads(row[0]) for row in db.execute(
        "SELECT site FROM alert WHERE site IS NOT NULL")}  # fmt: skip
    walk = sites["Phố đi bộ Nguyễn Huệ (đầu Lê Lợi)"]
    assert walk["address"] == "Nguyễn Huệ, phường Bến Nghé, Quận 1, TP. Hồ Chí Minh"
    assert (walk["lat"], walk["lon"]) == (10.7745, 106.7038)
    # The station confirmed what it showed; the cloud moved those alerts to delivered, by the station.
    delivered = {
        row[0]: row[1]
        for row in db.execute("SELECT event_id, state_by FROM alert WHERE delivered_at IS NOT NULL")
    }
    assert delivered and set(delivered) <= ward_events
    assert all(by == "ben-nghe:station:ben-nghe" for by in delivered.values()), delivered
    clips = db.execute("SELECT event_id, size FROM media WHERE kind = 'clip' AND complete").fetchall()
    assert clips, "no clip reached the cloud"
    clip_files = [p for p in (workdir / "clips").rglob("*.mp4")]
    assert clip_files
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(clip_files[0])],
        capture_output=True,
        text=True,
    )
    assert probe.returncode == 0 and float(probe.stdout) > 3.0


@pytest.mark.parametrize("sig", [signal.SIGTERM])
def test_a_signal_stops_the_whole_site(tmp_path: Path, assets_dir: Path, sig: signal.Signals) -> None:
    # As a service manager or `kill` stops it: every part ends, nothing keeps the ports.
    demo = subprocess.Popen(
        [sys.executable, "-m", "matthan", "demo", "--devices", "1", "--workdir", str(tmp_path / "demo"),
         "--cloud-port", "0", "--broker-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    parts: list[int] = []
    try:
        read_line_starting(demo, "matthan demo is running", timeout=300)
        parts = [p.pid for p in psutil.Process(demo.pid).children(recursive=True)]
        assert len(parts) >= 4, parts  # broker, cloud, agent (with its ffmpeg), ward station
        demo.send_signal(sig)
        _, err = demo.communicate(timeout=120)
        assert demo.returncode == 0, err[-3000:]
        for name in ("ward station ben-nghe", "device q1-demo-01", "cloud", "broker"):
            assert f"stopped {name} exit=0" in err, name
        assert wait_gone(parts, timeout=30) == [], "parts of the site outlived the demo"
    finally:
        demo.kill()
        demo.communicate(timeout=30)
        kill_all(parts)

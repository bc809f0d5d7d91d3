"""The recorder against real ffmpeg on real footage: copy, wall-clock names, pruning, restarts."""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import psutil
import pytest

from device.ffmpeg import FFMPEG, ffmpeg_hwaccel
from device.recorder import Recorder
from matthan_wire.config import CameraConfig
from tests.support.net import free_port, wait_until
from tests.support.procs import kill_all, read_line_starting, wait_gone
from tests.support.video import frame_hashes

# 10 fps with a keyframe every second: segments of about one second, as a camera with GOP 1 s gives.
ONE_BY_ONE = "video/one-by-one-person-detection.mp4"


def camera(source: Path | str, **record: float) -> CameraConfig:
    rec = {"segment_s": 1.0, "pre_capture_s": 1.0, "post_capture_s": 1.0, **record}
    return CameraConfig(id="cam-1", source=str(source), loop=True, record=rec)  # type: ignore[arg-type]


@pytest.fixture
def recorders() -> Iterator[list[Recorder]]:
    started: list[Recorder] = []
    yield started
    for r in started:
        r.stop()


def test_stream_copy_segments_named_by_wall_clock(
    assets_dir: Path, tmp_path: Path, recorders: list[Recorder]
) -> None:
    rec = Recorder(camera(assets_dir / ONE_BY_ONE), tmp_path / "cache")
    recorders.append(rec)
    t0 = datetime.now(UTC)
    rec.start()
    wait_until(lambda: sum(s.complete for s in rec.segments()) >= 3, timeout=15, what="three segments")
    t1 = datetime.now(UTC)
    rec.stop()

    state = rec.state()
    assert state.mode == "copy" and state.restarts == 0
    segs = rec.segments()
    assert len(segs) >= 3
    for s in segs:
        # The name's second and the observed appearance bracket the true start.
        assert t0 - timedelta(seconds=1) <= s.start_lo <= s.start_hi <= t1 + timedelta(seconds=1)
        # Its width is the name's whole second plus how late the watcher saw the file appear: under
        # a second on an idle machine, 1.5 s seen with both cores busy. What clip cutting relies on
        # is the bracket above; the width only has to stay within a few segments.
        assert (s.start_hi - s.start_lo).total_seconds() <= 3.0
    starts = [s.start for s in segs]
    gaps = [(b - a).total_seconds() for a, b in zip(starts, starts[1:], strict=False)]
    # Paced (-re) like the capture: one-second GOPs arrive about a second apart, not in a burst.
    assert all(g >= 0.2 for g in gaps[:-1]) and 0.7 <= sum(gaps[:-1]) / len(gaps[:-1]) <= 1.4, gaps

    # Stream copy: every decoded picture in the segments is bit-identical to the source's.
    source = frame_hashes(assets_dir / ONE_BY_ONE, limit=80)
    # (The last segment was cut short by stop(); its final frame lacks its reordering partner.)
    recorded = [h for s in segs[:-1] for h in frame_hashes(s.path)]
    assert len(recorded) >= 20
    assert recorded == source[: len(recorded)]


def test_prunes_to_the_window_but_keeps_what_an_event_holds(
    assets_dir: Path, tmp_path: Path, recorders: list[Recorder]
) -> None:
    rec = Recorder(camera(assets_dir / ONE_BY_ONE), tmp_path / "cache", keep_s=1.5)
    recorders.append(rec)
    rec.start()
    wait_until(lambda: rec.segments(), timeout=10, what="first segment")
    first = rec.segments()[0]
    rec.hold("ev-1", first.start_lo)
    wait_until(lambda: len(rec.segments()) >= 5, timeout=15, what="five segments")
    assert rec.segments()[0].path == first.path  # nothing pruned while held
    assert rec.state().segments_pruned == 0

    rec.release("ev-1")
    wait_until(lambda: rec.state().segments_pruned >= 2, timeout=10, what="pruning after release")
    now = datetime.now(UTC)
    for s in rec.segments():
        assert s.end >= now - timedelta(seconds=1.5 + 1.0)
    # Only the recorder's own files are pruned; a stranger in the cache stays.
    stranger = tmp_path / "cache" / "notes.txt"
    stranger.write_text("keep me")
    wait_until(lambda: rec.state().segments_pruned >= 4, timeout=10, what="more pruning")
    assert stranger.read_text() == "keep me"


def test_restarts_when_ffmpeg_dies(assets_dir: Path, tmp_path: Path, recorders: list[Recorder]) -> None:
    rec = Recorder(camera(assets_dir / ONE_BY_ONE), tmp_path / "cache")
    recorders.append(rec)
    rec.start()
    first = wait_until(lambda: rec.pid, timeout=10, what="ffmpeg running")
    wait_until(lambda: rec.segments(), timeout=10, what="a segment")
    os.kill(first, signal.SIGKILL)
    second = wait_until(lambda: rec.pid not in (None, first) and rec.pid, timeout=15, what="ffmpeg restarted")
    assert second != first
    sessions = wait_until(
        lambda: len({s.session for s in rec.segments()}) >= 2 and {s.session for s in rec.segments()},
        timeout=10,
        what="segments from the new ffmpeg",
    )
    assert len(sessions) == 2
    st = rec.state()
    assert st.restarts == 1 and st.recording
    assert "died" in (st.last_error or "")


def _hanging_stream_server(payload: bytes) -> tuple[int, threading.Event]:
    """A TCP source that sends some seconds of MPEG-TS at once and then goes silent without closing."""
    done = threading.Event()
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.2)

    def serve() -> None:
        conns = []
        while not done.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            conns.append(conn)
            with contextlib.suppress(OSError):
                conn.sendall(payload)
        for c in conns:
            c.close()
        srv.close()

    threading.Thread(target=serve, daemon=True).start()
    return srv.getsockname()[1], done


def test_restarts_when_the_stream_stalls(assets_dir: Path, tmp_path: Path, recorders: list[Recorder]) -> None:
    ts = tmp_path / "eight-seconds.ts"
    subprocess.run(
        [
            FFMPEG,
            "-v",
            "error",
            "-i",
            str(assets_dir / ONE_BY_ONE),
            "-t",
            "8",
            "-map",
            "0:v",
            "-c",
            "copy",
            str(ts),
        ],
        check=True,
    )
    port, done = _hanging_stream_server(ts.read_bytes())
    try:
        rec = Recorder(
            camera(f"tcp://127.0.0.1:{port}"), tmp_path / "cache", stall_factor=1.0, min_stall_s=2.0
        )
        recorders.append(rec)
        rec.start()
        wait_until(lambda: rec.state().stalls >= 1, timeout=20, what="a stall noticed")
        st = rec.state()
        assert st.restarts >= 1 and "stall" in (st.last_error or "")
        assert st.segments_written >= 2  # it recorded what came before the silence
    finally:
        done.set()


def test_encodes_once_when_the_codec_cannot_be_copied(
    assets_dir: Path, tmp_path: Path, recorders: list[Recorder]
) -> None:
    rec = Recorder(camera(assets_dir / "video/worker-zone-detection.gif"), tmp_path / "cache")
    recorders.append(rec)
    rec.start()
    wait_until(lambda: sum(s.complete for s in rec.segments()) >= 2, timeout=15, what="two segments")
    assert rec.state().mode == "encode"
    seg = next(s for s in rec.segments() if s.complete)
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0", str(seg.path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert set(probe.stdout.split()) == {"h264"}
    assert len(frame_hashes(seg.path)) >= 5


def test_hardware_decoding_that_fails_falls_back_to_software(
    assets_dir: Path, tmp_path: Path, recorders: list[Recorder], caplog: pytest.LogCaptureFixture
) -> None:
    """No GPU here: auto finds no hardware decoder; one forced on fails and the recorder goes on in
    software, saying so once."""
    assert ffmpeg_hwaccel("off") is None
    if not any(Path(node).exists() for node in ("/dev/dri/renderD128", "/dev/dri/card0", "/dev/nvidia0")):
        assert ffmpeg_hwaccel("auto") is None
    rec = Recorder(camera(assets_dir / "video/worker-zone-detection.gif"), tmp_path / "cache")
    rec.hwaccel = "refused"  # a hardware decoder ffmpeg cannot use, on any machine
    recorders.append(rec)
    caplog.set_level("INFO", logger="device.recorder")
    rec.start()
    wait_until(lambda: sum(s.complete for s in rec.segments()) >= 2, timeout=60, what="segments in software")
    assert rec.hwaccel is None and rec.state().mode == "encode"
    assert sum("hardware decoding failed" in r.getMessage() for r in caplog.records) == 1
    started = [r.getMessage() for r in caplog.records if r.getMessage().startswith("recording started")]
    assert "decoder=refused" in started[0] and "decoder=software" in started[-1]


def test_a_file_without_loop_finishes(assets_dir: Path, tmp_path: Path, recorders: list[Recorder]) -> None:
    cam = camera(assets_dir / "video/traffic_frames.mp4").model_copy(update={"loop": False})
    rec = Recorder(cam, tmp_path / "cache")
    recorders.append(rec)
    rec.start()
    wait_until(lambda: rec.state().finished, timeout=10, what="end of file")
    st = rec.state()
    assert st.restarts == 0 and not st.recording
    assert all(s.complete for s in rec.segments()) and rec.segments()


def test_a_missing_source_is_retried_and_reported(tmp_path: Path, recorders: list[Recorder]) -> None:
    rec = Recorder(camera(tmp_path / "nope.mp4"), tmp_path / "cache")
    recorders.append(rec)
    rec.start()
    wait_until(lambda: rec.state().last_error, timeout=10, what="an error in the state")
    st = rec.state()
    assert not st.recording and "nope.mp4" in (st.last_error or "")
    for held_by_capture in ("picamera2:0", "/dev/video0", "0"):
        assert Recorder(camera(held_by_capture), tmp_path / "cache").frames


def test_a_cache_emptied_under_it_is_recreated(
    assets_dir: Path, tmp_path: Path, recorders: list[Recorder]
) -> None:
    cache = tmp_path / "cache"
    rec = Recorder(camera(assets_dir / ONE_BY_ONE), cache)
    recorders.append(rec)
    rec.start()
    wait_until(lambda: rec.segments(), timeout=10, what="a segment")
    shutil.rmtree(cache)  # a tmpfs wiped by an operator or a container restart
    wait_until(lambda: rec.state().restarts >= 1, timeout=15, what="ffmpeg restarted")
    wait_until(lambda: any(s.complete for s in rec.segments()), timeout=15, what="segments again")
    assert cache.is_dir() and rec.state().recording


def test_a_camera_password_never_reaches_the_state_or_the_log(
    tmp_path: Path, recorders: list[Recorder], caplog: pytest.LogCaptureFixture
) -> None:
    source = f"rtsp://admin:s3cret-pw@127.0.0.1:{free_port()}/stream1"
    rec = Recorder(camera(source), tmp_path / "cache")
    recorders.append(rec)
    rec.start()
    error = wait_until(lambda: rec.state().last_error, timeout=20, what="the camera reported down")
    assert "s3cret-pw" not in error and "admin:***@127.0.0.1" in error
    assert not any("s3cret-pw" in r.getMessage() for r in caplog.records)


def test_a_camera_only_the_capture_can_open_is_recorded_from_its_frames(
    assets_dir: Path, tmp_path: Path, recorders: list[Recorder]
) -> None:
    """The Pi camera cannot exist here; its frames are stood in for by real footage, fed at 10 fps."""
    rec = Recorder(camera("picamera2:0"), tmp_path / "cache")
    recorders.append(rec)
    rec.start()
    wait_until(lambda: "waiting for frames" in (rec.state().last_error or ""), timeout=5, what="waiting")
    cap = cv2.VideoCapture(str(assets_dir / ONE_BY_ONE))
    try:
        for _ in range(35):
            ok, image = cap.read()
            assert ok
            rec.feed(image)
            time.sleep(0.1)
    finally:
        cap.release()
    wait_until(lambda: sum(s.complete for s in rec.segments()) >= 2, timeout=10, what="two segments")
    st = rec.state()
    assert st.mode == "frames" and st.recording and st.frames_dropped == 0
    for seg in [s for s in rec.segments() if s.complete][:2]:
        frames = frame_hashes(seg.path)
        assert 6 <= len(frames) <= 14, len(frames)  # about one second of 10 fps per segment
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
         "stream=codec_name,width,height", "-of", "csv=p=0", str(rec.segments()[0].path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert set(out.stdout.split()) == {"h264,768,432"}


def test_ffmpeg_ends_with_a_killed_agent(assets_dir: Path, tmp_path: Path) -> None:
    # SIGKILL runs none of the agent's code: only the death signal armed at spawn ends ffmpeg.
    agent = subprocess.Popen(
        [sys.executable, "-m", "tests.device.recording_process", str(assets_dir / ONE_BY_ONE),
         str(tmp_path / "cache")],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    ffmpeg = 0
    try:
        ffmpeg = int(read_line_starting(agent, "ready ", timeout=120).split()[1])
        assert "ffmpeg" in psutil.Process(ffmpeg).name()
        agent.kill()
        agent.wait(30)
        assert wait_gone([ffmpeg], timeout=30) == [], "ffmpeg outlived the agent"
    finally:
        agent.kill()
        agent.communicate(timeout=30)
        if ffmpeg:
            kill_all([ffmpeg])

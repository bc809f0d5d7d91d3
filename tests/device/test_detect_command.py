"""`matthan device detect` as a user runs it: a real process, real footage, real model."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from matthan_wire import Alert, decode
from tests.support.camera_server import TsCamera
from tests.support.net import patient

CONFIG = """\
device: {{id: q1-rex-01, ward: ben-nghe}}
broker: {{url: "mqtt://127.0.0.1:1883"}}
{model}
cameras:
  - id: rex-north
    source: placeholder.mp4
    detect: {{fps: 5}}
    zones:
      - name: walkway
        polygon: [[0.0, 0.2], [1.0, 0.2], [1.0, 1.0], [0.0, 1.0]]
        rules:
          - {{type: crowd, labels: [person], min_count: 6, min_duration_s: 10}}
"""


@pytest.fixture
def config(tmp_path: Path, assets_dir: Path) -> Path:
    path = tmp_path / "device.yaml"
    path.write_text(CONFIG.format(model=""))
    return path


def matthan(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "matthan", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ,
    )


def test_json_lines_on_stdout_and_nothing_else(config: Path, vtest_45s: Path) -> None:
    r = matthan("device", "detect", "--config", str(config), "--camera", "rex-north", "--source",
                str(vtest_45s), "--json", "--start-time", "2026-11-24T08:00:00+07:00")  # fmt: skip
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    alerts = [decode(Alert, line) for line in lines]
    assert [a.phase for a in alerts] == ["start", "end"]
    assert alerts[0].event_id == alerts[1].event_id and alerts[0].rule == "walkway.crowd"
    assert json.loads(lines[0])["phase"] == "start" and json.loads(lines[0])["v"] == 1
    # The file's first frame is 01:00 UTC; the crowd starts at least 10 s into it.
    offset = alerts[0].started_at - alerts[0].started_at.replace(hour=1, minute=0, second=0, microsecond=0)
    assert alerts[0].started_at.hour == 1 and 10 <= offset.total_seconds() < 45
    assert "done: source=" in r.stderr and "events=1 starts/1 ends" in r.stderr
    assert "Traceback" not in r.stderr


def test_annotate_writes_the_video_a_technician_tunes_with(config: Path, video, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "tuned.mp4"
    r = matthan("device", "detect", "--config", str(config), "--camera", "rex-north",
                "--source", str(video("traffic_frames.mp4")), "--annotate", str(out))  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""  # no events on this clip
    cap = cv2.VideoCapture(str(out))
    frames = 0
    while cap.grab():
        frames += 1
    assert frames == 4  # 20 frames at 30 fps, drawn at the detect rate of 5 fps
    assert (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (960, 540)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--source", "{tmp}/missing.mp4"], "video file {tmp}/missing.mp4: no such file"),
        (["--source", "{tmp}"], "video file {tmp}: is a folder, not a video file"),
        (
            ["--source", "rtsp://admin:secret@127.0.0.1:1/cam"],
            "cannot open video source rtsp://admin:***@127.0.0.1:1/cam",
        ),
        (["--source", "{video}", "--camera", "nope"], "no camera 'nope' in"),
        (
            ["--source", "{video}", "--start-time", "yesterday"],
            "--start-time 'yesterday' is not an ISO-8601 time",
        ),
        (["--source", "{video}", "--start-time", "2026-11-24T08:00:00"], "needs a UTC offset"),
        (
            ["--source", "{video}", "--annotate", "{tmp}/no/such/dir/a.mp4"],
            "folder {tmp}/no/such/dir does not exist",
        ),
    ],
)
def test_bad_input_is_one_clear_line(
    config: Path, video, tmp_path: Path, args: list[str], message: str
) -> None:  # type: ignore[no-untyped-def]
    fill = {"tmp": str(tmp_path), "video": str(video("traffic_frames.mp4"))}
    argv = ["device", "detect", "--config", str(config), "--camera", "rex-north"]
    argv += [a.format(**fill) for a in args]
    r = matthan(*argv)
    assert r.returncode == 1
    assert r.stdout == ""
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("matthan: ") and message.format(**fill) in last
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (
            "model: {{path: {tmp}/none.tflite, labels: {assets}/models/coco_labels.txt}}",
            "none.tflite: no such file",
        ),
        (
            "model: {{path: {assets}/models/automl_traffic_model.tflite,"
            " labels: {assets}/models/coco_labels.txt}}",
            "has 90 classes but model automl_traffic_model.tflite has 3",
        ),
    ],
)
def test_a_model_that_will_not_load_is_one_clear_line(  # type: ignore[no-untyped-def]
    tmp_path: Path, assets_dir: Path, video, model: str, message: str
) -> None:
    path = tmp_path / "device.yaml"
    path.write_text(CONFIG.format(model=model.format(tmp=tmp_path, assets=assets_dir)))
    r = matthan("device", "detect", "--config", str(path), "--camera", "rex-north",
                "--source", str(video("traffic_frames.mp4")))  # fmt: skip
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.strip().splitlines()[-1].startswith("matthan: ") and message in r.stderr
    assert "Traceback" not in r.stderr


def test_ctrl_c_stops_cleanly_with_a_summary(config: Path, video) -> None:  # type: ignore[no-untyped-def]
    # A live stream that never ends: a file runs through in a few seconds unpaced, and on a loaded
    # machine could end before the Ctrl-C arrives.
    camera = TsCamera(video("one-by-one-person-detection.mp4")).start()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "matthan", "device", "detect", "--config", str(config),
             "--camera", "rex-north", "--source", camera.url, "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ,
        )  # fmt: skip
        assert proc.stderr is not None
        for line in proc.stderr:  # the pipeline runs: its readiness line (stderr ends if it exits)
            if "camera started" in line:
                break
        else:
            raise AssertionError(f"device detect exited ({proc.wait()}) before 'camera started'")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=patient(30))
    finally:
        camera.stop()
    assert proc.returncode == 130, err
    assert "interrupted: source=" in err and "Traceback" not in err
    for line in out.splitlines():
        decode(Alert, line)

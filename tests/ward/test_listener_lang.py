"""The station's lines in its officers' language: `--lang vi`, or the locale (LANG), on a real broker."""

import os
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from matthan_wire import Kind
from matthan_wire.topics import device_topic
from tests.support.broker import Mosquitto
from tests.support.receipts import Probe, wait_for
from tests.ward.test_listener import BASE, DEVICE, WARD, Station, _alert

# A place name as the district writes it: every diacritic must reach the officer unchanged.
PLACE = "Chợ Bến Thành · cửa Nam"


def _one_line(tmp_path: Path, broker: Mosquitto, *flags: str, env: dict[str, str] | None = None) -> str:
    tmp_path.mkdir(parents=True, exist_ok=True)
    saved = dict(os.environ)
    os.environ.update(env or {})
    try:
        station = Station(tmp_path, broker, *flags)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    device = Probe(broker.port, [], client_id=DEVICE)
    try:
        alert = _alert(
            "ev-vi-1", rule=PLACE, type="crowd", category="security_order", object_count=9, score=0.87
        )
        device.publish(device_topic(Kind.ALERT, WARD, DEVICE), alert)
        wait_for(lambda: len(station.lines()) >= 1, 10, "the alert's line")
        time.sleep(0.2)
        lines = station.lines()
        assert len(lines) == 1, lines
        return lines[0]
    finally:
        device.stop()
        assert station.stop() == 0


def test_lang_vi_prints_a_vietnamese_line_with_the_place_name_intact(
    tmp_path: Path, broker: Mosquitto
) -> None:
    env = {"LANG": "C.UTF-8", "LC_ALL": "", "TZ": "Asia/Ho_Chi_Minh"}  # a station's machine in the district
    line = _one_line(tmp_path, broker, "--lang", "vi", env=env)
    assert "TỤ TẬP ĐÔNG NGƯỜI" in line, line
    assert f"quy tắc {PLACE}" in line, line  # the name as sent, diacritics and all
    assert "độ tin cậy 0,87" in line and "9 × người" in line and "event=ev-vi-1" in line
    local = BASE.started_at.astimezone(ZoneInfo("Asia/Ho_Chi_Minh"))
    assert line.startswith(local.strftime("%H:%M:%S %d/%m/%Y") + " GMT+7  "), line  # with the zone shown


def test_the_locale_chooses_the_language_and_the_flag_wins(tmp_path: Path, broker: Mosquitto) -> None:
    line = _one_line(tmp_path / "a", broker, env={"LANG": "vi_VN.UTF-8", "LC_ALL": ""})
    assert "TỤ TẬP ĐÔNG NGƯỜI" in line, line
    line = _one_line(tmp_path / "b", broker, "--lang", "en", env={"LANG": "vi_VN.UTF-8", "LC_ALL": ""})
    assert "CROWD" in line and f"rule={PLACE}" in line, line


@pytest.mark.parametrize("lang, expected", [("vi", "không có tệp này"), ("en", "no such file")])
def test_user_errors_in_the_chosen_language(lang: str, expected: str, tmp_path: Path) -> None:
    import subprocess
    import sys

    argv = [sys.executable, "-m", "matthan", "--lang", lang, "ward", "listen", "--ward", WARD]
    argv += ["--ca", str(tmp_path / "missing.pem")]
    r = subprocess.run(
        argv, capture_output=True, text=True, timeout=60, env={**os.environ, "LANG": "C.UTF-8"}
    )
    assert r.returncode != 0 and expected in r.stderr, r.stderr

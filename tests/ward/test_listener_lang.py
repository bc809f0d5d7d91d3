"""The station's lines in its officers' language: `--lang vi`, or the locale (LANG), on a real broker."""

import os
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from matthan_wire import Kind, Site
from matthan_wire.topics import device_topic
from tests.support.broker import Mosquitto
from tests.support.receipts import Probe, wait_for
from tests.ward.test_listener import BASE, DEVICE, WARD, Station, _alert

# A place name as the district writes it: every diacritic must reach the officer unchanged.
PLACE = "Chợ Bến Thành · cửa Nam"
SITE = Site(name=PLACE, address="Lê Lợi, phường Bến Thành, Quận 1")


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
            "ev-vi-1", site=SITE, type="crowd", category="security_order", object_count=9, score=0.87
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
    line = _one_line(tmp_path, broker, "--lang", "vi", env={"LANG": "C.UTF-8", "LC_ALL": ""})
    local = BASE.started_at.astimezone(ZoneInfo("Asia/Ho_Chi_Minh"))
    # The time as Vietnamese writes it, with its zone; the type's Vietnamese name only; the site intact.
    assert line.startswith(local.strftime("%H:%M:%S %d/%m/%Y") + " GMT+7 (Asia/Ho_Chi_Minh)  "), line
    assert "Tụ tập đông người  " in line and "(crowd)" not in line, line
    assert f"{PLACE}, Lê Lợi, phường Bến Thành, Quận 1" in line and "×9" in line and "event=ev-vi-1" in line


def test_the_locale_chooses_the_language_and_the_flag_wins(tmp_path: Path, broker: Mosquitto) -> None:
    line = _one_line(tmp_path / "a", broker, env={"LANG": "vi_VN.UTF-8", "LC_ALL": ""})
    assert "Tụ tập đông người  " in line and "(crowd)" not in line, line
    line = _one_line(tmp_path / "b", broker, "--lang", "en", env={"LANG": "vi_VN.UTF-8", "LC_ALL": ""})
    assert "Crowd gathering" in line and "Tụ tập" not in line and PLACE in line, line
    assert line[:10] == BASE.started_at.astimezone(ZoneInfo("Asia/Ho_Chi_Minh")).strftime("%Y-%m-%d")
    # No language in the locale (C): both, Vietnamese first, as the station printed before.
    line = _one_line(tmp_path / "c", broker, env={"LANG": "C.UTF-8", "LC_ALL": ""})
    assert "Tụ tập đông người (crowd)" in line, line


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

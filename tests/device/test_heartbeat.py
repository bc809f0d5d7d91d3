import os
import time
from pathlib import Path

import pytest

from device import heartbeat
from device.errors import DeviceError
from matthan.cli import main

CONFIG = (Path(__file__).parent / "configs" / "good.yaml").read_text()


def test_fresh_heartbeat_is_healthy_and_stale_or_missing_is_not(tmp_path: Path) -> None:
    with pytest.raises(DeviceError, match="no agent heartbeat"):
        heartbeat.check(tmp_path)
    heartbeat.beat(tmp_path)
    assert heartbeat.check(tmp_path) < 5
    old = time.time() - 120
    os.utime(tmp_path / heartbeat.FILE, (old, old))
    with pytest.raises(DeviceError, match="hung"):
        heartbeat.check(tmp_path)


def test_healthcheck_command_reads_the_configured_storage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "device.yaml"
    cfg.write_text(CONFIG.replace("path: data", f"path: {tmp_path / 'data'}"))
    (tmp_path / "data").mkdir()
    assert main(["device", "healthcheck", "--config", str(cfg)]) == 1
    assert "no agent heartbeat" in capsys.readouterr().err
    heartbeat.beat(tmp_path / "data")
    assert main(["device", "healthcheck", "--config", str(cfg)]) == 0
    assert "alive" in capsys.readouterr().out

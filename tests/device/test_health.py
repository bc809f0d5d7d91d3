"""Health: QoS 0 on the health topic, latest wins, never through the outbox."""

from pathlib import Path

from device.agent import Agent
from device.health import cpu_temp_c
from matthan_wire import Health, Kind, decode
from matthan_wire.topics import device_topic
from tests.device.test_agent import DEVICE, WARD
from tests.device.test_config_sync import _config
from tests.support.broker import Mosquitto
from tests.support.receipts import Probe, wait_for

HEALTH = device_topic(Kind.HEALTH, WARD, DEVICE)


def test_cpu_temperature_from_sysfs_layout(tmp_path: Path) -> None:
    assert cpu_temp_c(tmp_path) is None
    for i, (kind, milli) in enumerate([("gpu-thermal", "41000"), ("cpu-thermal", "52312")]):
        zone = tmp_path / f"thermal_zone{i}"
        zone.mkdir()
        (zone / "type").write_text(kind + "\n")
        (zone / "temp").write_text(milli + "\n")
    assert cpu_temp_c(tmp_path) == 52.3


def test_health_reports_cameras_and_counters(tmp_path: Path, assets_dir: Path, broker: Mosquitto) -> None:
    agent = Agent(_config(tmp_path, assets_dir, broker.port))
    probe = Probe(broker.port, [HEALTH])
    agent.start()
    try:
        wait_for(lambda: len(probe.on(HEALTH)) >= 2, 15, "two health reports (interval 2 s)")
        wait_for(lambda: agent.outbox.stats().alerts_total >= 1, 30, "an alert")
        wait_for(
            lambda: decode(Health, probe.on(HEALTH)[-1]).alerts_total >= 1, 10, "the alert counted in health"
        )
        h = decode(Health, probe.on(HEALTH)[-1])
        assert (h.device_id, h.ward) == (DEVICE, WARD)
        assert h.model == "ssd_mobilenet_v1_coco_quant.tflite"
        [cam] = h.cameras
        assert cam.id == "rex-north" and cam.stream_up and cam.fps_in > 0
        assert h.uptime_s > 0 and h.mem_mb > 10 and h.disk_free_mb > 0
        assert h.agent_version
        # No cloud here: the alert stays unreceipted and health shows its age.
        wait_for(
            lambda: decode(Health, probe.on(HEALTH)[-1]).outbox_oldest_age_s >= 1,
            10,
            "the unreceipted alert's age in health",
        )
        # Health never enters the outbox: with no broker the outbox holds alerts only.
        broker.stop()
        wait_for(lambda: not agent.link.connected, 10, "link down")
        sent, skipped = agent.health.sent, agent.health.skipped
        wait_for(lambda: agent.health.skipped >= skipped + 2, 10, "health ticks while offline")
        assert agent.health.sent == sent, "nothing handed to paho while offline"
    finally:
        agent.stop()
        probe.stop()

"""Remote config on the running agent: desired → validate → apply atomically → persist → reported."""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from device.agent import Agent
from device.config_file import parse_config
from matthan_wire import DesiredConfig, Kind, ReportedConfig, decode, encode, utc_now
from matthan_wire.config import DeviceConfig, SiteConfig
from matthan_wire.topics import device_topic
from tests.device.test_agent import DEVICE, WARD, agent_config
from tests.support.broker import Mosquitto
from tests.support.receipts import Probe, wait_for

DESIRED = device_topic(Kind.CONFIG_DESIRED, WARD, DEVICE)
REPORTED = device_topic(Kind.CONFIG_REPORTED, WARD, DEVICE)


def _config(tmp_path: Path, assets_dir: Path, port: int, **camera: object) -> DeviceConfig:
    """The agent test's config (tests/device/test_agent.py), validated like a config file."""
    import yaml

    return parse_config(yaml.safe_dump(agent_config(tmp_path, assets_dir, port, camera=camera)))


@pytest.fixture
def running(tmp_path: Path, assets_dir: Path, broker: Mosquitto) -> Iterator[tuple[Agent, Probe]]:
    agent = Agent(_config(tmp_path, assets_dir, broker.port))
    probe = Probe(broker.port, [REPORTED])
    agent.start()
    assert agent.link.wait_connected(10)
    yield agent, probe
    agent.stop()
    probe.stop()


def _desire(probe: Probe, version: int, site: SiteConfig | dict[str, object]) -> ReportedConfig:
    before = len(probe.on(REPORTED))
    if isinstance(site, SiteConfig):
        payload = encode(DesiredConfig(version=version, issued_at=utc_now(), config=site))
    else:
        raw = {"v": 1, "version": version, "issued_at": "2026-11-24T08:00:00.000Z", "config": site}
        payload = json.dumps(raw).encode()
    probe.publish(DESIRED, payload, retain=True)
    wait_for(lambda: len(probe.on(REPORTED)) > before, 15, "config/reported")
    return decode(ReportedConfig, probe.on(REPORTED)[-1])


def _with_zone(site: SiteConfig) -> SiteConfig:
    cam = site.cameras[0]
    data = cam.model_dump(mode="json")
    data["zones"].append(
        {
            "name": "curb",
            "polygon": [[0.0, 0.7], [1.0, 0.7], [1.0, 1.0], [0.0, 1.0]],
            "rules": [{"type": "intrusion", "labels": ["person"]}],
        }
    )
    return SiteConfig.model_validate({"cameras": [data], "health": site.health.model_dump()})


def test_new_zone_applied_without_restarting_capture(running: tuple[Agent, Probe], tmp_path: Path) -> None:
    agent, probe = running
    worker = agent.cameras.workers["rex-north"]
    wait_for(lambda: worker.stats().frames_in > 5, 20, "frames")
    frames_before = worker.stats().frames_in
    desired = _with_zone(agent.config.site())
    report = _desire(probe, 1, desired)
    assert (report.status, report.version, report.error) == ("applied", 1, None)
    assert agent.cameras.workers["rex-north"] is worker, "capture must not restart for a zone change"
    assert [z.name for z in agent.config.camera("rex-north").zones] == ["plaza", "curb"]
    wait_for(lambda: worker.stats().frames_in > frames_before + 5, 10, "capture goes on")
    assert worker.stats().reconnects_1h == 0
    saved = json.loads((tmp_path / "data" / "applied-config.json").read_text())
    assert saved["version"] == 1 and len(saved["config"]["cameras"][0]["zones"]) == 2
    # Redelivery of the same retained version (a reconnect) changes nothing and reports it again.
    again = _desire(probe, 1, desired)
    assert (again.status, again.version) == ("applied", 1)


def test_invalid_desired_is_rejected_with_reason_and_old_keeps_running(
    running: tuple[Agent, Probe],
) -> None:
    agent, probe = running
    worker = agent.cameras.workers["rex-north"]
    assert _desire(probe, 1, _with_zone(agent.config.site())).status == "applied"
    # Fails the wire model: a zone without area.
    bad = agent.config.site().model_dump(mode="json")
    bad["cameras"][0]["zones"][0]["polygon"] = [[0.1, 0.1], [0.2, 0.2], [0.3, 0.3]]
    r = _desire(probe, 2, bad)
    assert (r.status, r.version, r.rejected_version) == ("rejected", 1, 2)
    assert r.error is not None and "no area" in r.error
    # Valid on the wire, impossible on this device: a source file it does not have.
    gone = agent.config.site().model_dump(mode="json")
    gone["cameras"][0]["source"] = "/nonexistent/clip.mp4"
    r = _desire(probe, 3, gone)
    assert (r.status, r.version, r.rejected_version) == ("rejected", 1, 3)
    assert r.error is not None and "not found" in r.error
    # Not even JSON.
    before = len(probe.on(REPORTED))
    probe.publish(DESIRED, b"{not json", retain=True)
    wait_for(lambda: len(probe.on(REPORTED)) > before, 10, "report for garbage")
    assert decode(ReportedConfig, probe.on(REPORTED)[-1]).status == "rejected"
    # The old config still runs, on the same capture.
    assert agent.config_sync.version == 1
    assert agent.cameras.workers["rex-north"] is worker
    assert [z.name for z in agent.config.camera("rex-north").zones] == ["plaza", "curb"]
    assert agent.control.alive


def test_changed_source_restarts_only_that_camera(
    tmp_path: Path, assets_dir: Path, broker: Mosquitto
) -> None:
    cfg = _config(tmp_path, assets_dir, broker.port)
    second = cfg.cameras[0].model_copy(update={"id": "rex-south"})
    agent = Agent(cfg.model_copy(update={"cameras": [cfg.cameras[0], second]}))
    probe = Probe(broker.port, [REPORTED])
    agent.start()
    try:
        assert agent.link.wait_connected(10)
        north, south = agent.cameras.workers["rex-north"], agent.cameras.workers["rex-south"]
        site = agent.config.site().model_dump(mode="json")
        site["cameras"][1]["source"] = str(assets_dir / "video" / "car-detection.mp4")
        r = _desire(probe, 5, site)
        assert (r.status, r.version) == ("applied", 5)
        assert agent.cameras.workers["rex-north"] is north
        assert agent.cameras.workers["rex-south"] is not south
        assert agent.config.camera("rex-south").source.endswith("car-detection.mp4")
        # Removing a camera stops it; the other keeps running.
        site["cameras"] = site["cameras"][:1]
        assert _desire(probe, 6, site).status == "applied"
        assert list(agent.cameras.workers) == ["rex-north"] and agent.cameras.workers["rex-north"] is north
    finally:
        agent.stop()
        probe.stop()


def test_device_starts_from_last_applied_config_without_broker(
    tmp_path: Path, assets_dir: Path, broker: Mosquitto
) -> None:
    agent = Agent(_config(tmp_path, assets_dir, broker.port))
    probe = Probe(broker.port, [REPORTED])
    agent.start()
    try:
        assert agent.link.wait_connected(10)
        assert _desire(probe, 7, _with_zone(agent.config.site())).status == "applied"
    finally:
        agent.stop()
        probe.stop()
    broker.stop()
    # Same config file as before (one zone), no broker to ask.
    again = Agent(_config(tmp_path, assets_dir, broker.port))
    again.start()
    try:
        assert not again.link.connected
        assert again.config_sync.version == 7
        assert [z.name for z in again.config.camera("rex-north").zones] == ["plaza", "curb"]
        north = again.cameras.workers["rex-north"]
        wait_for(lambda: north.stats().frames_in > 3, 20, "capture without a broker")
    finally:
        again.stop()

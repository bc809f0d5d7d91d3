"""Commands on `cmd` against the running agent: each answered on `cmd/result`, none fatal."""

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from device.agent import Agent
from matthan_wire import Command, CommandResult, Kind, decode, encode, utc_now
from matthan_wire.topics import device_topic
from tests.device.test_agent import DEVICE, WARD
from tests.device.test_config_sync import _config
from tests.support.broker import Mosquitto
from tests.support.receipts import Probe, wait_for

CMD = device_topic(Kind.CMD, WARD, DEVICE)
RESULT = device_topic(Kind.CMD_RESULT, WARD, DEVICE)


@pytest.fixture
def running(tmp_path: Path, assets_dir: Path, broker: Mosquitto) -> Iterator[tuple[Agent, Probe]]:
    agent = Agent(_config(tmp_path, assets_dir, broker.port))
    probe = Probe(broker.port, [RESULT, f"matthan/v1/{WARD}/{DEVICE}/snapshot/+"])
    agent.start()
    assert agent.link.wait_connected(10)
    yield agent, probe
    agent.stop()
    probe.stop()


def _send(probe: Probe, payload: bytes) -> CommandResult:
    before = len(probe.on(RESULT))
    probe.publish(CMD, payload)
    wait_for(lambda: len(probe.on(RESULT)) > before, 10, "cmd/result")
    return decode(CommandResult, probe.on(RESULT)[-1])


def _cmd(cid: str, name: str, camera: str | None = "rex-north") -> bytes:
    return encode(Command(id=cid, name=name, camera_id=camera, at=utc_now()))


def test_snapshot_publishes_a_jpeg_of_the_camera(running: tuple[Agent, Probe]) -> None:
    agent, probe = running
    wait_for(lambda: agent.cameras.latest_frame("rex-north") is not None, 20, "a frame")
    r = _send(probe, _cmd("snap-1", "snapshot"))
    assert r.ok and r.command_id == "snap-1", r.error
    topic = device_topic(Kind.SNAPSHOT, WARD, DEVICE, "snap-1")
    assert r.detail["topic"] == topic
    wait_for(lambda: probe.on(topic), 5, "the snapshot")
    image = cv2.imdecode(np.frombuffer(probe.on(topic)[0], np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape == (360, 480, 3)


def test_unknown_and_bad_commands_are_answered_with_an_error(running: tuple[Agent, Probe]) -> None:
    agent, probe = running
    r = _send(probe, _cmd("c-2", "format-disk"))
    assert not r.ok and r.error is not None and "unknown command 'format-disk'" in r.error
    r = _send(probe, _cmd("c-3", "snapshot", camera="no-such-cam"))
    assert not r.ok and "no camera" in (r.error or "")
    r = _send(probe, _cmd("c-4", "restart-camera", camera=None))
    assert not r.ok and "needs camera_id" in (r.error or "")
    # Invalid payload with a usable id: still answered.
    r = _send(probe, b'{"v": 1, "id": "c-5", "name": "snapshot"}')
    assert not r.ok and r.command_id == "c-5"
    # Garbage without an id: nothing to answer, and the agent goes on.
    probe.publish(CMD, b"\xff\x00garbage")
    r = _send(probe, _cmd("c-6", "resync-config"))
    assert r.ok
    assert agent.commands.malformed == 2


def test_restart_camera_replaces_only_its_worker(running: tuple[Agent, Probe]) -> None:
    agent, probe = running
    old = agent.cameras.workers["rex-north"]
    r = _send(probe, _cmd("c-7", "restart-camera"))
    assert r.ok, r.error
    new = agent.cameras.workers["rex-north"]
    assert new is not old
    wait_for(lambda: new.stats().frames_in > 3, 20, "frames from the restarted camera")

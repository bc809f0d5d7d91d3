"""The agent runs with short GIL turns, so an alert does not queue behind the vision threads."""

import sys
from pathlib import Path

from device.agent import Agent
from device.switch_interval import SWITCH_INTERVAL_S
from tests.device.test_config_sync import _config
from tests.support.broker import Mosquitto


def test_the_agent_shortens_the_gil_turns_while_it_runs(
    tmp_path: Path, assets_dir: Path, broker: Mosquitto
) -> None:
    before = sys.getswitchinterval()
    assert before != SWITCH_INTERVAL_S  # the interpreter's default (5 ms): the test can see a change
    agent = Agent(_config(tmp_path, assets_dir, broker.port))
    agent.start()
    try:
        assert sys.getswitchinterval() == SWITCH_INTERVAL_S
    finally:
        agent.stop()
    assert sys.getswitchinterval() == before  # the process (here: the test run) gets its own back

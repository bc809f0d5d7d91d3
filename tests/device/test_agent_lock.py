"""One agent per storage folder: the second is refused with the first one's pid, until it lets go."""

import os
from pathlib import Path

import pytest

from device.agent_lock import FILE, AgentLock
from device.errors import DeviceError


def test_a_second_agent_on_the_folder_is_refused_until_the_first_releases(tmp_path: Path) -> None:
    first, second = AgentLock(tmp_path), AgentLock(tmp_path)
    first.take()
    assert (tmp_path / FILE).read_text() == str(os.getpid())
    with pytest.raises(DeviceError, match=rf"another agent \(pid {os.getpid()}\) is running on {tmp_path}"):
        second.take()
    first.release()
    second.take()
    second.release()


def test_another_folder_is_not_held(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = AgentLock(tmp_path / "a"), AgentLock(tmp_path / "b")
    a.take()
    b.take()
    a.release()
    b.release()

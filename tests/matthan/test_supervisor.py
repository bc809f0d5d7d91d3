"""The supervisor's children end with it: stopped by a signal, or the supervisor killed outright."""

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.procs import kill_all, read_line_starting, wait_gone


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple["subprocess.Popen[str]", dict[str, list[int]]]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.matthan.supervised_children", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    pids: dict[str, list[int]] = {}
    try:
        line = read_line_starting(proc, "ready ", timeout=120)
        pids = json.loads(line.removeprefix("ready "))
        yield proc, pids
    finally:
        proc.kill()
        proc.communicate(timeout=30)
        kill_all(p for group in pids.values() for p in group)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_stops_every_service_and_what_it_started(
    site: tuple["subprocess.Popen[str]", dict[str, list[int]]], sig: signal.Signals
) -> None:
    proc, pids = site
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert f"interrupted by {sig.name}" in out or sig == signal.SIGINT
    assert out.rstrip().endswith("stopped")
    # The services, their armed children, and the escaped ones (swept with the process group).
    everything = [p for group in pids.values() for p in group]
    assert wait_gone(everything, timeout=30) == []


def test_children_die_with_a_killed_supervisor(
    site: tuple["subprocess.Popen[str]", dict[str, list[int]]],
) -> None:
    proc, pids = site
    proc.kill()  # no code of the supervisor runs: only the kernel's death signal can act
    proc.wait(30)
    assert wait_gone(pids["services"] + pids["armed"], timeout=30) == []
    # What escaped the death signal is the service manager's to end (its cgroup); the fixture
    # cleans it up here.

"""A supervisor with real children, for the signal tests (run as a process of its own).

`python -m tests.matthan.supervised_children LOGDIR` starts two services; each service starts
two grandchildren: one armed with the death signal (as the agent's ffmpeg is) and one not (as a
helper that escaped it; only the process group reaches it). Prints `ready {json of pids}` once
every service is up, then runs until a signal.
"""

import json
import subprocess
import sys
import time
from pathlib import Path

from matthan.children import die_with_parent, interrupt_on_signals
from matthan.supervisor import Service, Supervisor


def service() -> None:
    armed = subprocess.Popen(["sleep", "600"], preexec_fn=die_with_parent())
    escaped = subprocess.Popen(["sleep", "600"])
    print(f"up {armed.pid} {escaped.pid}", flush=True)
    while True:
        time.sleep(0.2)  # not signal.pause(): a signal just before it would be missed


def supervisor(logdir: Path) -> int:
    sup = Supervisor()
    with interrupt_on_signals():
        try:
            for i in range(2):
                log = logdir / f"service{i}.log"
                sup.start(
                    Service(
                        f"service{i}",
                        [sys.executable, "-m", "tests.matthan.supervised_children", "service"],
                        log,
                        ready=lambda log=log: log.exists() and log.read_text().startswith("up "),
                        ready_timeout_s=60,
                    )
                )
            grand = [(logdir / f"service{i}.log").read_text().split() for i in range(2)]
            pids = {
                "services": [s.proc.pid for s in sup.services if s.proc is not None],
                "armed": [int(g[1]) for g in grand],
                "escaped": [int(g[2]) for g in grand],
            }
            print("ready", json.dumps(pids), flush=True)
            while True:
                time.sleep(0.2)  # not signal.pause(): a signal just before it would be missed
        except KeyboardInterrupt as exc:
            print(f"interrupted by {exc}", flush=True)
        finally:
            sup.stop_all(timeout_s=20)
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "service":
        service()
    raise SystemExit(supervisor(Path(sys.argv[1])))

"""Child processes started in order, each waited on until ready, and stopped in reverse.

Used by `matthan demo` to run a whole site as the real commands: every part is the same
process a deployment runs, not an in-process imitation.
"""

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from matthan.children import die_with_parent, kill_group, signals_ignored
from matthan.errors import UserError

log = logging.getLogger("matthan.supervisor")


class SupervisorError(UserError):
    pass


@dataclass
class Service:
    name: str
    argv: list[str]
    log_path: Path
    ready: Callable[[], bool] = lambda: True
    env: dict[str, str] = field(default_factory=dict)
    ready_timeout_s: float = 60.0
    # Lines of the child's stdout also shown on the terminal (the ward station's alerts).
    echo_stdout: bool = False
    stdin_text: str | None = None
    proc: "subprocess.Popen[bytes] | None" = None
    _pump: threading.Thread | None = None


class Supervisor:
    def __init__(self) -> None:
        self.services: list[Service] = []

    def start(self, svc: Service) -> Service:
        svc.log_path.parent.mkdir(parents=True, exist_ok=True)
        logf = svc.log_path.open("ab")
        # A session (and process group) of its own: Ctrl-C on the terminal reaches the supervisor
        # only, which then stops the children in reverse order instead of all of them dying at
        # once; and the group is what _stop sweeps, grandchildren included. The death signal
        # covers the supervisor itself being killed, when no stop runs at all.
        svc.proc = subprocess.Popen(
            svc.argv,
            stdout=subprocess.PIPE if svc.echo_stdout else logf,
            stderr=logf,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **svc.env},
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )
        if svc.echo_stdout:
            svc._pump = threading.Thread(target=_pump, args=(svc.proc.stdout, logf), daemon=True)
            svc._pump.start()
        self.services.append(svc)
        deadline = time.monotonic() + svc.ready_timeout_s
        while not svc.ready():
            if svc.proc.poll() is not None:
                raise SupervisorError(f"{svc.name} exited with {svc.proc.returncode}: {self.tail(svc)}")
            if time.monotonic() > deadline:
                raise SupervisorError(
                    f"{svc.name} not ready after {svc.ready_timeout_s:.0f} s: {self.tail(svc)}"
                )
            time.sleep(0.1)
        log.info("started %s pid=%d", svc.name, svc.proc.pid)
        return svc

    def dead(self) -> Service | None:
        return next((s for s in self.services if s.proc is not None and s.proc.poll() is not None), None)

    def stop_all(self, timeout_s: float = 15.0) -> None:
        # Called from the main thread (the demo's composition root): a second Ctrl-C or SIGTERM
        # while stopping must not leave the remaining services running.
        quiet = signals_ignored() if threading.current_thread() is threading.main_thread() else nullcontext()
        with quiet:
            for svc in reversed(self.services):
                self._stop(svc, timeout_s)
        self.services.clear()

    def _stop(self, svc: Service, timeout_s: float) -> None:
        if svc.proc is None:
            return
        if svc.proc.poll() is None:
            # The service alone first: it stops its own children in order (an agent closes its
            # recorders' segments).
            svc.proc.send_signal(signal.SIGTERM)
            try:
                svc.proc.wait(timeout_s)
                log.info("stopped %s exit=%s", svc.name, svc.proc.returncode)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0f s: killed", svc.name, timeout_s)
                kill_group(svc.proc.pid)
                svc.proc.wait(5)
        # Whatever it started and left behind is in its process group.
        kill_group(svc.proc.pid)
        if svc._pump is not None:
            svc._pump.join(2)

    @staticmethod
    def tail(svc: Service, lines: int = 8) -> str:
        try:
            text = svc.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(text[-lines:]) or "(empty log)"


def _pump(src: IO[bytes] | None, logf: IO[bytes]) -> None:
    if src is None:
        return
    for line in iter(src.readline, b""):
        logf.write(line)
        logf.flush()
        sys.stdout.write(line.decode(errors="replace"))
        sys.stdout.flush()

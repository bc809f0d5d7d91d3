"""A real Mosquitto broker for one test: own config, own port, own data folder."""

import getpass
import os
import shutil
import signal
import subprocess
from pathlib import Path

from tests.support.net import free_port, wait_port

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


class Mosquitto:
    """Start, stop, kill and restart a broker; the port and data stay the same across restarts."""

    def __init__(
        self,
        workdir: Path,
        extra_config: str = "",
        port: int | None = None,
        persistence: bool = True,
        listener: str | None = None,
    ) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.conf = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"
        lines = [
            listener or f"listener {self.port} 127.0.0.1",
            "allow_anonymous true" if listener is None else "",
            f"persistence {'true' if persistence else 'false'}",
            f"persistence_location {workdir}/",
            # Started as root, mosquitto drops to user `mosquitto`, which cannot write the test's
            # folder: persistence then fails silently and sessions vanish across a restart.
            f"user {getpass.getuser()}",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "max_queued_messages 100000",
            extra_config,
        ]
        self.conf.write_text("\n".join(x for x in lines if x) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> "Mosquitto":
        logf = self.log.open("ab")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=logf, stderr=logf)
        try:
            wait_port(self.port, timeout=10)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"mosquitto did not start: {self.log.read_text()[-2000:]}") from None
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: no chance to save anything, as in a crash or power cut."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def reload(self) -> None:
        if self.proc:
            self.proc.send_signal(signal.SIGHUP)

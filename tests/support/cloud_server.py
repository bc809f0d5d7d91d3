"""`matthan cloud serve` in its own process, for the device's uploads: killable mid-upload, its
SQLite database and clip folder surviving a kill and a start."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from sqlmodel import Session

from cloud.auth import issue_device_token
from cloud.db import make_engine, migrate
from cloud.models import Device
from matthan_wire.config import DeviceIdentity
from tests.support.net import free_port, wait_port

ROOT = Path(__file__).resolve().parents[2]
# The device the cloud issues its upload token to.
DEVICE = DeviceIdentity(id="dev-1", ward="ben-nghe")


class Cloud:
    """`matthan cloud serve` on a loopback port; SQLite and the clip folder survive kill/start."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db_url = f"sqlite:///{workdir / 'cloud.db'}"
        self.proc: subprocess.Popen[bytes] | None = None
        engine = make_engine(self.db_url)
        migrate(engine)
        with Session(engine) as s:
            self.token = issue_device_token(s, Device(id=DEVICE.id, ward=DEVICE.ward))
            s.commit()
        engine.dispose()

    def start(self) -> "Cloud":
        cmd = [sys.executable, "-m", "matthan", "cloud", "serve", "--db", self.db_url, "--broker", "none",
               "--clips", str(self.workdir / "clips"), "--port", str(self.port), "--no-ingest"]  # fmt: skip
        log = (self.workdir / "cloud.log").open("ab")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=log)
        wait_port(self.port, timeout=30)
        return self

    def kill(self) -> None:
        """SIGKILL, as a crash or a power cut: no chance to finish the request in flight."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def head(self, event_id: str, kind: str) -> httpx.Response:
        return httpx.head(f"{self.url}/api/v1/media/{event_id}/{kind}", headers=self.auth, timeout=10)

    def get(self, event_id: str, kind: str) -> bytes:
        r = httpx.get(f"{self.url}/api/v1/media/{event_id}/{kind}", headers=self.auth, timeout=30)
        assert r.status_code == 200, r.text
        return r.content

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

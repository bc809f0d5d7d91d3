"""The attention tests' peers, each a real process on a loopback port: a webhook receiver that
verifies signatures, and an aiosmtpd SMTP server."""

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.net import free_port

ROOT = Path(__file__).resolve().parents[3]
SECRET = "whsec-test-0123456789abcdef"


def spawn(module: str, *args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *args], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the readiness signal
    if line.strip() != "ready":
        proc.kill()
        raise RuntimeError(f"{module} did not start: {line!r}")
    return proc


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)


@dataclass
class Receiver:
    port: int
    log: Path
    proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> "Receiver":
        self.proc = spawn("tests.cloud.attention.receiver", str(self.port), str(self.log), SECRET)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None

    def requests(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r["body"]) for r in self.requests() if r["path"].startswith("/hook")]


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    r = Receiver(free_port(), tmp_path / "webhook.jsonl").start()
    yield r
    r.stop()


@dataclass
class Smtp:
    port: int
    folder: Path

    def messages(self) -> list[bytes]:
        return [p.read_bytes() for p in sorted(self.folder.glob("*.eml"))]


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[Smtp]:
    port = free_port()
    proc = spawn("tests.cloud.attention.smtpd", str(port), str(tmp_path / "mail"))
    yield Smtp(port, tmp_path / "mail")
    stop(proc)

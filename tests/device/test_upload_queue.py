"""The durable upload queue: what is committed survives the process that committed it."""

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

from device.upload_queue import UploadQueue

ROOT = Path(__file__).resolve().parents[2]


def test_the_queue_survives_a_killed_process(tmp_path: Path) -> None:
    """Committed means on disk: an agent SIGKILLed right after queueing still has the entry."""
    clip = tmp_path / "ev-9.mp4"
    clip.write_bytes(os.urandom(1_000_000))
    script = (
        "import os, sys\n"
        "from device.upload_queue import UploadQueue\n"
        "q = UploadQueue(sys.argv[1])\n"
        "q.add('ev-9', 'clip', sys.argv[2])\n"
        "q.set_offset(q.get('ev-9', 'clip'), 65536)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / "media.db"), str(clip)], cwd=ROOT)
    assert proc.returncode == -signal.SIGKILL
    uploads = UploadQueue(tmp_path / "media.db")
    item = uploads.get("ev-9", "clip")
    assert item is not None and item.state == "pending" and item.sent_offset == 65536
    assert item.sha256 == hashlib.sha256(clip.read_bytes()).hexdigest()
    assert uploads.backlog().count == 1

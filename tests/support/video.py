"""Comparing video by its pictures, not its container: what a stream copy must preserve."""

import subprocess
from pathlib import Path

from device.ffmpeg import FFMPEG


def frame_hashes(path: Path, limit: int | None = None) -> list[str]:
    """MD5 of every decoded frame, in order."""
    cmd = [FFMPEG, "-v", "error", "-i", str(path), "-map", "0:v:0"]
    if limit:
        cmd += ["-frames:v", str(limit)]
    out = subprocess.run([*cmd, "-f", "framemd5", "-"], capture_output=True, text=True, check=True).stdout
    return [line.rsplit(",", 1)[1].strip() for line in out.splitlines() if line and not line.startswith("#")]

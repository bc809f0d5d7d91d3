"""Comparing video by its pictures, not its container: what a stream copy must preserve."""

import subprocess
from pathlib import Path

import cv2
import numpy as np

from device.ffmpeg import FFMPEG


def frame_hashes(path: Path, limit: int | None = None) -> list[str]:
    """MD5 of every decoded frame, in order."""
    cmd = [FFMPEG, "-v", "error", "-i", str(path), "-map", "0:v:0"]
    if limit:
        cmd += ["-frames:v", str(limit)]
    out = subprocess.run([*cmd, "-f", "framemd5", "-"], capture_output=True, text=True, check=True).stdout
    return [line.rsplit(",", 1)[1].strip() for line in out.splitlines() if line and not line.startswith("#")]


def frames_at(path: Path, wanted: set[int]) -> dict[int, np.ndarray]:
    """The decoded frames of a clip at the given indices (BGR, as the device's capture gives them)."""
    cap = cv2.VideoCapture(str(path))
    out: dict[int, np.ndarray] = {}
    i = 0
    while len(out) < len(wanted):
        ok, image = cap.read()
        if not ok:
            break
        if i in wanted:
            out[i] = image
        i += 1
    cap.release()
    return out

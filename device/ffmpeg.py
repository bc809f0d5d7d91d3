"""The ffmpeg and ffprobe this device runs: where they are, the hardware decoder they can use, and
keeping a camera's password out of what they print."""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

FFMPEG = shutil.which("ffmpeg") or "ffmpeg"
FFPROBE = shutil.which("ffprobe") or "ffprobe"

_HW_DEVICES = (("cuda", "/dev/nvidia0"), ("vaapi", "/dev/dri/renderD128"), ("drm", "/dev/dri/card0"))


def hide_password(text: str, source: str) -> str:
    """ffmpeg repeats the input URL in its errors; a camera's password has no place in a log."""
    password = urlsplit(source).password if "://" in source else None
    return text.replace(password, "***") if password else text


def cheap_encode(segment_s: float) -> list[str]:
    """libx264 at its cheapest, a keyframe at every segment boundary: for what cannot be copied."""
    return [
        "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-pix_fmt", "yuv420p",
        "-force_key_frames", f"expr:gte(t,n_forced*{segment_s:g})",
    ]  # fmt: skip


@functools.cache
def _ffmpeg_hwaccels() -> frozenset[str]:
    try:
        out = subprocess.run(
            [FFMPEG, "-hide_banner", "-hwaccels"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return frozenset()
    return frozenset(line.strip() for line in out.stdout.splitlines()[1:] if line.strip())


def ffmpeg_hwaccel(mode: str) -> str | None:
    """The `-hwaccel` ffmpeg decodes with on this device, None for software.

    Only with `hwaccel: auto`, only a method this ffmpeg was built with, only when its device node
    exists (a build with vaapi on a box without a GPU would try, log errors and fall back anyway).
    """
    if mode != "auto":
        return None
    built = _ffmpeg_hwaccels()
    return next((name for name, node in _HW_DEVICES if name in built and Path(node).exists()), None)

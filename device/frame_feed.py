"""Recording a camera only the capture can open (the Pi camera, USB cameras): the frames it hands
over, at the detect rate, piped raw into one cheap ffmpeg encode, stamped by arrival, cut into the
same segments as a stream copy."""

from __future__ import annotations

import contextlib
import queue
import subprocess
import threading

import numpy as np

from device.ffmpeg import FFMPEG, cheap_encode

FEED_FRAMES = 64  # a few seconds of detect-rate frames between the capture and the encoder


class FrameFeed:
    """A bounded queue of BGR frames from the capture to the recorder's ffmpeg; the newest frame is
    dropped (and counted) when the encoder falls behind."""

    def __init__(self) -> None:
        self._frames: queue.Queue[np.ndarray] = queue.Queue(maxsize=FEED_FRAMES)
        self._lock = threading.Lock()
        self._dropped = 0

    @property
    def dropped(self) -> int:
        with self._lock:
            return self._dropped

    def put(self, image: np.ndarray) -> None:
        """Never blocks: the capture thread must not wait for the encoder."""
        try:
            self._frames.put_nowait(image)
        except queue.Full:
            with self._lock:
                self._dropped += 1

    def get(self, timeout: float) -> np.ndarray | None:
        try:
            return self._frames.get(timeout=timeout)
        except queue.Empty:
            return None

    def write_to(self, proc: subprocess.Popen[bytes], first: np.ndarray, stop: threading.Event) -> None:
        """Feed ffmpeg until it ends; a frame of another size ends the session (ffmpeg restarts)."""
        assert proc.stdin is not None
        shape = first.shape
        image: np.ndarray | None = first
        try:
            while proc.poll() is None and not stop.is_set():
                if image is not None:
                    if image.shape != shape:
                        break
                    proc.stdin.write(np.ascontiguousarray(image, dtype=np.uint8).tobytes())
                image = self.get(timeout=0.5)
        except (BrokenPipeError, ValueError, OSError):
            pass  # ffmpeg went away; the monitor restarts it
        finally:
            with contextlib.suppress(OSError, ValueError):
                proc.stdin.close()  # end of input: ffmpeg closes its segment and exits


def frames_command(width: int, height: int, segment_s: float, output: list[str]) -> list[str]:
    """Raw BGR frames on stdin, stamped by arrival, one cheap encode into `output` (the segments)."""
    return [
        FFMPEG, "-hide_banner", "-loglevel", "error",
        "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{width}x{height}",
        "-use_wallclock_as_timestamps", "1", "-i", "pipe:0",
        "-fps_mode", "passthrough", *cheap_encode(segment_s), *output,
    ]  # fmt: skip

"""The hand-off between a camera's capture thread and its detect thread.

Lossless (a file played unpaced: every sampled frame matters, the capture waits for the
detector) or latest-wins (live streams and paced files: a frame the detector has not taken yet is
replaced by the newer one, and counted as dropped). The end of the source travels as a marker
after the last frame.
"""

import contextlib
import queue
import threading
from collections.abc import Callable

from device.frames import Frame

_END = object()
POLL_S = 0.2  # how often a blocked side looks at the stop flag


class FrameHandoff:
    def __init__(self, lossless: bool, stop: threading.Event) -> None:
        self.lossless = lossless
        self.dropped = 0
        self._stop = stop
        self._queue: queue.Queue[object] = queue.Queue(maxsize=4 if lossless else 1)

    def put(self, frame: Frame) -> None:
        """From the capture thread."""
        if self.lossless:
            while not self._stop.is_set():
                try:
                    self._queue.put(frame, timeout=POLL_S)
                    return
                except queue.Full:
                    continue
            return
        try:
            self._queue.put_nowait(frame)
        except queue.Full:
            try:
                self._queue.get_nowait()
                self.dropped += 1
            except queue.Empty:
                pass
            self._queue.put_nowait(frame)

    def end(self, reader_alive: Callable[[], bool]) -> None:
        """From the capture thread, once: no more frames."""
        while True:
            try:
                self._queue.put(_END, timeout=POLL_S)
                return
            except queue.Full:
                if not reader_alive():
                    return  # nobody is reading any more
                if self._stop.is_set() or not self.lossless:
                    # Stopping, or live: a frame left in the queue may go to make room for the marker.
                    with contextlib.suppress(queue.Empty):
                        self._queue.get_nowait()

    def take(self) -> Frame | None:
        """From the detect thread: the next frame, or None at the end of the source or on stop."""
        while True:
            try:
                item = self._queue.get(timeout=POLL_S)
            except queue.Empty:
                if self._stop.is_set():
                    return None
                continue
            if item is _END:
                return None
            assert isinstance(item, Frame)
            return item

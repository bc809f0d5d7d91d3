"""Video in: files, RTSP/HTTP streams and USB cameras through OpenCV (FFmpeg), the Pi camera
through picamera2 — one iterator of timestamped frames per camera.

Files: each frame's time is the start time plus its position in the file; played as fast as
possible (`device detect`) or at their own rate (`paced`, `device run`), looping on request.
Live streams: frames are read as they come so the decoder's buffer never lags; only the frames
the detector can use are converted. A stream that drops or stalls is reopened with backoff and
jitter, and counted.

Hardware decoding: with `hwaccel: auto` OpenCV is asked for any hardware decoder
(CAP_PROP_HW_ACCELERATION = VIDEO_ACCELERATION_ANY: VAAPI, DRM, MFX); without one OpenCV decodes
in software, and a file that will not open with it is opened again without. One log line per
camera says which is used. (OpenCV's pip wheels know no V4L2-M2M or NVDEC: on a Pi or a Jetson the
detect sub-stream is decoded in software — at 640×360 that is a few ms a frame.)
"""

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

import cv2
import numpy as np

from device.errors import DeviceError
from device.frames import Frame
from matthan.backoff import Backoff

log = logging.getLogger("device.capture")

STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")
# How long an open or a read may block before the stream counts as stalled.
OPEN_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 5.0


class SourceError(DeviceError):
    """A video source that cannot be opened or read."""


class VideoSource(Protocol):
    live: bool
    fps: float | None  # as the source reports it; None when it does not know

    def grab(self) -> bool: ...  # next frame, not yet converted; False at the end or on failure

    def retrieve(self) -> np.ndarray | None: ...  # the grabbed frame as BGR

    def close(self) -> None: ...


_HW_NAMES = {
    int(cv2.VIDEO_ACCELERATION_NONE): "software",
    int(cv2.VIDEO_ACCELERATION_VAAPI): "vaapi",
    int(cv2.VIDEO_ACCELERATION_DRM): "drm",
    int(cv2.VIDEO_ACCELERATION_MFX): "mfx",
    int(cv2.VIDEO_ACCELERATION_D3D11): "d3d11",
}


class OpenCVSource:
    def __init__(self, source: str, hwaccel: str = "off", decode_threads: int | None = None) -> None:
        self.source = source
        self.live = not _is_file(source)
        self.decoder = "software"
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            int(OPEN_TIMEOUT_S * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            int(READ_TIMEOUT_S * 1000),
        ]
        if decode_threads is not None:
            params += [cv2.CAP_PROP_N_THREADS, decode_threads]
        if source.startswith(("rtsp://", "rtsps://")):
            # RTSP over UDP smears frames when packets are lost on a busy link; TCP, as NVRs and
            # Frigate use. The operator's own OPENCV_FFMPEG_CAPTURE_OPTIONS wins.
            os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
        cap = self._open(source, params, hwaccel)
        if cap is None:
            if not self.live:
                raise SourceError(f"video file {source}: cannot open it (not a video, or damaged?)")
            raise SourceError(f"cannot open video source {redact(source)}")
        self._cap = cap
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        # FFmpeg reports 90000 or 1000 for streams without a rate; treat those as unknown.
        self.fps = fps if 0.0 < fps <= 240.0 else None

    def _open(self, source: str, params: list[int], hwaccel: str) -> cv2.VideoCapture | None:
        ffmpeg = not (source.isdigit() or source.startswith("/dev/"))
        if ffmpeg and hwaccel == "auto":
            hw = [*params, cv2.CAP_PROP_HW_ACCELERATION, cv2.VIDEO_ACCELERATION_ANY]
            cap = self._try(source, hw)
            if cap is not None:
                used = int(cap.get(cv2.CAP_PROP_HW_ACCELERATION) or 0)
                self.decoder = _HW_NAMES.get(used, f"hw{used}")
                return cap
            if self.live:
                # OpenCV itself falls back to software when there is no hardware decoder; a live
                # source that does not open is most likely down, and a second try would double
                # every reconnect's wait.
                return None
            # A file that opens in software but not with a hardware decoder (a codec it lacks).
        return self._try(source, params)

    @staticmethod
    def _try(source: str, params: list[int]) -> cv2.VideoCapture | None:
        if source.isdigit():
            cap = cv2.VideoCapture(int(source), cv2.CAP_V4L2, params)
        elif source.startswith("/dev/"):
            cap = cv2.VideoCapture(source, cv2.CAP_V4L2, params)
        else:
            cap = cv2.VideoCapture(source, cv2.CAP_FFMPEG, params)
        if not cap.isOpened():
            cap.release()
            return None
        return cap

    def grab(self) -> bool:
        return bool(self._cap.grab())

    def retrieve(self) -> np.ndarray | None:
        ok, image = self._cap.retrieve()
        return image if ok and image is not None and image.size else None

    def close(self) -> None:
        self._cap.release()


def _is_file(source: str) -> bool:
    return not (
        source.startswith(STREAM_SCHEMES) or source.startswith(("/dev/", "picamera2:")) or source.isdigit()
    )


def redact(source: str) -> str:
    """A source as it may appear in logs: without the password of an rtsp://user:pass@ URL."""
    if "://" not in source:
        return source
    parts = urlsplit(source)
    if parts.password is None:
        return source
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def open_source(source: str, hwaccel: str = "off", decode_threads: int | None = None) -> VideoSource:
    if source.startswith("picamera2:"):
        from device.picamera import PiCameraSource

        return PiCameraSource.open(source)
    if _is_file(source):
        path = Path(source)
        if path.is_dir():
            raise SourceError(f"video file {source}: is a folder, not a video file")
        if not path.is_file():
            raise SourceError(f"video file {source}: no such file")
        opened = OpenCVSource(source)
        if not opened.grab():
            opened.close()
            raise SourceError(f"video file {source}: no frame can be decoded (not a video?)")
        opened.close()
    return OpenCVSource(source, hwaccel, decode_threads)


@dataclass
class CaptureCounters:
    frames_in: int = 0  # frames read from the source (converted or not)
    reconnects: int = 0
    stalls: int = 0
    stream_up: bool = False
    expected_fps: float | None = None
    last_frame_mono: float | None = None
    in_times: deque[float] = field(default_factory=lambda: deque(maxlen=4000))
    reconnect_times: deque[float] = field(default_factory=lambda: deque(maxlen=1000))
    stall_times: deque[float] = field(default_factory=lambda: deque(maxlen=1000))


class Capture:
    """Frames of one camera's source, sampled at `sample_fps` (the detect rate).

    `frames()` runs in the capture thread until the file ends (unless looping) or `stop` is set.
    """

    def __init__(
        self,
        source: str,
        sample_fps: float,
        stop: threading.Event,
        paced: bool = True,
        loop: bool = False,
        start_time: datetime | None = None,
        backoff: Backoff | None = None,
        hwaccel: str = "off",
        camera_id: str | None = None,
        decode_threads: int | None = None,
    ) -> None:
        self.source = source
        self.hwaccel = hwaccel
        # FFmpeg's default is a frame-threaded decoder (cores + 1 threads, a frame buffer each);
        # a sub-stream decodes in a millisecond or two on one thread.
        self.decode_threads = decode_threads
        self.camera_id = camera_id
        self._decoder_logged: str | None = None
        self.sample_fps = sample_fps
        self.stop = stop
        self.paced = paced
        self.loop = loop
        self.start_time = start_time
        self.backoff = backoff or Backoff(initial=0.5, maximum=30.0)
        self.counters = CaptureCounters()
        self.live = not _is_file(source)

    def frames(self) -> Iterator[Frame]:
        return self._live() if self.live else self._file()

    def _open(self) -> VideoSource:
        src = open_source(self.source, self.hwaccel, self.decode_threads)
        decoder = getattr(src, "decoder", None)
        if decoder is not None and decoder != self._decoder_logged:
            # Once per camera (and again only if a reconnect lands on another decoder).
            self._decoder_logged = decoder
            log.info(
                "video decode camera=%s source=%s decoder=%s hwaccel=%s",
                self.camera_id, redact(self.source), decoder, self.hwaccel,
            )  # fmt: skip
        return src

    # Files -------------------------------------------------------------------------------
    def _file(self) -> Iterator[Frame]:
        start = self.start_time or datetime.now(UTC)
        wall0 = time.monotonic()
        offset_s = 0.0  # position of this pass's first frame (loops continue the clock)
        index = 0
        while not self.stop.is_set():
            src = self._open()
            fps = src.fps or 25.0
            self.counters.expected_fps = fps
            self.counters.stream_up = True
            n = 0
            next_sample = 0.0
            try:
                while not self.stop.is_set() and src.grab():
                    pos = offset_s + n / fps
                    n += 1
                    self.counters.frames_in += 1
                    self.counters.last_frame_mono = time.monotonic()
                    self.counters.in_times.append(self.counters.last_frame_mono)
                    # Half a frame of slack keeps a 10 fps file sampled at 5 fps on every 2nd frame.
                    if pos + 0.5 / fps < next_sample:
                        continue
                    next_sample = max(next_sample + 1.0 / self.sample_fps, pos)
                    if self.paced:
                        delay = wall0 + pos - time.monotonic()
                        if delay > 0 and self.stop.wait(delay):
                            break
                    image = src.retrieve()
                    if image is None:
                        continue
                    yield Frame(image, start + timedelta(seconds=pos), index)
                    index += 1
            finally:
                src.close()
            offset_s += n / fps
            if not self.loop or n == 0:
                break
        self.counters.stream_up = False

    # Live streams ------------------------------------------------------------------------
    def _live(self) -> Iterator[Frame]:
        index = 0
        first = True
        had_session = False  # a reconnect is a return after frames flowed, not a slow first start
        while not self.stop.is_set():
            try:
                src = self._open()
            except SourceError as exc:
                if first and not self.source.startswith(STREAM_SCHEMES):
                    raise  # a USB or Pi camera that is not there is a setup mistake
                first = False
                wait = self.backoff.next()
                log.warning("stream down source=%s error=%s retry_in_s=%.1f", redact(self.source), exc, wait)
                self.stop.wait(wait)
                continue
            if had_session:
                self.counters.reconnects += 1
                self.counters.reconnect_times.append(time.monotonic())
                log.info(
                    "stream reconnected source=%s reconnects=%d",
                    redact(self.source),
                    self.counters.reconnects,
                )
            first = False
            had_session = True
            self.counters.expected_fps = src.fps
            self.counters.stream_up = True
            next_sample = 0.0
            recent: deque[float] = deque(maxlen=16)  # how long the last reads took
            try:
                while not self.stop.is_set():
                    asked = time.monotonic()
                    ok = src.grab()
                    took = time.monotonic() - asked
                    recent.append(took)
                    if not ok:
                        # FFmpeg's read timeout fired on a silent (not closed) stream: a stall. It
                        # may fire inside an earlier read, which then still returns buffered frames.
                        if max(recent) >= READ_TIMEOUT_S * 0.9:
                            self.counters.stalls += 1
                            self.counters.stall_times.append(time.monotonic())
                            log.warning("stream stalled source=%s", redact(self.source))
                        break
                    now = time.monotonic()
                    self.counters.frames_in += 1
                    self.counters.last_frame_mono = now
                    self.counters.in_times.append(now)
                    self.backoff.reset()
                    if now < next_sample:
                        continue  # read to keep the buffer drained; not converted
                    next_sample = max(next_sample + 1.0 / self.sample_fps, now - 0.5 / self.sample_fps)
                    image = src.retrieve()
                    if image is None:
                        continue
                    yield Frame(image, datetime.now(UTC), index)
                    index += 1
            finally:
                src.close()
                self.counters.stream_up = False
            if not self.stop.is_set():
                log.warning(
                    "stream lost source=%s frames_in=%d", redact(self.source), self.counters.frames_in
                )
                self.stop.wait(self.backoff.next())

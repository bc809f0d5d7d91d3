"""Recording one camera: `ffmpeg` copies the stream (no re-encode) into short MPEG-TS segments.

A Pi cannot afford to decode and re-encode every camera a second time, so the recorder only
remuxes: `-c copy` into `-f segment` files. A clip per event is later cut from these segments by
copy (device/clip_cut.py). The segments live in a cache folder (tmpfs spares an SD card that would be
rewritten every few seconds) and are pruned to the last pre-capture span plus a margin, except
for what an open event still holds (device/segment_cache.py).

MPEG-TS rather than fragmented MP4: a segment cut short by a crash or a power cut is still
readable up to its last packet.

Sources whose codec cannot go into MPEG-TS by copy (MJPEG over HTTP, GIFs) get one cheap encode
(libx264 ultrafast, keyframes at segment boundaries). Cameras the capture opens itself, the Pi
camera (`picamera2:N`) and USB cameras (`/dev/videoN`), cannot be opened a second time: the
capture hands the recorder its frames (feed(), at the detect rate) and ffmpeg encodes them once,
stamped by arrival, into the same segments (device/frame_feed.py). Cheaper still on a Pi, and not
built: the hardware H.264 encoder on the capture's own Picamera2 object,
`start_encoder(H264Encoder(iperiod=fps × segment_s), FfmpegOutput("-f segment … <pattern>"))`,
writing the segment names indexed here.

Wall-clock times come from the segments' names and write times (device/segment_cache.py).
strftime names were tried and dropped: they have one-second resolution, and a burst of packets
after a network hiccup opens several segments in one second, which then overwrite each other.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from device.capture import redact
from device.ffmpeg import FFMPEG, cheap_encode, ffmpeg_hwaccel, hide_password
from device.frame_feed import FrameFeed, frames_command
from device.segment_cache import Segment, SegmentCache
from device.source_probe import COPYABLE, RecorderError, probe_codec
from matthan.backoff import Backoff
from matthan.children import die_with_parent
from matthan_wire.config import CameraConfig

log = logging.getLogger(__name__)

SCAN_S = 0.2


@dataclass
class RecorderState:
    camera_id: str
    recording: bool = False
    mode: str | None = None  # "copy" | "encode"
    finished: bool = False  # a non-looping file source reached its end
    segments: int = 0
    cache_bytes: int = 0
    last_segment_age_s: float | None = None
    segments_written: int = 0
    segments_pruned: int = 0
    restarts: int = 0
    stalls: int = 0
    last_error: str | None = None
    held_events: int = 0
    frames_dropped: int = 0  # frames-fed cameras: frames the encoder could not take in time


def source_kind(source: str) -> str:
    """file | stream | device | picamera2 — decides pacing, looping and probing."""
    if source.startswith("picamera2:"):
        return "picamera2"
    if source.startswith("/dev/") or source.isdigit():
        return "device"
    if "://" in source:
        return "stream"
    return "file"


def _session_now() -> int:
    """A new ffmpeg session's name: the millisecond just before it starts.

    Taken after probing the camera and waiting for the capture's first frame (either can take
    seconds on a busy device), so no file of the session can be older: the segment cache bounds its
    first segment's start by it (device/segment_cache.py).
    """
    return int(time.time() * 1000)


class Recorder:
    """One camera's ffmpeg segmenter, restarted with backoff when it dies or stalls."""

    def __init__(
        self,
        camera: CameraConfig,
        cache_dir: Path,
        *,
        paced: bool = True,
        keep_s: float | None = None,
        stall_factor: float = 5.0,
        min_stall_s: float = 10.0,
        startup_s: float = 15.0,
        hold_head_s: float = 180.0,
        backoff: Backoff | None = None,
    ) -> None:
        kind = source_kind(camera.record_source)
        # The capture holds a Pi or USB camera (a second opener gets EBUSY or nothing): those are
        # recorded from the frames the capture hands over (feed()), with one cheap encode.
        self.frames = kind in ("picamera2", "device")
        self.camera = camera
        self.cache_dir = Path(cache_dir)
        self.kind = kind
        self.paced = paced
        self.segment_s = camera.record.segment_s
        margin = 2 * self.segment_s + 5.0
        self.keep_s = keep_s if keep_s is not None else camera.record.pre_capture_s + margin
        self.stall_factor = stall_factor
        self.min_stall_s = min_stall_s
        self.startup_s = startup_s
        self.hold_head_s = hold_head_s
        self._backoff = backoff or Backoff(initial=0.5, maximum=30.0)
        self._lock = threading.Lock()
        self._cache = SegmentCache(
            camera.id, self.cache_dir, self.segment_s, writing=lambda: self.pid is not None
        )
        self._state = RecorderState(camera_id=camera.id)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: collections.deque[str] = collections.deque(maxlen=20)
        self._codec: str | None = None
        # Hardware decoding (only when re-encoding: a copy decodes nothing); dropped for good when
        # an ffmpeg using it produced nothing.
        self.hwaccel = ffmpeg_hwaccel(camera.hwaccel)
        # Frames from the capture, for cameras only it can open.
        self._feed = FrameFeed()

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RecorderError(
                f"camera {self.camera.id}: cannot create cache {self.cache_dir}: {exc}"
            ) from None
        self._scan()  # segments left by a previous run are still evidence for a late cut
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"recorder-{self.camera.id}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout + 5.0)
            self._thread = None

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    # -- what clips and health read -----------------------------------------------------------

    def segments(self) -> list[Segment]:
        return self._cache.segments()

    def state(self) -> RecorderState:
        with self._lock:
            st = RecorderState(**self._state.__dict__)
        st.segments, st.cache_bytes, newest = self._cache.usage()
        st.segments_pruned = self._cache.pruned
        st.held_events = len(self._cache.holds())
        st.frames_dropped = self._feed.dropped
        st.last_segment_age_s = (
            max(0.0, (datetime.now(UTC) - newest).total_seconds()) if newest is not None else None
        )
        return st

    def hold(self, key: str, since: datetime) -> None:
        """Keep an open event's evidence until release(key): every segment from `since` on.

        For an event that goes on (a car parked for hours) the first `hold_head_s` are kept and the
        middle is let go: the clip is then its beginning and its end, and the cache stays bounded.
        """
        self._cache.hold(key, since)

    def release(self, key: str) -> None:
        self._cache.release(key)

    def holds(self) -> dict[str, datetime]:
        return self._cache.holds()

    def take_holds(self, holds: dict[str, datetime]) -> None:
        self._cache.take_holds(holds)

    def feed(self, image: np.ndarray) -> None:
        """A frame from the capture (BGR), for cameras the recorder cannot open; never blocks."""
        if self.frames:
            self._feed.put(image)

    # -- the ffmpeg command -------------------------------------------------------------------

    def command(self, codec: str, session: int) -> list[str]:
        src = self.camera.record_source
        cmd = [FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin"]
        if self.kind == "file":
            # Under `device run` a file plays at its own rate, on the same clock as capture.
            if self.paced:
                cmd += ["-re"]
            if self.camera.loop:
                cmd += ["-stream_loop", "-1"]
        elif self.kind == "stream" and src.startswith("rtsp://"):
            cmd += ["-rtsp_transport", "tcp"]
        if codec not in COPYABLE and self.hwaccel is not None:
            cmd += ["-hwaccel", self.hwaccel]
        cmd += ["-i", src, "-map", "0:v:0"]
        # Audio is left out: street evidence is the picture, and recording speech needs a legal basis.
        cmd += ["-c", "copy"] if codec in COPYABLE else cheap_encode(self.segment_s)
        return cmd + self._cache.output(session)

    # -- the monitor thread -------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._record()
            except Exception as exc:  # the recorder must outlive surprises (a vanished tmpfs, EACCES)
                proc = self._proc
                if proc is not None:
                    self._end(proc)
                    self._proc = None
                delay = self._backoff.next()
                self._set(recording=False, last_error=f"{exc.__class__.__name__}: {exc}")
                log.exception("recorder error camera=%s retry_in=%.1fs", self.camera.id, delay)
                self._stop.wait(delay)
            else:
                return

    def _record(self) -> None:
        cam = self.camera.id
        while not self._stop.is_set():
            # A tmpfs cache can be emptied under us (reboot of a container, an operator's rm).
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            first: np.ndarray | None = None
            if self.frames:
                first = self._first_frame()
                if first is None:
                    continue  # stopping, or still waiting for the capture
                mode, codec = "frames", "rawvideo"
                height, width = first.shape[:2]
                session = _session_now()
                cmd = frames_command(width, height, self.segment_s, self._cache.output(session))
            else:
                try:
                    # Probed once: every probe of a network camera is one more connection to it.
                    codec = self._codec = self._codec or probe_codec(self.camera.record_source)
                except RecorderError as exc:
                    self._set(recording=False, last_error=str(exc))
                    delay = self._backoff.next()
                    log.warning("recording down camera=%s reason=%s retry_in=%.1fs", cam, exc, delay)
                    self._stop.wait(delay)
                    continue
                mode = "copy" if codec in COPYABLE else "encode"
                session = _session_now()
                cmd = self.command(codec, session)
            try:
                proc = subprocess.Popen(
                    cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "TZ": "UTC"},
                    stdin=subprocess.PIPE if self.frames else subprocess.DEVNULL,
                    # ffmpeg must not outlive the agent (a SIGKILLed agent left recorders writing).
                    preexec_fn=die_with_parent(),
                )  # fmt: skip
            except OSError as exc:
                delay = self._backoff.next()
                self._set(recording=False, last_error=f"cannot start ffmpeg: {exc}")
                log.error(
                    "recording down camera=%s reason=cannot start ffmpeg: %s retry_in=%.1fs", cam, exc, delay
                )
                self._stop.wait(delay)
                continue
            self._proc = proc
            threading.Thread(target=self._drain, args=(proc,), daemon=True, name=f"ffmpeg-err-{cam}").start()
            if first is not None:
                threading.Thread(
                    target=self._feed.write_to,
                    args=(proc, first, self._stop),
                    daemon=True,
                    name=f"ffmpeg-in-{cam}",
                ).start()
            # "recording" only once this ffmpeg writes segments (see _scan): a started ffmpeg whose
            # camera does not answer is not recording, and health must not flicker to true.
            self._set(mode=mode)
            decoder = "none" if mode == "copy" else (self.hwaccel if mode == "encode" else None) or "software"
            log.info(
                "recording started camera=%s mode=%s codec=%s decoder=%s source=%s pid=%d",
                cam, mode, codec, decoder, redact(self.camera.record_source), proc.pid,
            )  # fmt: skip
            reason, produced = self._watch(proc, session)
            if produced == 0 and mode == "encode" and self.hwaccel is not None:
                log.warning(
                    "hardware decoding failed camera=%s hwaccel=%s: decoding in software from now on",
                    cam, self.hwaccel,
                )  # fmt: skip
                self.hwaccel = None
            self._end(proc)
            self._proc = None
            self._scan()
            self._set(recording=False)
            if self._stop.is_set():
                break
            if reason == "eof" and self.kind == "file" and not self.camera.loop:
                self._set(finished=True, last_error=None)
                log.info("recording finished camera=%s reason=end of file", cam)
                break
            if produced >= 2:
                self._backoff.reset()
            delay = self._backoff.next()
            err = " | ".join(self._stderr) or reason
            with self._lock:
                self._state.restarts += 1
                self._state.stalls += reason == "stall"
                self._state.last_error = f"ffmpeg {reason}: {err}"[:500]
            log.warning(
                "recording restart camera=%s reason=%s detail=%s retry_in=%.1fs", cam, reason, err, delay
            )
            self._stop.wait(delay)
        self._prune()

    def _first_frame(self) -> np.ndarray | None:
        self._set(recording=False)
        while not self._stop.is_set():
            image = self._feed.get(timeout=0.5)
            if image is not None:
                return image
            with self._lock:
                self._state.last_error = self._state.last_error or "waiting for frames from the capture"
        return None

    def _watch(self, proc: subprocess.Popen[bytes], session: int) -> tuple[str, int]:
        """Until ffmpeg exits, stalls or we stop: 'eof' | 'died' | 'stall' | 'stopped'."""
        last_new = time.monotonic()
        produced = 0
        while not self._stop.wait(SCAN_S):
            new = self._scan(session)
            now = time.monotonic()
            if new:
                produced += new
                last_new = now
            rc = proc.poll()
            if rc is not None:
                return ("eof" if rc == 0 else "died"), produced
            stall_after = max(self.min_stall_s, self.stall_factor * self._cache.longest_segment_s)
            if not produced:
                # Connecting and ffmpeg's stream analysis (5 s by default) come before the first segment.
                stall_after += self.startup_s
            if now - last_new > stall_after:
                log.warning(
                    "recording stalled camera=%s no_new_segment_for=%.1fs", self.camera.id, now - last_new
                )
                return "stall", produced
            self._prune()
        return "stopped", produced

    def _end(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is not None:
            return
        if proc.stdin is not None:
            with contextlib.suppress(OSError, ValueError):
                proc.stdin.close()
        # SIGINT lets ffmpeg close the open segment cleanly; SIGKILL only if it does not listen.
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def _drain(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        self._stderr.clear()
        for raw in proc.stderr:
            line = hide_password(raw.decode("utf-8", "replace").strip(), self.camera.record_source)
            if line:
                self._stderr.append(line)
                log.debug("ffmpeg camera=%s %s", self.camera.id, line)

    def _set(self, **kw: object) -> None:
        with self._lock:
            for k, v in kw.items():
                setattr(self._state, k, v)

    # -- the segment cache ----------------------------------------------------------------------

    def _scan(self, live_session: int | None = None) -> int:
        """Index the cache; a new segment of the live session means this ffmpeg is recording."""
        new = self._cache.scan(live_session)
        if new:
            with self._lock:
                self._state.segments_written += new
                self._state.recording = True
        return new

    def _prune(self) -> None:
        self._cache.prune(self.keep_s, self.hold_head_s)

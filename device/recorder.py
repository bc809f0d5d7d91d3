"""Recording one camera: `ffmpeg` copies the stream (no re-encode) into short MPEG-TS segments.

A Pi cannot afford to decode and re-encode every camera a second time, so the recorder only
remuxes: `-c copy` into `-f segment` files. A clip per event is later cut from these segments by
copy (device/clips.py). The segments live in a cache folder (tmpfs spares an SD card that would be
rewritten every few seconds) and are pruned to the last pre-capture span plus a margin, except
for what an open event still holds.

MPEG-TS rather than fragmented MP4: a segment cut short by a crash or a power cut is still
readable up to its last packet.

Sources whose codec cannot go into MPEG-TS by copy (MJPEG over HTTP, GIFs) get one cheap encode
(libx264 ultrafast, keyframes at segment boundaries). Cameras the capture opens itself, the Pi
camera (`picamera2:N`) and USB cameras (`/dev/videoN`), cannot be opened a second time: the
capture hands the recorder its frames (feed(), at the detect rate) and ffmpeg encodes them once,
stamped by arrival, into the same segments. Cheaper still on a Pi, and not built: the hardware
H.264 encoder on the capture's own Picamera2 object, `start_encoder(H264Encoder(iperiod=fps ×
segment_s), FfmpegOutput("-f segment … <pattern>"))`, writing the segment names indexed here.

Wall-clock times: files are named `{camera}-{session}-{index}.ts`, the session being the
millisecond the ffmpeg process was started. ffmpeg closes a segment (its last write, the file's
mtime) the moment it opens the next, so a segment starts at its predecessor's mtime and ends at
its own. The first segment of a session starts between two directory scans when the recorder
saw it appear, or at worst after the session began. strftime names were tried and dropped: they
have one-second resolution, and a burst of packets after a network hiccup opens several segments
in one second, which then overwrite each other.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import json
import logging
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from device.capture import redact
from device.errors import DeviceError
from matthan.backoff import Backoff
from matthan.children import die_with_parent
from matthan_wire.config import CameraConfig, StorageConfig

log = logging.getLogger(__name__)

FFMPEG = shutil.which("ffmpeg") or "ffmpeg"
FFPROBE = shutil.which("ffprobe") or "ffprobe"

# Codecs MPEG-TS carries by copy and every player of an evidence clip understands.
COPYABLE = frozenset({"h264", "hevc"})

_NAME_RE = re.compile(r"^(?P<cam>[a-z0-9-]+)-(?P<session>\d{13})-(?P<index>\d{6})\.ts$")
SCAN_S = 0.2
FEED_FRAMES = 64  # a few seconds of detect-rate frames between the capture and the encoder
_CLOSE_SLACK = timedelta(milliseconds=50)
_CLOCK_SLACK = timedelta(milliseconds=20)


class RecorderError(DeviceError):
    """A camera that cannot be recorded as configured."""


@dataclass(frozen=True)
class Segment:
    path: Path
    session: int
    # The segment started somewhere in [start_lo, start_hi].
    start_lo: datetime
    start_hi: datetime
    # Best estimate of its end: the next segment's start, or its last write for a session's last.
    end: datetime
    complete: bool
    size: int

    @property
    def start(self) -> datetime:
        return self.start_lo + (self.start_hi - self.start_lo) / 2


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


@dataclass
class _Seg:
    session: int
    index: int
    # When the recorder saw the file appear (between two scans); None for files found at start-up.
    seen: tuple[datetime, datetime] | None
    size: int = 0
    mtime: datetime | None = None


def cache_dir(storage: StorageConfig, camera_id: str) -> Path:
    """A camera's segment folder: storage.cache_path (a tmpfs, ideally) or segments/ under storage.path."""
    base = Path(storage.cache_path) if storage.cache_path else Path(storage.path) / "segments"
    return base / camera_id


def source_kind(source: str) -> str:
    """file | stream | device | picamera2 — decides pacing, looping and probing."""
    if source.startswith("picamera2:"):
        return "picamera2"
    if source.startswith("/dev/") or source.isdigit():
        return "device"
    if "://" in source:
        return "stream"
    return "file"


def _hide_password(text: str, source: str) -> str:
    """ffmpeg repeats the input URL in its errors; a camera's password has no place in a log."""
    password = urlsplit(source).password if "://" in source else None
    return text.replace(password, "***") if password else text


def probe_codec(source: str, timeout: float = 15.0) -> str:
    """The codec of the source's first video stream, by ffprobe; RecorderError when unreadable."""
    cmd = [FFPROBE, "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=codec_name"]
    # The codec name is in the first packets; waiting for ffprobe's default 5 s of analysis is not needed.
    cmd += ["-analyzeduration", "1000000", "-probesize", "2000000"]
    if source.startswith("rtsp://"):
        cmd += ["-rtsp_transport", "tcp"]
    cmd += ["-of", "csv=p=0", source]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise RecorderError(f"source {redact(source)}: no answer within {timeout:.0f}s") from None
    codec = out.stdout.strip().splitlines()[0] if out.stdout.strip() else ""
    if out.returncode != 0 or not codec:
        reason = _hide_password((out.stderr.strip().splitlines() or ["no video stream"])[-1], source)
        raise RecorderError(f"source {redact(source)}: cannot read video ({reason})")
    return codec


_HW_DEVICES = (("cuda", "/dev/nvidia0"), ("vaapi", "/dev/dri/renderD128"), ("drm", "/dev/dri/card0"))


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


@dataclass(frozen=True)
class StreamInfo:
    """What ffprobe reads from a stream's first seconds, without decoding a picture."""

    codec: str
    width: int
    height: int
    fps: float | None
    # Between the first two keyframes seen; None when the sample held fewer than two.
    keyframe_interval_s: float | None
    sampled_s: float


def _rate(text: str | None) -> float | None:
    num, _, den = (text or "").partition("/")
    try:
        value = float(num) / float(den or 1)
    except (ValueError, ZeroDivisionError):
        return None
    return value if 0.0 < value <= 240.0 else None


def probe_stream(source: str, sample_s: float = 6.0, timeout: float = 25.0) -> StreamInfo:
    """Codec, resolution, frame rate and keyframe interval of the source's first video stream.

    The packets of `sample_s` seconds are read (their keyframe flags): no decoding, so it costs
    nothing on a 4 MP main stream. RecorderError when the source cannot be read.
    """
    cmd = [FFPROBE, "-v", "error", "-select_streams", "v:0"]
    cmd += ["-show_entries", "stream=codec_name,width,height,avg_frame_rate,r_frame_rate"]
    cmd += ["-show_entries", "packet=pts_time,flags", "-read_intervals", f"%+{sample_s:g}"]
    if source.startswith("rtsp://"):
        cmd += ["-rtsp_transport", "tcp"]
    cmd += ["-of", "json", source]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise RecorderError(f"source {redact(source)}: no answer within {timeout:.0f}s") from None
    try:
        info = json.loads(out.stdout or "{}")
        stream = info["streams"][0]
    except (ValueError, KeyError, IndexError):
        reason = _hide_password((out.stderr.strip().splitlines() or ["no video stream"])[-1], source)
        raise RecorderError(f"source {redact(source)}: cannot read video ({reason})") from None
    times: list[float] = []
    keys: list[float] = []
    for pkt in info.get("packets", []):
        try:
            t = float(pkt["pts_time"])
        except (KeyError, TypeError, ValueError):
            continue
        times.append(t)
        if "K" in str(pkt.get("flags", "")):
            keys.append(t)
    keys.sort()
    gaps = [b - a for a, b in zip(keys, keys[1:], strict=False) if b > a]
    return StreamInfo(
        codec=str(stream.get("codec_name") or "unknown"),
        width=int(stream.get("width") or 0),
        height=int(stream.get("height") or 0),
        fps=_rate(stream.get("avg_frame_rate")) or _rate(stream.get("r_frame_rate")),
        keyframe_interval_s=round(max(gaps), 3) if gaps else None,
        sampled_s=round(max(times) - min(times), 3) if times else 0.0,
    )


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
        self._segs: dict[Path, _Seg] = {}
        self._holds: dict[str, datetime] = {}
        self._state = RecorderState(camera_id=camera.id)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: collections.deque[str] = collections.deque(maxlen=20)
        self._last_scan: datetime | None = None
        self._longest_segment_s = self.segment_s
        self._codec: str | None = None
        # Hardware decoding (only when re-encoding: a copy decodes nothing); dropped for good when
        # an ffmpeg using it produced nothing.
        self.hwaccel = ffmpeg_hwaccel(camera.hwaccel)
        # Frames from the capture, for cameras only it can open; bounded, newest dropped when full.
        self._feed: queue.Queue[np.ndarray] = queue.Queue(maxsize=FEED_FRAMES)

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
        with self._lock:
            return self._segments_locked()

    def state(self) -> RecorderState:
        with self._lock:
            st = RecorderState(**self._state.__dict__)
            st.segments = len(self._segs)
            st.cache_bytes = sum(s.size for s in self._segs.values())
            st.held_events = len(self._holds)
            newest = max((s.mtime for s in self._segs.values() if s.mtime), default=None)
        st.last_segment_age_s = (
            max(0.0, (datetime.now(UTC) - newest).total_seconds()) if newest is not None else None
        )
        return st

    def hold(self, key: str, since: datetime) -> None:
        """Keep an open event's evidence until release(key): every segment from `since` on.

        For an event that goes on (a car parked for hours) the first `hold_head_s` are kept and the
        middle is let go: the clip is then its beginning and its end, and the cache stays bounded.
        """
        with self._lock:
            self._holds[key] = since

    def feed(self, image: np.ndarray) -> None:
        """A frame from the capture (BGR), for cameras the recorder cannot open; never blocks."""
        if not self.frames:
            return
        try:
            self._feed.put_nowait(image)
        except queue.Full:
            with self._lock:
                self._state.frames_dropped += 1

    def holds(self) -> dict[str, datetime]:
        with self._lock:
            return dict(self._holds)

    def take_holds(self, holds: dict[str, datetime]) -> None:
        with self._lock:
            self._holds.update(holds)

    def release(self, key: str) -> None:
        with self._lock:
            self._holds.pop(key, None)

    # -- the ffmpeg command -------------------------------------------------------------------

    def frames_command(self, width: int, height: int, session: int) -> list[str]:
        """Raw BGR frames on stdin, stamped by arrival, one cheap encode into the same segments."""
        seg = self.segment_s
        return [
            FFMPEG, "-hide_banner", "-loglevel", "error",
            "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{width}x{height}",
            "-use_wallclock_as_timestamps", "1", "-i", "pipe:0",
            "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-pix_fmt", "yuv420p",
            "-fps_mode", "passthrough", "-force_key_frames", f"expr:gte(t,n_forced*{seg:g})",
            "-f", "segment", "-segment_time", f"{seg:g}", "-segment_format", "mpegts",
            "-reset_timestamps", "1", str(self._pattern(session)),
        ]  # fmt: skip

    def _pattern(self, session: int) -> Path:
        return self.cache_dir / f"{self.camera.id}-{session:013d}-%06d.ts"

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
        if codec in COPYABLE:
            cmd += ["-c", "copy"]
        else:
            seg = self.segment_s
            cmd += [
                "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-pix_fmt", "yuv420p",
                "-force_key_frames", f"expr:gte(t,n_forced*{seg:g})",
            ]  # fmt: skip
        pattern = self._pattern(session)
        cmd += [
            "-f", "segment", "-segment_time", f"{self.segment_s:g}", "-segment_format", "mpegts",
            "-reset_timestamps", "1", str(pattern),
        ]  # fmt: skip
        return cmd

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
            session = int(time.time() * 1000)
            # A tmpfs cache can be emptied under us (reboot of a container, an operator's rm).
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            first: np.ndarray | None = None
            if self.frames:
                first = self._first_frame()
                if first is None:
                    continue  # stopping, or still waiting for the capture
                mode, codec = "frames", "rawvideo"
                cmd = self.frames_command(first.shape[1], first.shape[0], session)
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
                    target=self._write_frames, args=(proc, first), daemon=True, name=f"ffmpeg-in-{cam}"
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
            try:
                return self._feed.get(timeout=0.5)
            except queue.Empty:
                with self._lock:
                    self._state.last_error = self._state.last_error or "waiting for frames from the capture"
        return None

    def _write_frames(self, proc: subprocess.Popen[bytes], first: np.ndarray) -> None:
        """Feed ffmpeg until it ends; a frame of another size ends the session (ffmpeg restarts)."""
        assert proc.stdin is not None
        shape = first.shape
        image: np.ndarray | None = first
        try:
            while proc.poll() is None and not self._stop.is_set():
                if image is not None:
                    if image.shape != shape:
                        break
                    proc.stdin.write(np.ascontiguousarray(image, dtype=np.uint8).tobytes())
                try:
                    image = self._feed.get(timeout=0.5)
                except queue.Empty:
                    image = None
        except (BrokenPipeError, ValueError, OSError):
            pass  # ffmpeg went away; the monitor restarts it
        finally:
            with contextlib.suppress(OSError, ValueError):
                proc.stdin.close()  # end of input: ffmpeg closes its segment and exits

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
            stall_after = max(self.min_stall_s, self.stall_factor * self._longest_segment_s)
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
            line = _hide_password(raw.decode("utf-8", "replace").strip(), self.camera.record_source)
            if line:
                self._stderr.append(line)
                log.debug("ffmpeg camera=%s %s", self.camera.id, line)

    def _set(self, **kw: object) -> None:
        with self._lock:
            for k, v in kw.items():
                setattr(self._state, k, v)

    # -- the segment index --------------------------------------------------------------------

    def _scan(self, live_session: int | None = None) -> int:
        """Index new segment files, forget vanished ones; returns how many are new in the live session."""
        began = datetime.now(UTC)
        prefix = f"{self.camera.id}-"
        seen: dict[Path, os.stat_result] = {}
        try:
            with os.scandir(self.cache_dir) as it:
                for entry in it:
                    if entry.name.startswith(prefix) and entry.name.endswith(".ts"):
                        try:
                            seen[Path(entry.path)] = entry.stat()
                        except FileNotFoundError:
                            continue
        except FileNotFoundError:
            seen = {}  # the folder is gone, and with it every segment it held
        # A file first listed now was created after the previous listing began and before this one ended.
        listed = datetime.now(UTC)
        new = 0
        with self._lock:
            for path in [p for p in self._segs if p not in seen]:
                del self._segs[path]
            for path, st in seen.items():
                seg = self._segs.get(path)
                if seg is None:
                    m = _NAME_RE.match(path.name)
                    if m is None or m.group("cam") != self.camera.id:
                        continue  # not ours: never touched
                    session, index = int(m.group("session")), int(m.group("index"))
                    live = live_session is not None and session == live_session
                    bracket = (self._last_scan - _CLOCK_SLACK, listed) if live and self._last_scan else None
                    seg = self._segs[path] = _Seg(session, index, bracket)
                    if live:
                        new += 1
                        self._state.segments_written += 1
                        self._state.recording = True
                seg.size = st.st_size
                seg.mtime = datetime.fromtimestamp(st.st_mtime, UTC)
            self._last_scan = began
            segs = self._segments_locked()
            for s in segs:
                if s.complete:
                    self._longest_segment_s = max(
                        self._longest_segment_s, (s.end - s.start_lo).total_seconds()
                    )
        return new

    def _segments_locked(self) -> list[Segment]:
        items = sorted(self._segs.items(), key=lambda kv: (kv[1].session, kv[1].index))
        live = self._proc is not None and self._proc.poll() is None
        out: list[Segment] = []
        prev: _Seg | None = None
        for i, (path, seg) in enumerate(items):
            mtime = seg.mtime or datetime.now(UTC)
            if (
                prev is not None
                and prev.session == seg.session
                and prev.index == seg.index - 1
                and prev.mtime
            ):
                # Opened when its predecessor was closed; a few ms of slack for the two system calls.
                lo, hi = prev.mtime - _CLOSE_SLACK, prev.mtime + _CLOSE_SLACK
            elif seg.seen is not None:
                lo, hi = seg.seen
            else:
                lo = datetime.fromtimestamp(seg.session / 1000, UTC)
                hi = mtime
            # A file's times come from the kernel's coarse clock, a tick behind datetime.now().
            lo, hi = min(lo, mtime), min(hi, mtime + _CLOCK_SLACK)
            # The newest file of a running ffmpeg is still being written.
            complete = not (live and i == len(items) - 1)
            out.append(Segment(path, seg.session, lo, hi, mtime, complete, seg.size))
            prev = seg
        return out

    def _prune(self) -> None:
        now = datetime.now(UTC)
        with self._lock:
            window = now - timedelta(seconds=self.keep_s)
            heads = [(since, since + timedelta(seconds=self.hold_head_s)) for since in self._holds.values()]
            doomed = [
                s.path
                for s in self._segments_locked()
                if s.complete and s.end < window and not any(s.end >= a and s.start_lo <= b for a, b in heads)
            ]
        for path in doomed:
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("segment not pruned camera=%s path=%s error=%s", self.camera.id, path, exc)
                continue
            with self._lock:
                self._segs.pop(path, None)
                self._state.segments_pruned += 1


def _recording_of(cam: CameraConfig) -> tuple[object, ...]:
    """What a recorder is started with: a change in any of it restarts the recorder."""
    return (cam.record_source, cam.loop, cam.record, cam.hwaccel)


class Recording:
    """Every recorded camera of a device: one Recorder each, following config changes.

    A camera with `record.enabled: false` has none; a change of source, loop or record settings
    restarts its recorder; zones and rules do not concern it.
    """

    def __init__(self, storage: StorageConfig, paced: bool = True) -> None:
        self.storage = storage
        self.paced = paced
        self._lock = threading.Lock()
        self._recorders: dict[str, Recorder] = {}

    def apply(self, cameras: list[CameraConfig]) -> None:
        wanted = {c.id: c for c in cameras if c.record.enabled}
        held: dict[str, dict[str, datetime]] = {}
        with self._lock:
            for cid in list(self._recorders):
                old = self._recorders[cid].camera
                new = wanted.get(cid)
                if new is None or _recording_of(old) != _recording_of(new):
                    gone = self._recorders.pop(cid)
                    # Events open across the restart still need the segments already in the cache.
                    held[cid] = gone.holds()
                    gone.stop()
                    log.info(
                        "recording stopped camera=%s reason=%s", cid, "removed" if new is None else "changed"
                    )
            for cid, cam in wanted.items():
                if cid in self._recorders:
                    self._recorders[cid].camera = cam  # same recording; the config object stays current
                    continue
                try:
                    rec = Recorder(cam, cache_dir(self.storage, cid), paced=self.paced)
                    rec.take_holds(held.get(cid, {}))
                    rec.start()
                except RecorderError as exc:
                    # One camera that cannot be recorded must not cost the others their evidence.
                    log.error("recording not started camera=%s reason=%s", cid, exc)
                    continue
                self._recorders[cid] = rec

    def get(self, camera_id: str) -> Recorder | None:
        with self._lock:
            return self._recorders.get(camera_id)

    def states(self) -> dict[str, RecorderState]:
        with self._lock:
            recs = list(self._recorders.values())
        return {r.camera.id: r.state() for r in recs}

    def cache_bytes(self) -> int:
        return sum(s.cache_bytes for s in self.states().values())

    def stop(self) -> None:
        with self._lock:
            recs, self._recorders = list(self._recorders.values()), {}
        for r in recs:
            r.stop()

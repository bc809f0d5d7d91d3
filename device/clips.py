"""A clip per event: the recorded segments covering [start − pre, end + post], joined by copy.

The agent hands every event start (with its snapshot JPEG) and end to the clip maker; neither
call blocks. A start holds the camera's segments from start − pre so a long event cannot lose
its beginning to the cache pruning; an end schedules a cut for when the post-capture span has
been recorded, i.e. when a segment has begun after end + post. The cut is ffmpeg's concat
demuxer with `-c copy` and `-movflags +faststart` (a browser can play it while it downloads),
into one self-contained `{event_id}.mp4`, with a JSON sidecar (who, where, when, which rule,
model and config version, the MP4's SHA-256, size and ffprobe duration). Snapshot, clip and
sidecar then go into the durable upload queue; retention keeps the folder within budget.

Segment starts are known as an interval (device/recorder.py); a cut always takes the segment
whose start is surely before the span's start, so the clip covers the span and overshoots it by
at most about one segment at each end.

A camera that records another stream than it detects on (a main stream, inputs with roles) also
gets a crop of the violating object from the high-resolution picture: once the segment holding
the event's first moment is closed, ffmpeg decodes that one frame from it (from the segment's
keyframe on, hardware decoding when the recorder has it), and the box of the alert, with a
margin, is cut out of it into `{event_id}-crop.jpg` (upload kind `crop`). The alert's own
snapshot stays the detect frame: it goes out with the alert, within the second.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict

from device.errors import DeviceError
from device.ffmpeg import FFMPEG, FFPROBE
from device.recorder import Recorder
from device.retention import Retention
from device.segment_cache import Segment
from device.uploader import UploadQueue, sha256_file
from matthan_wire.config import DeviceIdentity, StorageConfig
from matthan_wire.payloads import Alert
from matthan_wire.timeutil import UtcDateTime, utc_now

if TYPE_CHECKING:
    from device.evidence import EvidenceSigner

log = logging.getLogger(__name__)


class ClipError(DeviceError):
    """A clip that could not be cut from the recorded segments."""


class ClipSidecar(BaseModel):
    """What a clip shows and how to check it; travels next to the MP4 as `{event_id}.json`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    event_id: str
    device_id: str
    ward: str
    camera_id: str
    zone: str | None
    rule: str
    type: str
    category: str
    labels: list[str]
    started_at: UtcDateTime
    ended_at: UtcDateTime
    # The span asked for (event ± pre/post) and the span the joined segments cover (estimated).
    clip_start: UtcDateTime
    clip_end: UtcDateTime
    covered_start: UtcDateTime
    covered_end: UtcDateTime
    duration_s: float
    gap_s: float = 0.0
    segments: int
    file: str
    sha256: str
    size: int
    codec: str | None
    model: str | None
    config_version: int | None
    made_at: UtcDateTime


@dataclass
class ClipStats:
    pending: int = 0
    clips_made: int = 0
    clips_failed: int = 0
    clips_missing: int = 0  # nothing recorded for the span
    clips_short: int = 0  # cut with part of the span missing (recording started late or was down)
    snapshots_saved: int = 0
    crops_saved: int = 0
    crops_missing: int = 0  # the high-resolution frame of the event's start could not be had
    manifests_signed: int = 0
    manifests_failed: int = 0
    last_error: str | None = None


CROP_MARGIN = 0.15  # of the box's size on each side: the object's surroundings identify it too
CROP_MIN_PX = 96
CROP_JPEG_QUALITY = 92


@dataclass
class _Crop:
    alert: Alert
    give_up_at: float  # monotonic


def crop_box(bbox: list[float], width: int, height: int) -> tuple[int, int, int, int]:
    """The pixel rectangle (x1, y1, x2, y2) to cut for a normalised box: a margin around it, at
    least CROP_MIN_PX on a side, inside the picture."""
    x1, y1, x2, y2 = bbox
    mx, my = (x2 - x1) * CROP_MARGIN, (y2 - y1) * CROP_MARGIN
    px1, px2 = int((x1 - mx) * width), int(round((x2 + mx) * width))
    py1, py2 = int((y1 - my) * height), int(round((y2 + my) * height))
    grow_x, grow_y = max(0, CROP_MIN_PX - (px2 - px1)), max(0, CROP_MIN_PX - (py2 - py1))
    px1, px2 = px1 - grow_x // 2, px2 + grow_x - grow_x // 2
    py1, py2 = py1 - grow_y // 2, py2 + grow_y - grow_y // 2
    px1, py1 = max(0, px1), max(0, py1)
    return px1, py1, min(width, max(px2, px1 + 1)), min(height, max(py2, py1 + 1))


def frame_at(segment: Segment, at: datetime, hwaccel: str | None = None) -> np.ndarray | None:
    """The decoded picture of `segment` at wall time `at` (BGR), None when ffmpeg cannot give it."""
    offset = max(0.0, (at - segment.start).total_seconds())
    cmd = [FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin"]
    if hwaccel is not None:
        cmd += ["-hwaccel", hwaccel]
    # -ss after -i: decoded from the segment's first keyframe up to the exact frame.
    cmd += ["-i", str(segment.path), "-ss", f"{offset:.3f}", "-frames:v", "1", "-f", "image2pipe"]
    cmd += ["-c:v", "png", "pipe:1"]
    try:
        out = subprocess.run(cmd, capture_output=True, timeout=30, check=False)
    except subprocess.TimeoutExpired:
        return None
    if out.returncode != 0 or not out.stdout:
        # A hardware decoder that refuses this stream: once more in software.
        return frame_at(segment, at) if hwaccel is not None else None
    image = cv2.imdecode(np.frombuffer(out.stdout, np.uint8), cv2.IMREAD_COLOR)
    return image if image is not None and image.size else None


@dataclass
class _Job:
    alert: Alert
    start: datetime
    end: datetime
    give_up_at: float  # monotonic: cut with what there is, the recorder is not delivering


def probe_media(path: Path) -> tuple[float, str | None]:
    """(duration in seconds, video codec) as ffprobe reads the file; ClipError if it cannot."""
    cmd = [FFPROBE, "-v", "error", "-show_entries", "format=duration:stream=codec_name,codec_type"]
    out = subprocess.run([*cmd, "-of", "json", str(path)], capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise ClipError(f"{path.name}: ffprobe cannot read it: {out.stderr.strip()[-300:]}")
    info = json.loads(out.stdout or "{}")
    try:
        duration = float(info["format"]["duration"])
    except (KeyError, TypeError, ValueError):
        raise ClipError(f"{path.name}: ffprobe reports no duration") from None
    codec = next(
        (s.get("codec_name") for s in info.get("streams", []) if s.get("codec_type") == "video"), None
    )
    return duration, codec


def select_segments(segments: list[Segment], start: datetime, end: datetime) -> tuple[list[Segment], bool]:
    """The segments that together cover [start, end], and whether the span's end has been recorded.

    Segments are in recording order. The end is recorded once some segment surely began at or after
    `end` (everything before it is then closed). The first segment taken is the last one that surely
    began at or before `start`.
    """
    ordered = list(segments)
    cut = next((i for i, s in enumerate(ordered) if s.start_lo >= end), None)
    ready = cut is not None
    candidates = ordered[:cut] if cut is not None else [s for s in ordered if s.complete]
    candidates = [s for s in candidates if s.end > start]
    if not candidates:
        return [], ready
    first = 0
    for i, s in enumerate(candidates):
        if s.start_hi <= start:
            first = i
    return candidates[first:], ready


def concat_copy(segments: list[Path], out: Path, workdir: Path) -> None:
    """Join segments into one MP4 by stream copy; `out` appears only when complete (atomic rename)."""
    listing = workdir / f".{out.stem}.concat.txt"
    part = out.with_name(out.name + ".part")
    # The concat demuxer's list syntax: one quoted path per line, single quotes escaped.
    listing.write_text("".join("file '" + str(p).replace("'", "'\\''") + "'\n" for p in segments))
    cmd = [FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-f", "concat", "-safe", "0"]
    cmd += ["-i", str(listing), "-map", "0", "-c", "copy", "-movflags", "+faststart", "-f", "mp4", str(part)]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if res.returncode != 0 or not part.exists():
            raise ClipError(f"{out.name}: ffmpeg concat failed: {res.stderr.strip()[-300:]}")
        _fsync_file(part)
        os.replace(part, out)
        _fsync_dir(out.parent)
    except subprocess.TimeoutExpired:
        raise ClipError(f"{out.name}: ffmpeg concat took over 120s") from None
    finally:
        listing.unlink(missing_ok=True)
        part.unlink(missing_ok=True)


def write_atomic(path: Path, data: bytes) -> None:
    part = path.with_name(path.name + ".part")
    with part.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(part, path)
    _fsync_dir(path.parent)


def _fsync_file(path: Path) -> None:
    with path.open("rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def media_dir(storage: StorageConfig) -> Path:
    """Where clips, snapshots and sidecars wait for upload (persistent storage, under the budget)."""
    return Path(storage.path) / "media"


class ClipMaker:
    """Cuts, describes and queues one clip per event; a single worker thread does the disk work."""

    def __init__(
        self,
        device: DeviceIdentity,
        clips_dir: Path,
        recorder_for: Callable[[str], Recorder | None],
        uploads: UploadQueue,
        *,
        model: str | None = None,
        config_version: Callable[[], int | None] = lambda: None,
        retention: Retention | None = None,
        signer: EvidenceSigner | None = None,
        give_up_after_s: float = 30.0,
        budget_every_s: float = 60.0,
    ) -> None:
        self.device = device
        self.clips_dir = Path(clips_dir)
        self._recorder_for = recorder_for
        self._uploads = uploads
        self._model = model
        self._config_version = config_version
        self._retention = retention
        self._signer = signer
        self._give_up_after_s = give_up_after_s
        self._budget_every_s = budget_every_s
        self._next_budget_check = 0.0
        self._inbox: queue.Queue[tuple[str, Alert, bytes | None]] = queue.Queue(maxsize=10_000)
        self._jobs: dict[str, _Job] = {}
        self._crops: dict[str, _Crop] = {}
        self._unhandled = 0  # handed over, not yet taken from the inbox and dealt with
        self._lock = threading.Lock()
        self._stats = ClipStats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start before the recorders: event ends saved by a previous run hold their segments first."""
        try:
            self.clips_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ClipError(f"cannot create the clips folder {self.clips_dir}: {exc}") from None
        for text in self._uploads.jobs():
            try:
                self._schedule(Alert.model_validate_json(text), save=False)
            except Exception as exc:  # a damaged row must not keep the agent from starting
                log.error("saved clip job unreadable, dropped error=%s", exc)
                continue
        if self._jobs:
            log.info("clip jobs restored count=%d", len(self._jobs))
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="clip-maker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    # -- called by the agent (never blocks) ------------------------------------------------------

    def event_started(self, alert: Alert, snapshot_jpeg: bytes | None) -> None:
        rec = self._recorder_for(alert.camera_id)
        if rec is not None and alert.type != "camera_offline":
            rec.hold(alert.event_id, alert.started_at - timedelta(seconds=rec.camera.record.pre_capture_s))
        self._put("start", alert, snapshot_jpeg)

    def event_ended(self, alert: Alert) -> None:
        self._put("end", alert, None)

    def handle(self, alert: Alert, snapshot_jpeg: bytes | None = None) -> None:
        """Either phase: what the agent calls with each DetectedEvent (alert, snapshot_jpeg)."""
        if alert.phase == "start":
            self.event_started(alert, snapshot_jpeg)
        else:
            self.event_ended(alert)

    def stats(self) -> ClipStats:
        with self._lock:
            st = ClipStats(**self._stats.__dict__)
            st.pending = len(self._jobs) + len(self._crops) + self._unhandled
        return st

    def wait_idle(self, timeout: float) -> bool:
        """True once every handed-over event has been cut or given up (tests, orderly shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.stats().pending == 0:
                return True
            time.sleep(0.1)
        return False

    def _put(self, what: str, alert: Alert, jpeg: bytes | None) -> None:
        try:
            with self._lock:
                # Counted before the worker can take it, so pending never reads 0 in between.
                self._unhandled += 1
                self._inbox.put_nowait((what, alert, jpeg))
        except queue.Full:
            with self._lock:
                self._unhandled -= 1
            with self._lock:
                self._stats.clips_failed += 1
            log.error("clip request dropped event=%s reason=clip maker queue full", alert.event_id)

    # -- the worker ------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                what, alert, jpeg = self._inbox.get(timeout=0.2)
            except queue.Empty:
                pass
            else:
                try:
                    if what == "start":
                        self._save_snapshot(alert, jpeg)
                        self._schedule_crop(alert)
                    else:
                        self._schedule(alert)
                except Exception as exc:  # one bad event must not stop the clips of the others
                    self._fail(alert.event_id, exc)
                finally:
                    with self._lock:
                        self._unhandled -= 1
                continue  # drain the inbox before cutting
            for event_id in list(self._crops):
                try:
                    if self._try_crop(self._crops[event_id]):
                        del self._crops[event_id]
                except Exception as exc:  # one bad frame must not stop the others' crops and clips
                    del self._crops[event_id]
                    self._fail(event_id, exc)
            for event_id in list(self._jobs):
                job = self._jobs[event_id]
                try:
                    if self._try_cut(job):
                        del self._jobs[event_id]
                        self._uploads.drop_job(event_id)
                except Exception as exc:
                    del self._jobs[event_id]
                    self._uploads.drop_job(event_id)
                    self._release(job.alert)
                    self._fail(event_id, exc)
            if time.monotonic() >= self._next_budget_check:
                # Free space also shrinks for reasons of its own (logs, other files): look regularly.
                self._next_budget_check = time.monotonic() + self._budget_every_s
                self._enforce_budget()

    def _fail(self, event_id: str, exc: Exception) -> None:
        with self._lock:
            self._stats.clips_failed += 1
            self._stats.last_error = f"{event_id}: {exc}"
        log.error("clip failed event=%s error=%s", event_id, exc)

    def _save_snapshot(self, alert: Alert, jpeg: bytes | None) -> None:
        if not jpeg:
            return
        path = self.clips_dir / f"{alert.event_id}.jpg"
        write_atomic(path, jpeg)
        self._uploads.add(alert.event_id, "snapshot", path)
        with self._lock:
            self._stats.snapshots_saved += 1
        self._enforce_budget()

    def _schedule_crop(self, alert: Alert) -> None:
        rec = self._recorder_for(alert.camera_id)
        if rec is None or alert.bbox is None or alert.type == "camera_offline":
            return
        if rec.camera.record_source == rec.camera.detect_source:
            return  # the snapshot already is the recorded picture
        wait = max(0.0, (alert.started_at - utc_now()).total_seconds())
        give_up = time.monotonic() + wait + self._give_up_after_s + 3 * rec.segment_s
        self._crops[alert.event_id] = _Crop(alert, give_up)

    def _try_crop(self, job: _Crop) -> bool:
        """Done (True) once the crop is saved or cannot be had; False: its segment is not closed yet."""
        a = job.alert
        rec = self._recorder_for(a.camera_id)
        if rec is None or a.bbox is None:
            return True
        segments = rec.segments()
        # The segment that surely began at or before the moment, and is closed (a later one began).
        holding = [s for s in segments if s.complete and s.start_lo <= a.started_at <= s.end]
        if not holding:
            if time.monotonic() < job.give_up_at and not rec.state().finished:
                return False
            with self._lock:
                self._stats.crops_missing += 1
            log.warning(
                "crop missing event=%s camera=%s reason=no segment holds its start", a.event_id, a.camera_id
            )
            return True
        image = frame_at(holding[-1], a.started_at, rec.hwaccel)
        if image is None:
            with self._lock:
                self._stats.crops_missing += 1
            log.warning("crop missing event=%s camera=%s reason=frame not decoded", a.event_id, a.camera_id)
            return True
        h, w = image.shape[:2]
        x1, y1, x2, y2 = crop_box(list(a.bbox), w, h)
        ok, buf = cv2.imencode(".jpg", image[y1:y2, x1:x2], [cv2.IMWRITE_JPEG_QUALITY, CROP_JPEG_QUALITY])
        if not ok:
            raise ClipError(f"{a.event_id}: JPEG encoding of the crop failed")
        path = self.clips_dir / f"{a.event_id}-crop.jpg"
        write_atomic(path, buf.tobytes())
        self._uploads.add(a.event_id, "crop", path)
        with self._lock:
            self._stats.crops_saved += 1
        log.info(
            "crop saved event=%s camera=%s frame=%dx%d box=%d,%d,%d,%d",
            a.event_id, a.camera_id, w, h, x1, y1, x2, y2,
        )  # fmt: skip
        self._enforce_budget()
        return True

    def _schedule(self, alert: Alert, save: bool = True) -> None:
        rec = self._recorder_for(alert.camera_id)
        if alert.type == "camera_offline" or rec is None:
            self._uploads.drop_job(alert.event_id)
            if alert.type != "camera_offline":
                self._sign_evidence(alert)  # no clip, but the snapshot is still evidence
            return  # nothing was recorded for this camera
        if save:
            self._uploads.save_job(alert.event_id, alert.model_dump_json())
        assert alert.ended_at is not None
        if alert.clip is not None:
            start, end = alert.clip.start, alert.clip.end
        else:
            start = alert.started_at - timedelta(seconds=rec.camera.record.pre_capture_s)
            end = alert.ended_at + timedelta(seconds=rec.camera.record.post_capture_s)
        # An end whose start we never saw (agent restarted meanwhile) still deserves its segments.
        rec.hold(alert.event_id, start)
        # A long event keeps only its first minutes held (recorder.hold); its end is held from what
        # the cache still has, on until the post-capture is cut.
        tail = max(start, min(alert.ended_at, utc_now()) - timedelta(seconds=rec.keep_s))
        rec.hold(f"{alert.event_id}/tail", tail)
        wait = max(0.0, (end - utc_now()).total_seconds())
        give_up = time.monotonic() + wait + self._give_up_after_s + 3 * rec.segment_s
        self._jobs[alert.event_id] = _Job(alert, start, end, give_up)

    def _release(self, alert: Alert) -> None:
        rec = self._recorder_for(alert.camera_id)
        if rec is not None:
            rec.release(alert.event_id)
            rec.release(f"{alert.event_id}/tail")

    def _try_cut(self, job: _Job) -> bool:
        rec = self._recorder_for(job.alert.camera_id)
        if rec is None:
            return True
        chosen, ready = select_segments(rec.segments(), job.start, job.end)
        if not ready:
            state = rec.state()
            if not (state.finished or time.monotonic() >= job.give_up_at):
                return False
            # The recorder will not deliver the rest: the part we have is still evidence.
        event_id = job.alert.event_id
        if not chosen:
            with self._lock:
                self._stats.clips_missing += 1
            log.error(
                "clip missing event=%s camera=%s reason=no segments recorded for the span",
                event_id,
                rec.camera.id,
            )
            self._release(job.alert)
            self._sign_evidence(job.alert)
            return True
        self._cut(job, chosen, complete=ready)
        self._release(job.alert)
        return True

    def _cut(self, job: _Job, chosen: list[Segment], complete: bool) -> None:
        a = job.alert
        out = self.clips_dir / f"{a.event_id}.mp4"
        concat_copy([s.path for s in chosen], out, self.clips_dir)
        duration, codec = probe_media(out)
        size = out.stat().st_size
        digest = sha256_file(out)
        covered_start, covered_end = chosen[0].start, chosen[-1].end
        # Wall time the segments span minus the video they hold: the let-go middle of a long event,
        # or a time the recorder was down.
        gap_s = max(0.0, (covered_end - covered_start).total_seconds() - duration)
        short = not complete or chosen[0].start_hi > job.start
        assert a.ended_at is not None
        sidecar = ClipSidecar(
            event_id=a.event_id,
            device_id=a.device_id,
            ward=a.ward,
            camera_id=a.camera_id,
            zone=a.zone,
            rule=a.rule,
            type=a.type,
            category=a.category,
            labels=list(a.labels),
            started_at=a.started_at,
            ended_at=a.ended_at,
            clip_start=job.start,
            clip_end=job.end,
            covered_start=covered_start,
            covered_end=covered_end,
            duration_s=round(duration, 3),
            gap_s=round(gap_s, 1),
            segments=len(chosen),
            file=out.name,
            sha256=digest,
            size=size,
            codec=codec,
            model=self._model,
            config_version=self._config_version(),
            made_at=datetime.now(UTC),
        )
        side = self.clips_dir / f"{a.event_id}.json"
        write_atomic(side, sidecar.model_dump_json(indent=2).encode())
        self._uploads.add(a.event_id, "clip", out, sha256=digest)
        self._uploads.add(a.event_id, "sidecar", side)
        self._sign_evidence(a, clip=(digest, size), span=(job.start, job.end))
        with self._lock:
            self._stats.clips_made += 1
            self._stats.clips_short += short
        log.info(
            "clip made event=%s camera=%s duration_s=%.2f gap_s=%.1f segments=%d size=%d short=%s",
            a.event_id, a.camera_id, duration, gap_s, len(chosen), size, short,
        )  # fmt: skip
        self._enforce_budget()

    def _sign_evidence(
        self, alert: Alert, clip: tuple[str, int] | None = None, span: tuple[datetime, datetime] | None = None
    ) -> None:
        """The event's signed manifest over what this device holds for it, queued for upload."""
        if self._signer is None:
            return
        try:
            files: dict[str, tuple[str, int]] = {}
            if clip is not None:
                files["clip"] = clip
            for kind, name in (("snapshot", f"{alert.event_id}.jpg"), ("sidecar", f"{alert.event_id}.json")):
                path = self.clips_dir / name
                if (kind == "sidecar" and clip is None) or not path.is_file():
                    continue
                files[kind] = (sha256_file(path), path.stat().st_size)
            manifest = self._signer.manifest(alert, files, span)
            path = self._signer.write(manifest, self.clips_dir)
            self._uploads.add(alert.event_id, "manifest", path)
        except Exception as exc:  # unsigned evidence is worse, but losing the clip would be worse still
            with self._lock:
                self._stats.manifests_failed += 1
            log.error("manifest not signed event=%s error=%s", alert.event_id, exc)
            return
        with self._lock:
            self._stats.manifests_signed += 1

    def _enforce_budget(self) -> None:
        if self._retention is not None:
            self._retention.enforce()

"""A clip per event: the clip maker takes every event start and end from the agent and, on one
worker thread, turns them into evidence files queued for upload.

The agent hands every event start (with its snapshot JPEG) and end to the clip maker; neither
call blocks. A start holds the camera's segments from start − pre so a long event cannot lose
its beginning to the cache pruning; an end schedules a cut for when the post-capture span has
been recorded, i.e. when a segment has begun after end + post. The cut and its sidecar are
device/clip_cut.py; a camera with a separate record stream also gets a crop of the violating
object (device/crops.py). Snapshot, crop, clip, sidecar and the signed manifest then go into the
durable upload queue; retention keeps the folder within budget.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from device.clip_cut import ClipError, cut_clip, select_segments
from device.crops import crop_jpeg, frame_at, holding_segment
from device.files import write_atomic
from device.recorder import Recorder
from device.retention import Retention
from device.segment_cache import Segment
from device.upload_queue import UploadQueue
from matthan.hashing import sha256_file
from matthan.worker_thread import WorkerThread
from matthan_wire.config import DeviceIdentity, StorageConfig
from matthan_wire.payloads import Alert
from matthan_wire.timeutil import utc_now

if TYPE_CHECKING:
    from device.evidence import EvidenceSigner

log = logging.getLogger(__name__)


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


@dataclass
class _Crop:
    alert: Alert
    give_up_at: float  # monotonic


@dataclass
class _Job:
    alert: Alert
    start: datetime
    end: datetime
    give_up_at: float  # monotonic: cut with what there is, the recorder is not delivering


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
        self._worker = WorkerThread("clip-maker", self._step, stop_timeout_s=10.0)

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
        self._worker.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._worker.stop(timeout)

    @property
    def alive(self) -> bool:
        return self._worker.alive

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
                self._stats.clips_failed += 1
            log.error("clip request dropped event=%s reason=clip maker queue full", alert.event_id)

    # -- the worker ------------------------------------------------------------------------------

    def _step(self) -> None:
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
            return  # drain the inbox before cutting
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

    def _try_crop(self, job: _Crop, last_chance: bool = False) -> bool:
        """Done (True) once the crop is saved or cannot be had; False: its segment is not closed yet."""
        a = job.alert
        rec = self._recorder_for(a.camera_id)
        if rec is None or a.bbox is None:
            return True
        segment = holding_segment(rec.segments(), a.started_at)
        if segment is None:
            if not last_chance and time.monotonic() < job.give_up_at and not rec.state().finished:
                return False
            self._crop_missing(a, "no segment holds its start")
            return True
        image = frame_at(segment, a.started_at, rec.hwaccel)
        if image is None:
            self._crop_missing(a, "frame not decoded")
            return True
        h, w = image.shape[:2]
        crop = crop_jpeg(image, list(a.bbox))
        if crop is None:
            raise ClipError(f"{a.event_id}: JPEG encoding of the crop failed")
        jpeg, (x1, y1, x2, y2) = crop
        path = self._crop_path(a.event_id)
        write_atomic(path, jpeg)
        self._uploads.add(a.event_id, "crop", path)
        with self._lock:
            self._stats.crops_saved += 1
        log.info(
            "crop saved event=%s camera=%s frame=%dx%d box=%d,%d,%d,%d",
            a.event_id, a.camera_id, w, h, x1, y1, x2, y2,
        )  # fmt: skip
        self._enforce_budget()
        return True

    def _settle_crop(self, event_id: str) -> None:
        """The crop made now, or known to be missing, before the manifest is signed: it must name
        the crop, the picture that shows a face or a plate. Signing comes once the clip's span is
        recorded or the recorder is given up on; the segment holding the event's start is closed by
        then (segments come in order), so a crop not had now never will be, and nothing waits."""
        job = self._crops.pop(event_id, None)
        if job is None:
            return
        try:
            self._try_crop(job, last_chance=True)
        except Exception as exc:  # the crop is lost; the manifest over the rest is still due
            self._fail(event_id, exc)

    def _crop_path(self, event_id: str) -> Path:
        return self.clips_dir / f"{event_id}-crop.jpg"

    def _crop_missing(self, a: Alert, reason: str) -> None:
        with self._lock:
            self._stats.crops_missing += 1
        log.warning("crop missing event=%s camera=%s reason=%s", a.event_id, a.camera_id, reason)

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
        span = (job.start, job.end)
        clip = cut_clip(
            a, span, chosen, complete, self.clips_dir, model=self._model, config_version=self._config_version
        )
        self._uploads.add(a.event_id, "clip", clip.path, sha256=clip.sha256)
        self._uploads.add(a.event_id, "sidecar", clip.sidecar)
        self._sign_evidence(a, clip=(clip.sha256, clip.size), span=span)
        with self._lock:
            self._stats.clips_made += 1
            self._stats.clips_short += clip.short
        log.info(
            "clip made event=%s camera=%s duration_s=%.2f gap_s=%.1f segments=%d size=%d short=%s",
            a.event_id, a.camera_id, clip.duration_s, clip.gap_s, clip.segments, clip.size, clip.short,
        )  # fmt: skip
        self._enforce_budget()

    def _sign_evidence(
        self, alert: Alert, clip: tuple[str, int] | None = None, span: tuple[datetime, datetime] | None = None
    ) -> None:
        """The event's signed manifest over what this device holds for it, queued for upload: the
        clip, and the snapshot, crop and sidecar whose files exist (a crop that could not be had is
        not named; one still pending is settled first)."""
        self._settle_crop(alert.event_id)
        if self._signer is None:
            return
        try:
            files: dict[str, tuple[str, int]] = {}
            if clip is not None:
                files["clip"] = clip
            named = (
                ("snapshot", f"{alert.event_id}.jpg"),
                ("crop", self._crop_path(alert.event_id).name),
                ("sidecar", f"{alert.event_id}.json"),
            )
            for kind, name in named:
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

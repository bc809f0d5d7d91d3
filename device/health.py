"""Device health every `health.interval_s`: a QoS 0 message, latest value wins, never through the outbox.

Health is a gauge, not a record: a missed one is replaced by the next (docs/lessons.md #9: latest-value
wins is right for health, wrong for alerts), so it is published only while the link is up and is
never queued.
"""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil  # type: ignore[import-untyped]

from device.camera_worker import CameraStats
from device.outbox import OutboxStats
from matthan import __version__
from matthan.worker_thread import WorkerThread
from matthan_wire import CameraHealth, Health, utc_now

log = logging.getLogger("matthan.device.health")

THERMAL = Path("/sys/class/thermal")
# A camera needs this long running before fps against expected says anything about the link.
QUALITY_AFTER_S = 10.0


@dataclass(frozen=True)
class UploadView:
    """What the uploader (device/uploader.py) reports, when one is configured."""

    backlog: int
    backlog_bytes: int
    oldest_age_s: float | None
    evicted_unconfirmed_total: int = 0


@dataclass(frozen=True)
class CameraView:
    id: str
    stats: CameraStats | None  # None: configured but not running (failed to start)
    running_s: float
    recording: bool | None = None  # None: not recorded


def cpu_temp_c(root: Path = THERMAL) -> float | None:
    """The SoC temperature from /sys/class/thermal (a Pi's cpu-thermal zone), None when absent."""
    zones = sorted(root.glob("thermal_zone*"))
    best: float | None = None
    for zone in zones:
        try:
            kind = (zone / "type").read_text().strip().lower()
            milli = int((zone / "temp").read_text().strip())
        except (OSError, ValueError):
            continue
        value = round(milli / 1000.0, 1)
        if "cpu" in kind or "soc" in kind:
            return value
        if best is None:
            best = value
    return best


def camera_health(view: CameraView) -> CameraHealth:
    s = view.stats
    if s is None:
        return CameraHealth(
            id=view.id, stream_up=False, fps_in=0.0, fps_detect=0.0, detect_ms=None, last_frame_age_s=None,
            recording=view.recording,
        )  # fmt: skip
    quality = None
    if s.expected_fps and view.running_s >= QUALITY_AFTER_S:
        quality = round(min(1.0, max(0.0, s.fps_in / s.expected_fps)), 3)
    return CameraHealth(
        id=view.id,
        stream_up=s.stream_up,
        fps_in=max(0.0, s.fps_in),
        fps_detect=max(0.0, s.fps_detect),
        detect_ms=s.detect_ms,
        last_frame_age_s=s.last_frame_age_s,
        expected_fps=s.expected_fps,
        reconnects_1h=s.reconnects_1h,
        stalls_1h=s.stalls_1h,
        quality=quality,
        detector_runs_saved=s.detector_runs_saved,
        recording=view.recording,
        tamper=s.tamper,
    )


class HealthMonitor:
    """Builds Health from the agent's parts and publishes it on a timer."""

    def __init__(
        self,
        device_id: str,
        ward: str,
        storage_path: Path,
        *,
        outbox: Callable[[], OutboxStats],
        cameras: Callable[[], list[CameraView]],
        config_version: Callable[[], int | None],
        model: str | None,
        publish: Callable[[Health], bool],
        interval_s: float = 30.0,
        uploads: Callable[[], UploadView] | None = None,
        thermal_root: Path = THERMAL,
    ) -> None:
        self.device_id = device_id
        self.ward = ward
        self.storage_path = storage_path
        self.interval_s = interval_s
        self._outbox = outbox
        self._cameras = cameras
        self._config_version = config_version
        self._model = model
        self._publish = publish
        self._uploads = uploads
        self._thermal_root = thermal_root
        self._started = time.monotonic()
        self._proc = psutil.Process()
        self._proc.cpu_percent(None)  # the first reading is meaningless; prime it
        psutil.cpu_percent(None)
        self._wake = threading.Event()
        self._worker = WorkerThread("health", self._step, wake=self._wake.set)
        self.sent = 0
        self.skipped = 0  # no connection: dropped, the next report replaces it

    def snapshot(self) -> Health:
        ob = self._outbox()
        up = self._uploads() if self._uploads is not None else UploadView(0, 0, None)
        try:
            disk_free = psutil.disk_usage(str(self.storage_path)).free / 2**20
        except OSError:
            disk_free = 0.0
        return Health(
            device_id=self.device_id,
            ward=self.ward,
            at=utc_now(),
            uptime_s=round(time.monotonic() - self._started, 1),
            cpu_pct=round(psutil.cpu_percent(None), 1),
            # The agent's own footprint: what an operator compares across devices and releases.
            mem_mb=round(self._proc.memory_info().rss / 2**20, 1),
            disk_free_mb=round(disk_free, 1),
            temp_c=cpu_temp_c(self._thermal_root),
            outbox_depth=ob.depth,
            upload_backlog=up.backlog,
            config_version=self._config_version(),
            model=self._model,
            cameras=[camera_health(v) for v in self._cameras()],
            alerts_total=ob.alerts_total,
            alerts_acked_total=ob.alerts_acked_total,
            outbox_dropped_total=ob.dropped_total,
            upload_backlog_bytes=up.backlog_bytes,
            upload_oldest_age_s=up.oldest_age_s,
            clips_evicted_unconfirmed_total=up.evicted_unconfirmed_total,
            agent_version=__version__,
            outbox_resends_1h=ob.resends_1h,
            outbox_oldest_age_s=ob.oldest_age_s,
        )

    def start(self) -> None:
        self._worker.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._worker.stop(timeout)

    def send_now(self) -> None:
        self._wake.set()

    def _step(self) -> None:
        try:
            if self._publish(self.snapshot()):
                self.sent += 1
            else:
                self.skipped += 1
        except Exception:  # health must never take the agent down
            log.exception("health report failed")
        if not self._worker.stopping.is_set():
            self._wake.wait(self.interval_s)
        self._wake.clear()

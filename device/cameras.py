"""The camera workers of one device: started, swapped for a new site as one step, restarted one by
one, and observed (stats, health views, the offline watch). The agent owns one of these."""

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from device.camera_worker import CameraStats, CameraWorker
from device.detector import NotShareable
from device.errors import DeviceError
from device.events import DetectedEvent
from device.frames import Frame
from device.health import CameraView
from device.offline import OfflineWatch
from device.shared_detector import SharedDetector
from device.site_check import needs_restart
from matthan_wire.config import CameraConfig, DeviceIdentity, ModelConfig

log = logging.getLogger("matthan.device.agent")

FrameHook = Callable[..., None]


class Cameras:
    def __init__(
        self,
        device: DeviceIdentity,
        model: ModelConfig,
        on_event: Callable[[DetectedEvent], None],
        next_seq: Callable[[], int],
        frame_hook: Callable[[str], FrameHook | None],
        offline: OfflineWatch,
        tamper_dir: Path,
    ) -> None:
        self.device = device
        self.model = model
        self.workers: dict[str, CameraWorker] = {}
        # Held by the agent too while it swaps its config, so both change as one step.
        self.lock = threading.RLock()
        self._started: dict[str, float] = {}
        self._on_event = on_event
        self._next_seq = next_seq
        self._frame_hook = frame_hook
        self._offline = offline
        self._tamper_dir = tamper_dir
        self.detector: SharedDetector | None = None  # one interpreter for every camera, from start()

    def start(self, cameras: list[CameraConfig]) -> None:
        self.detector = shared_detector(self.model)
        for cam in cameras:
            self.workers[cam.id] = self._start_worker(cam)

    def stop(self) -> None:
        with self.lock:
            for cam_id, worker in reversed(list(self.workers.items())):
                worker.stop()
                log.info("camera stopped device=%s camera=%s", self.device.id, cam_id)
            self.workers.clear()
        if self.detector is not None:
            self.detector.stop()
            self.detector = None

    def apply(self, old_cameras: list[CameraConfig], new_cameras: list[CameraConfig]) -> None:
        """Start what is new first; if anything fails, stop those and raise, having changed nothing;
        then retire what is replaced and hot-reload the rest."""
        with self.lock:
            old = {c.id: c for c in old_cameras}
            new = {c.id: c for c in new_cameras}
            fresh: dict[str, CameraWorker] = {}
            try:
                for cid, cam in new.items():
                    if cid not in old or needs_restart(old[cid], cam):
                        fresh[cid] = self._start_worker(cam)
            except DeviceError:
                for w in fresh.values():
                    w.stop()
                raise
            for cid in old:
                if cid not in new:
                    self.workers.pop(cid).stop()
                    self._offline.forget(cid)
                    log.info("camera removed device=%s camera=%s", self.device.id, cid)
                elif cid in fresh:
                    self.workers.pop(cid).stop()
                    log.info("camera restarted for a new source device=%s camera=%s", self.device.id, cid)
            for cid, cam in new.items():
                if cid in fresh:
                    self.workers[cid] = fresh[cid]
                elif cam != old[cid]:
                    self.workers[cid].update_camera(cam)
                    log.info("camera reloaded (zones/rules) device=%s camera=%s", self.device.id, cid)

    def restart(self, cam: CameraConfig) -> None:
        with self.lock:
            fresh = self._start_worker(cam)
            self.workers.pop(cam.id).stop()
            self.workers[cam.id] = fresh
        log.info("camera restarted device=%s camera=%s", self.device.id, cam.id)

    def latest_frame(self, camera_id: str) -> Frame | None:
        with self.lock:
            w = self.workers.get(camera_id)
        return w.latest_frame() if w is not None else None

    def confirm_view(self, camera_id: str) -> str:
        """Make the camera's current view its tamper reference (the confirm-view command)."""
        with self.lock:
            w = self.workers.get(camera_id)
        if w is None:
            raise DeviceError(f"camera {camera_id} is not running")
        return w.confirm_view()

    def stats(self) -> dict[str, CameraStats]:
        with self.lock:
            return {cid: w.stats() for cid, w in self.workers.items()}

    def views(
        self, cameras: list[CameraConfig], recording_up: Callable[[str], bool | None]
    ) -> list[CameraView]:
        now = time.monotonic()
        with self.lock:
            return [
                CameraView(
                    c.id,
                    self.workers[c.id].stats() if c.id in self.workers else None,
                    now - self._started.get(c.id, now),
                    recording_up(c.id),
                )
                for c in cameras
            ]

    def check_offline(self, camera: Callable[[str], CameraConfig], now: float) -> None:
        with self.lock:
            items = [(camera(cid), w) for cid, w in self.workers.items()]
        for cam, worker in items:
            if worker.wait_finished(0):
                continue  # a file that has played to its end is not a lost stream
            self._offline.check(cam, worker.stats(), now)

    def _start_worker(self, cam: CameraConfig) -> CameraWorker:
        # A Pi or USB camera can be opened by one process only: its frames are what gets recorded.
        worker = CameraWorker(
            self.device, cam, self.model, self._on_event, self._next_seq, on_frame=self._frame_hook(cam.id),
            tamper_dir=self._tamper_dir, shared=self.detector,
        )  # fmt: skip
        worker.start()
        self._started[cam.id] = time.monotonic()
        return worker


def shared_detector(model: ModelConfig) -> SharedDetector | None:
    """The device's one detector; None for a recurrent model (each camera then loads its own)."""
    try:
        shared = SharedDetector(model)
    except NotShareable:
        log.info("detector per camera model=%s reason=recurrent model", Path(model.path).name)
        return None
    shared.start()
    return shared

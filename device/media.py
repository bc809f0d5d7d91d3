"""Recording, clips, uploads and the disk budget of one device, built from its configuration: the
agent's one handle on its media (docs/internals.md, "Device: outbox, link, uploads")."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from device.clips import ClipMaker, media_dir
from device.evidence import EvidenceSigner
from device.recording import Recording
from device.retention import Retention
from device.upload_queue import UploadQueue, queue_path
from device.uploader import Uploader, token_from_file
from matthan_wire.config import CameraConfig, DeviceConfig
from matthan_wire.payloads import Alert

if TYPE_CHECKING:
    from device.frames import Frame
    from device.health import UploadView

log = logging.getLogger(__name__)


class DeviceMedia:
    """Recording, clips, uploads and the disk budget of one device, wired from its configuration.

    What the agent uses: start() and stop(); event_started / event_ended (its clip sink);
    apply_cameras() after a config change; upload_view() and recording_up() for health.
    Without a `cloud` section clips are still cut and kept, within the budget, for a later upload.
    """

    def __init__(
        self,
        config: DeviceConfig,
        *,
        model: str | None = None,
        model_path: str | None = None,
        config_version: Callable[[], int | None] = lambda: None,
        paced: bool = True,
    ) -> None:
        storage = config.storage
        self._cameras = list(config.cameras)
        self.uploads = UploadQueue(queue_path(storage))
        self.recording = Recording(storage, paced=paced)
        # The segment cache counts against the budget only when it lives on the same storage.
        cache_on_storage = storage.cache_path is None
        self.retention = Retention.from_config(
            storage,
            self.uploads,
            media_dir(storage),
            extra_usage=self.recording.cache_bytes if cache_on_storage else lambda: 0,
        )
        # Evidence is signed with the device's own key (enrollment made it here): device/evidence.py.
        self.signer: EvidenceSigner | None = None
        if config.broker.key is not None and config.broker.cert is not None:
            self.signer = EvidenceSigner(
                config.device,
                Path(config.broker.key),
                Path(config.broker.cert),
                camera_for=self._camera,
                config_version=config_version,
                model_path=Path(model_path) if model_path else None,
            )
        self.clips = ClipMaker(
            config.device,
            media_dir(storage),
            self.recording.get,
            self.uploads,
            model=model,
            config_version=config_version,
            retention=self.retention,
            signer=self.signer,
        )
        self.uploader: Uploader | None = None
        if config.cloud is not None:
            token = token_from_file(config.cloud.token_file) if config.cloud.token_file else None
            self.uploader = Uploader(
                self.uploads,
                config.cloud.url,
                token,
                ca=config.cloud.ca,
                max_bytes_per_s=config.cloud.upload_max_bytes_per_s,
            )

    def start(self) -> None:
        self.clips.start()  # first: saved clip jobs hold their segments before any recorder prunes
        self.recording.apply(self._cameras)
        if self.uploader is not None:
            self.uploader.start()
        else:
            log.warning("no cloud section: clips stay on the device, within the disk budget")

    def stop(self) -> None:
        if self.uploader is not None:
            self.uploader.stop()
        self.recording.stop()
        self.clips.stop()
        self.uploads.close()

    def dead_threads(self) -> list[str]:
        """The media threads that ended though not asked to stop (after start)."""
        dead = [] if self.clips.alive else ["clip-maker"]
        if self.uploader is not None and not self.uploader.alive:
            dead.append("uploader")
        return dead

    def apply_cameras(self, cameras: list[CameraConfig]) -> None:
        self._cameras = list(cameras)
        self.recording.apply(self._cameras)

    def _camera(self, camera_id: str) -> CameraConfig | None:
        return next((c for c in self._cameras if c.id == camera_id), None)

    def event_started(self, alert: Alert, snapshot_jpeg: bytes | None) -> None:
        self.clips.event_started(alert, snapshot_jpeg)

    def event_ended(self, alert: Alert) -> None:
        self.clips.event_ended(alert)

    def frame_hook(self, camera_id: str) -> Callable[..., None] | None:
        """CameraWorker's on_frame for a camera only the capture can open (Pi, USB): its frames are
        what gets recorded. None for cameras the recorder reads itself."""
        rec = self.recording.get(camera_id)
        if rec is None or not rec.frames:
            return None

        def hook(frame: Frame, *_: object) -> None:
            current = self.recording.get(camera_id)  # the recorder may have been replaced since
            if current is not None:
                current.feed(frame.image)

        return hook

    def recording_up(self, camera_id: str) -> bool | None:
        """None when the camera is not recorded (record.enabled: false, or it could not start)."""
        rec = self.recording.get(camera_id)
        return rec.state().recording if rec is not None else None

    def upload_view(self) -> UploadView:
        from device.health import UploadView

        backlog = self.uploads.backlog()
        return UploadView(
            backlog=backlog.count,
            backlog_bytes=backlog.bytes,
            oldest_age_s=backlog.oldest_age_s,
            evicted_unconfirmed_total=self.retention.evicted_unconfirmed_total(),
        )

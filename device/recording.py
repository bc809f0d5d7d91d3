"""Every recorded camera of a device: one Recorder each, started, restarted and stopped as the
configuration changes, with the segment folder each one writes to."""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from pathlib import Path

from device.recorder import Recorder, RecorderState
from device.source_probe import RecorderError
from matthan_wire.config import CameraConfig, StorageConfig

# The recorder's logger: these lines were always the recorder's, and operators filter by it.
log = logging.getLogger("device.recorder")


def cache_dir(storage: StorageConfig, camera_id: str) -> Path:
    """A camera's segment folder: storage.cache_path (a tmpfs, ideally) or segments/ under storage.path."""
    base = Path(storage.cache_path) if storage.cache_path else Path(storage.path) / "segments"
    return base / camera_id


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

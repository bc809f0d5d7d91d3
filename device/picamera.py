"""The Raspberry Pi camera through picamera2: a thin adapter to the VideoSource shape.

picamera2 is imported only when a `picamera2:N` source is opened, so nothing else on the device
needs it installed. The camera is asked for BGR888 frames (OpenCV's order) at a modest size.
"""

import importlib
from typing import Any

import numpy as np

from device.errors import DeviceError

SIZE = (1280, 720)


class PiCameraSource:
    live = True

    def __init__(self, camera: Any, fps: float | None) -> None:
        self._camera = camera
        self.fps = fps
        self._frame: np.ndarray | None = None

    @classmethod
    def open(cls, source: str, module: Any = None) -> "PiCameraSource":
        """`picamera2:0` → the first camera. `module` stands in for picamera2 in tests."""
        index_text = source.partition(":")[2] or "0"
        if not index_text.isdigit():
            raise DeviceError(f"bad Pi camera source {source!r}; expected picamera2:N")
        if module is None:
            try:
                module = importlib.import_module("picamera2")
            except ImportError:
                raise DeviceError(
                    # picamera2 needs the system libcamera bindings: Raspberry Pi OS ships both.
                    f"source {source}: picamera2 is not installed; on Raspberry Pi OS: apt install "
                    "python3-picamera2, and create the agent's venv with --system-site-packages"
                ) from None
        try:
            camera = module.Picamera2(int(index_text))
            config = camera.create_video_configuration(main={"size": SIZE, "format": "BGR888"})
            camera.configure(config)
            camera.start()
        except (IndexError, RuntimeError, OSError) as exc:
            raise DeviceError(f"source {source}: cannot start the Pi camera ({exc})") from None
        controls = config.get("controls", {}) if isinstance(config, dict) else {}
        limits = controls.get("FrameDurationLimits")
        fps = 1e6 / limits[0] if limits and limits[0] else None
        return cls(camera, fps)

    def grab(self) -> bool:
        try:
            frame = self._camera.capture_array("main")
        except (RuntimeError, OSError):
            return False
        self._frame = np.ascontiguousarray(frame[:, :, :3]) if frame is not None else None
        return self._frame is not None

    def retrieve(self) -> np.ndarray | None:
        return self._frame

    def close(self) -> None:
        try:
            self._camera.stop()
        finally:
            self._camera.close()

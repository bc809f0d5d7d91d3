"""What the agent checks of a site config the cloud sends before applying it: that this device can
open every camera's source, and which cameras need a restart (a new source) rather than a hot reload."""

from pathlib import Path

from device.errors import DeviceError
from matthan_wire.config import CameraConfig, SiteConfig


def needs_restart(old: CameraConfig, new: CameraConfig) -> bool:
    # Capture is opened with these; everything else (zones, lines, rules, detect, motion) reloads hot.
    return (old.detect_source, old.loop, old.hwaccel) != (new.detect_source, new.loop, new.hwaccel)


def check_site(site: SiteConfig) -> None:
    """What the wire model cannot know: whether this device can open each camera's source."""
    for cam in site.cameras:
        for src in cam.sources:
            if "://" in src or src.startswith(("picamera2:", "/dev/")) or src.isdigit():
                continue
            p = Path(src)
            if not p.is_absolute():
                raise DeviceError(
                    f"camera {cam.id}: file source {src!r} must be an absolute path on the device"
                )
            if not p.is_file():
                raise DeviceError(f"camera {cam.id}: source file {src} not found on the device")

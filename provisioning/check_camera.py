"""The checklist's camera item: one stream of a camera. `detect` (and `both`): a frame must decode
and a live stream's real rate is measured. Every stream the device can open twice is also probed by
ffprobe: codec, resolution, frame rate, keyframe interval (what recording by copy depends on)."""

import time

import numpy as np

from matthan.i18n import Joined, Msg
from matthan_wire.config import CameraConfig
from provisioning.check_report import Checked, Status

# A live stream is sampled this long; the first LIVE_WARMUP_S are the decoder's buffered burst.
LIVE_SAMPLE_S, LIVE_WARMUP_S, LIVE_MAX_FRAMES = 2.5, 0.5, 150
# Above this a single-stream camera is decoded at full size for detection: worth a sub-stream.
BIG_DETECT_PIXELS = 1280 * 720


def check_stream(
    name: str, source: str, role: str, camera: CameraConfig | None
) -> tuple[Checked, np.ndarray | None]:
    """The item, and the decoded frame (for the model item) when one was decoded."""
    from device.capture import redact
    from device.source_probe import COPYABLE, RecorderError, probe_stream

    info = None
    probe_error = None
    if not _held(source):
        try:
            info = probe_stream(source)
        except RecorderError as exc:
            probe_error = str(exc)
    frame = None
    detail: str
    if role == "record":
        if info is None:
            detail = probe_error or Msg("%(source)s: cannot probe it", source=redact(source))
            return Checked(name, "fail", detail), None
        detail = _describe(info.width, info.height, info.codec, info.fps, None, info.keyframe_interval_s)
    else:
        decoded = _decode(name, source)
        if isinstance(decoded, Checked):
            return decoded, None
        frame, fps, measured = decoded
        h, w = frame.shape[:2]
        codec = info.codec if info is not None else None
        keyframe = info.keyframe_interval_s if info is not None else None
        detail = _describe(w, h, codec, fps, measured, keyframe)
        if measured is not None and fps and measured < fps / 2:
            return Checked(name, "warn", Joined("; ", [detail, Msg("the link drops frames?")])), frame
        if probe_error is not None:
            status: Status = "fail" if role == "both" else "warn"
            return Checked(name, status, Joined("; ", [detail, f"{probe_error} (ffprobe)"])), frame
        if role == "both" and w * h > BIG_DETECT_PIXELS:
            costly = Msg(
                "detecting on a %(size)s stream costs CPU: add the camera's sub-stream as the detect "
                "input (inputs with roles)",
                size=f"{w}x{h}",
            )
            return Checked(name, "warn", Joined("; ", [detail, costly])), frame
    if info is not None and role != "detect" and camera is not None:
        if info.codec not in COPYABLE:
            copy = Msg(
                "%(codec)s cannot be recorded by copy: re-encoded on the device (CPU). "
                "Set the camera to H.264 or H.265",
                codec=info.codec,
            )
            return Checked(name, "warn", Joined("; ", [detail, copy])), frame
        seg = camera.record.segment_s
        key = info.keyframe_interval_s
        if (key is not None and key > 2 * seg) or (key is None and info.sampled_s >= 2 * seg):
            every = (
                Msg("every %(s)s s", s=f"{key:.1f}")
                if key is not None
                else Msg("not twice in %(s)s s", s=f"{info.sampled_s:.0f}")
            )
            late = Msg(
                "keyframe %(every)s: clips start up to that much early and segments run long. "
                "Set the camera's I-frame interval to at most %(seg)s s",
                every=every,
                seg=f"{seg:g}",
            )
            return Checked(name, "warn", Joined("; ", [detail, late])), frame
    return Checked(name, "pass", detail), frame


def _decode(name: str, source: str) -> Checked | tuple[np.ndarray, float | None, float | None]:
    """(first frame, announced fps, received fps) from decoded frames, or the failing item."""
    from device.capture import open_source, redact

    try:
        src = open_source(source)
    except Exception as exc:  # SourceError, or whatever the backend raises for a bad URL
        return Checked(name, "fail", f"{redact(source)}: {exc}")
    times: list[float] = []
    image = None
    try:
        started = time.perf_counter()
        # A file needs one frame; a live stream is sampled long enough to measure its real rate.
        while len(times) < (LIVE_MAX_FRAMES if src.live else 1):
            if time.perf_counter() - started > LIVE_SAMPLE_S or not src.grab():
                break
            times.append(time.perf_counter())
            if image is None:
                image = src.retrieve()
    finally:
        src.close()
    if image is None:
        return Checked(name, "fail", Msg("%(source)s: opened, but no frame decoded", source=redact(source)))
    measured = received_fps(times) if src.live else None
    return image, src.fps, measured


def _held(source: str) -> bool:
    """A Pi or USB camera: opened by one process at a time, and not something ffprobe reads."""
    return source.startswith(("picamera2:", "/dev/")) or source.isdigit()


def _describe(
    w: int, h: int, codec: str | None, fps: float | None, measured: float | None, keyframe: float | None
) -> Joined:
    parts: list[str] = [f"{w}x{h}" + (f" {codec}" if codec else "")]
    rate = fps or measured
    rate_text = Msg("%(fps)s fps", fps=f"{rate:.1f}") if rate else Msg("frame rate unknown")
    if measured is not None:
        rate_text = Msg("%(rate)s (received %(fps)s fps)", rate=rate_text, fps=f"{measured:.1f}")
    parts.append(rate_text)
    if keyframe is not None:
        parts.append(Msg("keyframe every %(s)s s", s=f"{keyframe:.1f}"))
    return Joined(", ", parts)


def received_fps(times: list[float]) -> float | None:
    """Frames per second a live stream delivers, measured after the burst of frames the decoder
    had buffered while opening (those arrive at once and would inflate the rate)."""
    if len(times) < 2:
        return None
    settled = [t for t in times if t >= times[0] + LIVE_WARMUP_S]
    if len(settled) < 2:
        settled = times
    span = settled[-1] - settled[0]
    return (len(settled) - 1) / span if span > 0 else None

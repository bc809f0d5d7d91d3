"""What ffprobe reads from a camera's source before it is recorded: its codec, and for a technician
(`provisioning check`) its resolution, frame rate and keyframe interval."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass

from device.capture import redact
from device.errors import DeviceError
from device.ffmpeg import FFPROBE, hide_password

# Codecs MPEG-TS carries by copy and every player of an evidence clip understands.
COPYABLE = frozenset({"h264", "hevc"})


class RecorderError(DeviceError):
    """A camera that cannot be recorded as configured."""


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


def _ffprobe(source: str, args: list[str], output: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """ffprobe on the source's first video stream; RecorderError when it does not answer in time."""
    cmd = [FFPROBE, "-v", "error", "-select_streams", "v:0", *args]
    if source.startswith("rtsp://"):
        cmd += ["-rtsp_transport", "tcp"]
    cmd += ["-of", output, source]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise RecorderError(f"source {redact(source)}: no answer within {timeout:.0f}s") from None


def _unreadable(out: subprocess.CompletedProcess[str], source: str) -> RecorderError:
    reason = hide_password((out.stderr.strip().splitlines() or ["no video stream"])[-1], source)
    return RecorderError(f"source {redact(source)}: cannot read video ({reason})")


def probe_codec(source: str, timeout: float = 15.0) -> str:
    """The codec of the source's first video stream, by ffprobe; RecorderError when unreadable."""
    args = ["-show_entries", "stream=codec_name"]
    # The codec name is in the first packets; waiting for ffprobe's default 5 s of analysis is not needed.
    args += ["-analyzeduration", "1000000", "-probesize", "2000000"]
    out = _ffprobe(source, args, "csv=p=0", timeout)
    codec = out.stdout.strip().splitlines()[0] if out.stdout.strip() else ""
    if out.returncode != 0 or not codec:
        raise _unreadable(out, source)
    return codec


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
    args = ["-show_entries", "stream=codec_name,width,height,avg_frame_rate,r_frame_rate"]
    args += ["-show_entries", "packet=pts_time,flags", "-read_intervals", f"%+{sample_s:g}"]
    out = _ffprobe(source, args, "json", timeout)
    try:
        info = json.loads(out.stdout or "{}")
        stream = info["streams"][0]
    except (ValueError, KeyError, IndexError):
        raise _unreadable(out, source) from None
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

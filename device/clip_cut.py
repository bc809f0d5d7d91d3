"""One event's clip cut from the recorded segments: the segments covering the span, joined by copy
into one MP4, and the JSON sidecar that says what it shows and how to check it.

The cut is ffmpeg's concat demuxer with `-c copy` and `-movflags +faststart` (a browser can play it
while it downloads), into one self-contained `{event_id}.mp4`, with a JSON sidecar (who, where,
when, which rule, model and config version, the MP4's SHA-256, size and ffprobe duration).

Segment starts are known as an interval (device/segment_cache.py); a cut always takes the segment
whose start is surely before the span's start, so the clip covers the span and overshoots it by
at most about one segment at each end.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from device.errors import DeviceError
from device.ffmpeg import FFMPEG, FFPROBE
from device.files import fsync_dir, fsync_file, write_atomic
from device.segment_cache import Segment
from matthan.hashing import sha256_file
from matthan_wire.evidence import EventOrigin
from matthan_wire.payloads import Alert
from matthan_wire.timeutil import UtcDateTime


class ClipError(DeviceError):
    """A clip that could not be cut from the recorded segments."""


class ClipSidecar(EventOrigin):
    """What a clip shows and how to check it; travels next to the MP4 as `{event_id}.json`."""

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


@dataclass(frozen=True)
class Clip:
    """A cut clip on disk, with its sidecar next to it."""

    path: Path
    sidecar: Path
    sha256: str
    size: int
    duration_s: float
    gap_s: float
    segments: int
    short: bool  # part of the span is missing (recording started late or was down)


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
        fsync_file(part)
        os.replace(part, out)
        fsync_dir(out.parent)
    except subprocess.TimeoutExpired:
        raise ClipError(f"{out.name}: ffmpeg concat took over 120s") from None
    finally:
        listing.unlink(missing_ok=True)
        part.unlink(missing_ok=True)


def cut_clip(
    alert: Alert,
    span: tuple[datetime, datetime],
    chosen: list[Segment],
    complete: bool,
    folder: Path,
    *,
    model: str | None,
    config_version: Callable[[], int | None],
) -> Clip:
    """Join `chosen` into `{event_id}.mp4` in `folder` and write its sidecar; `complete`: the span's
    end was recorded."""
    a = alert
    start, end = span
    out = folder / f"{a.event_id}.mp4"
    concat_copy([s.path for s in chosen], out, folder)
    duration, codec = probe_media(out)
    size = out.stat().st_size
    digest = sha256_file(out)
    covered_start, covered_end = chosen[0].start, chosen[-1].end
    # Wall time the segments span minus the video they hold: the let-go middle of a long event,
    # or a time the recorder was down.
    gap_s = max(0.0, (covered_end - covered_start).total_seconds() - duration)
    short = not complete or chosen[0].start_hi > start
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
        clip_start=start,
        clip_end=end,
        covered_start=covered_start,
        covered_end=covered_end,
        duration_s=round(duration, 3),
        gap_s=round(gap_s, 1),
        segments=len(chosen),
        file=out.name,
        sha256=digest,
        size=size,
        codec=codec,
        model=model,
        config_version=config_version(),
        made_at=datetime.now(UTC),
    )
    side = folder / f"{a.event_id}.json"
    write_atomic(side, sidecar.model_dump_json(indent=2).encode())
    return Clip(out, side, digest, size, duration, gap_s, len(chosen), short)

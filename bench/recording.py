"""Recording benchmark: `python -m bench.recording` prints a Markdown section.

CPU seconds per minute of video, measured side by side in one run on the same footage:
- copy: the recorder's own ffmpeg command (device/recorder.py: `-c copy` into MPEG-TS segments);
- x264 ultrafast: the single cheap encode the recorder falls back to for sources it cannot copy;
- x264 veryfast: what re-encoding for recording usually means (the baseline stream copy avoids).
Each runs unpaced (no `-re`) over the same looped footage; CPU is the child's user + system time from
wait4, so time spent waiting on the disk or on other processes does not count. Also: the CPU to cut
one 12-second clip from those segments by concat copy (device/clip_cut.py).
Goal (issue #5): recording costs a small fraction of a re-encode, so a Pi can afford it per camera.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from device.clip_cut import concat_copy
from device.ffmpeg import FFMPEG
from device.recorder import Recorder
from device.source_probe import probe_codec
from matthan import assets
from matthan_wire.config import CameraConfig

VIDEO_S = 60.0
# Copy is so cheap that ffmpeg's start-up would dominate one minute; five amortise it as a
# recorder running for hours does (still reported per minute).
COPY_VIDEO_S = 300.0
CLIPS = ["video/vtest_480x360.mp4", "video/one-by-one-person-detection.mp4", "video/car-detection.mp4"]


def cpu_of(cmd: list[str]) -> float:
    """CPU seconds (user + system) of one child process run to completion."""
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode}): {err[-500:]}")
    return usage.ru_utime + usage.ru_stime


def recorder_cmd(source: Path, out_dir: Path, seconds: float) -> list[str]:
    cam = CameraConfig(id="bench", source=str(source), loop=True)
    rec = Recorder(cam, out_dir, paced=False)  # the production command line, minus -re
    cmd = rec.command(probe_codec(str(source)), session=int(time.time() * 1000))
    i = cmd.index("-i")
    return [*cmd[:i], "-t", f"{seconds:g}", *cmd[i:]]


def encode_cmd(source: Path, out_dir: Path, preset: str) -> list[str]:
    return [
        FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin", "-stream_loop", "-1", "-t", f"{VIDEO_S:g}",
        "-i", str(source), "-map", "0:v:0", "-c:v", "libx264", "-preset", preset, "-pix_fmt", "yuv420p",
        "-force_key_frames", "expr:gte(t,n_forced*2)", "-f", "segment", "-segment_time", "2",
        "-segment_format", "mpegts", "-reset_timestamps", "1", str(out_dir / f"enc-{preset}-%06d.ts"),
    ]  # fmt: skip


def resolution(source: Path) -> str:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height",
         "-of", "csv=s=x:p=0", str(source)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return out.strip()


def main() -> int:
    rows = []
    cut_rows = []
    for name in CLIPS:
        source = assets.path(name)
        if not source.exists():
            print(f"missing asset {name}; run `matthan assets fetch`", file=sys.stderr)
            return 1
        work = Path(tempfile.mkdtemp(prefix="bench-recording-"))
        try:
            copy_dir = work / "copy"
            copy_dir.mkdir()
            copy_cpu = cpu_of(recorder_cmd(source, copy_dir, COPY_VIDEO_S))
            fast_cpu = cpu_of(encode_cmd(source, work, "ultrafast"))
            usual_cpu = cpu_of(encode_cmd(source, work, "veryfast"))
            rows.append((name.split("/")[-1], resolution(source), copy_cpu * 60 / COPY_VIDEO_S,
                         fast_cpu * 60 / VIDEO_S, usual_cpu * 60 / VIDEO_S))  # fmt: skip
            segs = sorted(copy_dir.glob("*.ts"))
            # A 12 s clip: 5 s pre + a short event + 5 s post, from the segments just recorded.
            take = _segments_for(segs, 12.0)
            before = os.times()
            concat_copy(take, work / "clip.mp4", work)
            after = os.times()
            cut_cpu = (
                after.children_user - before.children_user + after.children_system - before.children_system
            )
            cut_rows.append((name.split("/")[-1], len(take), cut_cpu))
        finally:
            shutil.rmtree(work, ignore_errors=True)

    print("## recording: stream copy vs re-encode")
    print()
    print(
        f"CPU seconds per minute of video: ffmpeg's user+system time over {COPY_VIDEO_S:g} s (copy) and "
        f"{VIDEO_S:g} s (encodes) of each clip, looped, unpaced, segments of 2 s as recorded."
    )
    print()
    print("| clip | resolution | copy (recorder) | x264 ultrafast | x264 veryfast | ultrafast ÷ copy "
          "| veryfast ÷ copy |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---:|")
    for clip, res, copy, fast, usual in rows:
        print(f"| {clip} | {res} | {copy:.2f} | {fast:.2f} | {usual:.2f} | {fast / copy:.0f}× "
              f"| {usual / copy:.0f}× |")  # fmt: skip
    print()
    print("Cutting one clip from the segments by concat copy (`-movflags +faststart`):")
    print()
    print("| clip | segments joined | CPU seconds |")
    print("|---|---:|---:|")
    for clip, n, cpu in cut_rows:
        print(f"| {clip} | {n} | {cpu:.3f} |")
    return 0


def _segments_for(segs: list[Path], seconds: float) -> list[Path]:
    """The first segments adding up to at least `seconds` (durations by ffprobe)."""
    total, out = 0.0, []
    for seg in segs:
        out.append(seg)
        dur = subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(seg)],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        total += float(dur or 0)
        if total >= seconds:
            break
    return out


if __name__ == "__main__":
    raise SystemExit(main())

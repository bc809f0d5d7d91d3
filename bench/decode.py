"""Decode CPU per detect frame, by the sub-stream's frame rate: `python -m bench.decode`.

A camera detects at 5 fps; its sub-stream may come at 10 fps (two frames decoded for each one
detected: every H.264 frame must be decoded, used or not) or at the detect rate. Whether asking
technicians to set the sub-stream to the detect rate is worth a checklist warning depends on what
the spare frames cost. The same 20 s of vtest, each way, read by the device's own capture (one
decoder thread, sampled at 5 fps, each sampled frame converted to BGR):

- the staged clip as it is (10 fps, its own encoding);
- re-encoded as a camera's sub-stream (main profile, no B-frames, 228 kbit/s like the clip, a
  keyframe every 2 s) at 10 fps and at 5 fps: only the frame rate differs, at the same bit rate.

CPU time of the reading thread (`time.thread_time`), the ways in turn for several rounds, so a
slower spell of a shared machine hits each alike; best and median round. Issue #18.
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.pipeline import asset
from device.capture import Capture

DETECT_FPS = 5.0
CAMERA = ["-c:v", "libx264", "-preset", "veryfast", "-profile:v", "main", "-bf", "0",
          "-b:v", "228k", "-maxrate", "300k", "-bufsize", "600k"]  # fmt: skip


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True, timeout=300)


def streams(tmp: Path) -> dict[str, Path]:
    clip = tmp / "vtest-20s.mp4"
    ffmpeg("-i", str(asset("video/vtest_480x360.mp4")), "-t", "20", "-an", "-c", "copy", str(clip))
    sub10, sub5 = tmp / "sub-10fps.mp4", tmp / "sub-5fps.mp4"
    ffmpeg("-i", str(clip), *CAMERA, "-g", "20", str(sub10))
    ffmpeg("-i", str(clip), "-vf", f"fps={DETECT_FPS:g}", *CAMERA, "-g", "10", str(sub5))
    return {
        "staged clip, 10 fps": clip,
        "camera sub-stream, 10 fps": sub10,
        "camera sub-stream, 5 fps": sub5,
    }


def cpu_per_detect_frame(path: Path) -> float:
    t0 = time.thread_time()
    frames = sum(
        1 for _ in Capture(str(path), DETECT_FPS, threading.Event(), paced=False, decode_threads=1).frames()
    )
    return (time.thread_time() - t0) * 1000.0 / max(frames, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.decode")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        ways = streams(Path(tmp))
        times: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(args.rounds):
            for name, path in ways.items():
                times[name].append(cpu_per_detect_frame(path))
    print("## Decode CPU per detect frame, by the sub-stream's rate (`python -m bench.decode`)\n")
    print(
        f"Capture of 20 s of vtest sampled at {DETECT_FPS:g} fps, one decoder thread, "
        f"{args.rounds} rounds in turn.\n"
    )
    print("| sub-stream | CPU ms per detect frame, best | median | × the 5 fps sub-stream (best) |")
    print("| --- | ---: | ---: | ---: |")
    ref = min(times["camera sub-stream, 5 fps"])
    for name, values in times.items():
        print(f"| {name} | {min(values):.2f} | {statistics.median(values):.2f} | {min(values) / ref:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

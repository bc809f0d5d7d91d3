"""A recorder in a process of its own, as the agent runs it (for the SIGKILL test).

`python -m tests.device.recording_process CLIP CACHE` records CLIP in a loop and prints
`ready <ffmpeg pid>` once the first segment is written, then runs until killed.
"""

import sys
import time
from pathlib import Path

from device.recorder import Recorder
from matthan_wire.config import CameraConfig
from tests.support.net import wait_until


def main(clip: Path, cache: Path) -> None:
    rec = {"segment_s": 1.0, "pre_capture_s": 1.0, "post_capture_s": 1.0}
    cam = CameraConfig(id="cam-1", source=str(clip), loop=True, record=rec)  # type: ignore[arg-type]
    recorder = Recorder(cam, cache)
    recorder.start()
    wait_until(lambda: recorder.segments(), timeout=60, what="a segment")
    print(f"ready {recorder.pid}", flush=True)
    while True:
        time.sleep(0.2)  # not signal.pause(): a signal just before it would be missed


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))

"""`matthan device detect`: one offline pass of the vision pipeline over a file or a stream.

Files play as fast as the machine allows. stdout carries the events and nothing else (one JSON
Alert per line with --json, one readable line otherwise); logs and the closing summary go to
stderr. --annotate writes what the pipeline saw: boxes, track ids, zones, active violations.
"""

import logging
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import cv2

from device.annotate import annotated
from device.camera_worker import CameraWorker
from device.capture import open_source, redact
from device.config_file import load_config, model_of
from device.errors import DeviceError
from device.events import DetectedEvent
from device.frames import Frame
from device.rules import Violation
from device.tracker import Track
from matthan_wire import encode
from matthan_wire.config import CameraConfig
from matthan_wire.timeutil import format_ts

log = logging.getLogger("device.detect")


def parse_start_time(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise DeviceError(
            f"--start-time {text!r} is not an ISO-8601 time (e.g. 2026-11-24T08:30:00Z)"
        ) from None
    if moment.tzinfo is None:
        raise DeviceError(f"--start-time {text!r} needs a UTC offset (e.g. 2026-11-24T08:30:00Z)")
    return moment.astimezone(UTC)


class _Annotator:
    def __init__(self, path: Path, fps: float) -> None:
        self.path = path
        self.fps = fps
        self.writer: cv2.VideoWriter | None = None
        self.frames = 0

    def __call__(
        self, frame: Frame, tracks: list[Track], active: list[Violation], camera: CameraConfig
    ) -> None:
        image = annotated(frame.image, camera, tracks, active)
        cv2.putText(image, format_ts(frame.ts), (8, image.shape[0] - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (255, 255, 255), 1, cv2.LINE_AA)  # fmt: skip
        if self.writer is None:
            h, w = image.shape[:2]
            self.writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter.fourcc(*"mp4v"), self.fps, (w, h))
            if not self.writer.isOpened():
                raise DeviceError(f"--annotate {self.path}: cannot write a video there")
        self.writer.write(image)
        self.frames += 1

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()


def run_detect(
    config_path: Path,
    camera_id: str,
    source: str,
    as_json: bool = False,
    annotate: Path | None = None,
    start_time: str | None = None,
) -> int:
    config = load_config(config_path)
    try:
        camera = config.camera(camera_id)
    except KeyError:
        known = ", ".join(c.id for c in config.cameras)
        raise DeviceError(f"no camera {camera_id!r} in {config_path} (cameras: {known})") from None
    start = parse_start_time(start_time)
    if annotate is not None and not annotate.parent.is_dir():
        raise DeviceError(f"--annotate {annotate}: folder {annotate.parent} does not exist")
    # The source given on the command line replaces the configured one; check it opens now, so
    # a typo is one clear line rather than a retry loop.
    src = open_source(source)
    src.close()
    camera = camera.model_copy(update={"source": source, "inputs": None, "loop": False})

    seq = iter(range(1, 1 << 62))
    lock = threading.Lock()
    counts = {"start": 0, "end": 0}

    def on_event(event: DetectedEvent) -> None:
        a = event.alert
        with lock:
            counts[a.phase] += 1
            if as_json:
                line = encode(a).decode()
            else:
                at = format_ts(a.ended_at if a.ended_at is not None else a.started_at)
                line = f"{at} {a.phase:5} {a.rule} objects={a.object_count} score={a.score:.2f} {a.event_id}"
            print(line, flush=True)

    writer = _Annotator(annotate, camera.detect.fps) if annotate is not None else None
    hook = (lambda f, t, v: writer(f, t, v, camera)) if writer is not None else None
    worker = CameraWorker(
        config.device, camera, model_of(config), on_event, lambda: next(seq), paced=False,
        start_time=start, on_frame=hook,
    )  # fmt: skip
    began = time.monotonic()
    interrupted = False
    try:
        # Inside the try: a Ctrl-C as soon as the camera has started still ends with the summary.
        worker.start()
        while not worker.wait_finished(0.5):
            pass
    except KeyboardInterrupt:
        interrupted = True
    finally:
        worker.stop()
        if writer is not None:
            writer.close()
    s = worker.stats()
    elapsed = time.monotonic() - began
    print(
        f"{'interrupted' if interrupted else 'done'}: source={redact(source)} frames_in={s.frames_in} "
        f"processed={s.frames_processed} detector_runs={s.detector_runs} "
        f"saved_by_motion={s.detector_runs_saved} "
        f"events={counts['start']} starts/{counts['end']} ends elapsed_s={elapsed:.1f}"
        + (f" annotated={annotate}" if annotate is not None else ""),
        file=sys.stderr,
    )
    if worker.error is not None and not interrupted:
        if isinstance(worker.error, DeviceError):
            raise worker.error
        raise DeviceError(f"pipeline failed: {worker.error}")
    return 130 if interrupted else 0

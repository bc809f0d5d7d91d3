"""One camera, end to end: capture thread → bounded queue → detect thread → on_event.

The detect thread owns the detector (LiteRT interpreters are not thread-safe) and runs, per
frame: motion gate → detector (when something moved, or to re-check tracked objects) → tracker →
rules → events. Live sources hand over the latest frame only (an old frame is dropped and
counted, never queued behind); a file played unpaced hands over every sampled frame.
"""

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from device.capture import READ_TIMEOUT_S, Capture, redact
from device.detector import Detection, ObjectDetector, load_detector
from device.errors import DeviceError
from device.events import DetectedEvent, to_event
from device.frame_handoff import FrameHandoff
from device.frames import Frame
from device.motion import MotionGate
from device.rules import Change, RuleEngine, Violation
from device.shared_detector import SharedDetector
from device.tamper import TamperWatch
from device.tracker import Track, Tracker
from matthan_wire import CameraTamper
from matthan_wire.config import CameraConfig, DeviceIdentity, ModelConfig
from matthan_wire.rules import CrowdRule, Line, Zone

log = logging.getLogger("device.camera")

FrameHook = Callable[[Frame, list[Track], list[Violation]], None]
STALL_S = READ_TIMEOUT_S  # no frame for this long: the stream is not up


@dataclass(frozen=True)
class CameraStats:
    stream_up: bool
    fps_in: float
    fps_detect: float
    detect_ms: float | None
    last_frame_age_s: float | None
    expected_fps: float | None
    reconnects_1h: int
    stalls_1h: int
    detector_runs: int
    detector_runs_saved: int
    frames_in: int
    frames_dropped: int
    frames_processed: int = 0
    events: int = 0
    frame_errors: int = 0
    tamper: CameraTamper | None = None


@dataclass
class StageTimes:
    """Seconds spent per stage, summed (the benchmark divides by frames)."""

    motion: float = 0.0
    detect: float = 0.0
    track: float = 0.0
    rules: float = 0.0
    events: float = 0.0

    def add(self, *marks: float) -> None:
        """Six marks: before the motion gate, after it, after the detector, tracker, rules, events."""
        t0, t1, t2, t3, t4, t5 = marks
        self.motion += t1 - t0
        self.detect += t2 - t1
        self.track += t3 - t2
        self.rules += t4 - t3
        self.events += t5 - t4


def rate(times: deque[float], now: float, since: float, window: float = 10.0) -> float:
    """Ticks per second over the last `window` seconds (or since `since`, if more recent)."""
    span = min(window, now - since)
    if span <= 0:
        return 0.0
    # Other threads append while health reads: deque.copy() runs in C under the GIL, so it is one
    # atomic step, where iterating the live deque raises "deque mutated during iteration".
    return sum(1 for t in times.copy() if t >= now - span) / span


def warn_unreachable_rules(camera: CameraConfig, detector: ObjectDetector) -> None:
    """A rule the detector cannot serve never fires: say so when the camera's rules are applied,
    not silently miss every gathering. A crowd rule counting more than the model returns boxes,
    and a rule for a class the model does not answer for (left out of model.classes)."""
    places: list[Zone | Line] = [*camera.zones, *camera.lines]
    for place in places:
        for rule in place.rules:
            missing = [label for label in rule.labels if label not in detector.known_labels]
            if missing:
                log.warning(
                    "%s rule cannot fire for %s camera=%s place=%s: the model does not detect it; "
                    "add it to model.classes",
                    rule.type, ", ".join(missing), camera.id, place.name,
                )  # fmt: skip
            if isinstance(rule, CrowdRule) and rule.min_count > detector.max_detections:  # zones only
                log.warning(
                    "crowd rule cannot fire camera=%s zone=%s min_count=%d: the model returns at most "
                    "%d boxes per frame; raise model.max_detections",
                    camera.id, place.name, rule.min_count, detector.max_detections,
                )  # fmt: skip


class Pipeline:
    """The detect stage without threads: frames in, events out. The worker and the bench use it."""

    def __init__(
        self,
        device: DeviceIdentity,
        camera: CameraConfig,
        detector: ObjectDetector,
        on_event: Callable[[DetectedEvent], None],
        next_seq: Callable[[], int],
        tamper_dir: Path | None = None,
    ) -> None:
        self.device = device
        self.camera = camera
        self.detector = detector
        self.on_event = on_event
        self.next_seq = next_seq
        self.gate = MotionGate(camera.motion)
        self.tracker = Tracker(zones={z.name: z.polygon for z in camera.zones})
        self.rules = RuleEngine(camera, device.timezone)
        self.tamper = TamperWatch(device, camera, on_event, next_seq, tamper_dir)
        self.times = StageTimes()  # wall clock: what a frame waits for
        self.cpu = StageTimes()  # this thread's CPU: what a frame costs (a seat's invoke is elsewhere)
        self.detector_runs = 0
        self.detector_runs_saved = 0
        self.frames = 0
        self.events = 0
        self.last_detect_ms: float | None = None
        self._last_run: datetime | None = None
        self.last_frame: Frame | None = None
        self.last_detections: list[Detection] = []
        warn_unreachable_rules(camera, detector)

    def set_camera(self, camera: CameraConfig) -> None:
        warn_unreachable_rules(camera, self.detector)
        self.camera = camera
        self.gate.config = camera.motion
        self.tracker.set_zones({z.name: z.polygon for z in camera.zones})
        self.rules.set_camera(camera)
        self.tamper.set_camera(camera)
        self.detector.set_scores(camera.detect)

    def process(self, frame: Frame) -> list[Track]:
        self.frames += 1
        self.last_frame = frame
        if self.tamper.due(frame.ts):
            self.tamper.observe(frame)
        t0, c0 = time.perf_counter(), time.thread_time()
        motion = self.gate.update(frame.image) if self.camera.motion.enabled else True
        t1, c1 = time.perf_counter(), time.thread_time()
        recheck = bool(self.tracker.tracks) and (
            self._last_run is None
            or (frame.ts - self._last_run).total_seconds() >= self.camera.motion.recheck_s
        )
        detections: list[Detection] | None = None
        if motion or recheck or self._last_run is None:
            detections = self.detector.detect(frame.image)
            self.detector_runs += 1
            self._last_run = frame.ts
            self.last_detections = detections
        else:
            self.detector_runs_saved += 1
        t2, c2 = time.perf_counter(), time.thread_time()
        if detections is not None:
            self.last_detect_ms = (t2 - t1) * 1000.0
        tracks = self.tracker.update(frame.ts, detections, frame.image)
        t3, c3 = time.perf_counter(), time.thread_time()
        # A moved camera's zones lie on the wrong scene: end what is open, raise nothing new.
        suspended = self.tamper.zones_suspended
        changes = self.rules.close(frame.ts) if suspended else self.rules.update(frame.ts, tracks)
        t4, c4 = time.perf_counter(), time.thread_time()
        self._emit(changes, frame, tracks)
        self.times.add(t0, t1, t2, t3, t4, time.perf_counter())
        self.cpu.add(c0, c1, c2, c3, c4, time.thread_time())
        return tracks

    def finish(self, at: datetime | None = None) -> None:
        """End every open violation: at the last frame's time (the source ended or we stop)."""
        when = at or (self.last_frame.ts if self.last_frame is not None else None)
        if when is not None:
            self._emit(self.rules.close(when), None, self.tracker.tracks)
            self.tamper.close(when)

    def _emit(self, changes: list[Change], frame: Frame | None, tracks: list[Track]) -> None:
        for change in changes:
            event = to_event(change, self.device, self.camera, self.next_seq, frame, tracks)
            self.events += 1
            a = event.alert
            log.info(
                "event %s device=%s camera=%s event=%s rule=%s objects=%d",
                a.phase,
                a.device_id,
                a.camera_id,
                a.event_id,
                a.rule,
                a.object_count,
            )
            try:
                self.on_event(event)
            except Exception:  # a consumer's bug must not stop the camera
                log.exception("on_event failed camera=%s event=%s", self.camera.id, a.event_id)


class CameraWorker:
    def __init__(
        self,
        device: DeviceIdentity,
        camera: CameraConfig,
        model: ModelConfig,
        on_event: Callable[[DetectedEvent], None],
        next_seq: Callable[[], int],
        paced: bool = True,
        start_time: datetime | None = None,
        on_frame: FrameHook | None = None,
        tamper_dir: Path | None = None,
        shared: SharedDetector | None = None,
    ) -> None:
        self.device = device
        # One detector for every camera (the agent's), or an interpreter of this camera's own.
        self.shared = shared
        self.camera = camera
        self.model = model
        self.on_event = on_event
        self.next_seq = next_seq
        self.paced = paced
        self.start_time = start_time
        self.on_frame = on_frame
        self.tamper_dir = tamper_dir  # where the tamper reference survives a restart
        self._stop = threading.Event()
        self._capture = Capture(
            camera.detect_source,
            camera.detect.fps,
            self._stop,
            paced=paced,
            loop=camera.loop,
            start_time=start_time,
            hwaccel=camera.hwaccel,
            camera_id=camera.id,
            # A separate detect input is a sub-stream: one decoder thread is plenty (and 3 fewer
            # threads per camera). A single stream may be 4 MP: FFmpeg's own threading then.
            decode_threads=1 if camera.detect_source != camera.record_source else None,
        )
        self._handoff = FrameHandoff(lossless=not paced and not self._capture.live, stop=self._stop)
        self._pending: CameraConfig | None = None
        self._lock = threading.Lock()
        self._pipeline: Pipeline | None = None
        self._threads: list[threading.Thread] = []
        self._finished = threading.Event()
        self._detect_times: deque[float] = deque(maxlen=4000)
        self._started = time.monotonic()
        self.error: BaseException | None = None
        self.frame_errors = 0

    # Lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        """Load the model in the detect thread and start capturing; raises DeviceError if the
        model cannot load (the camera would be useless)."""
        loaded = threading.Event()
        detect = threading.Thread(
            target=self._detect_main, args=(loaded,), name=f"detect-{self.camera.id}", daemon=True
        )
        self._threads = [detect]
        detect.start()
        loaded.wait()
        if self.error is not None:
            detect.join()
            raise self.error
        self._started = time.monotonic()
        capture = threading.Thread(target=self._capture_main, name=f"capture-{self.camera.id}", daemon=True)
        self._threads.append(capture)
        capture.start()
        log.info(
            "camera started camera=%s source=%s paced=%s",
            self.camera.id,
            redact(self.camera.detect_source),
            self.paced,
        )

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        log.info("camera stopped camera=%s", self.camera.id)

    def wait_finished(self, timeout: float | None = None) -> bool:
        """True once a non-looping file has been played to its end (and every event emitted)."""
        return self._finished.wait(timeout)

    def update_camera(self, camera: CameraConfig) -> None:
        if camera.detect_source != self.camera.detect_source:
            raise DeviceError(f"camera {camera.id}: a new source needs a new worker, not a reload")
        with self._lock:
            self._pending = camera
        self.camera = camera
        self._capture.sample_fps = camera.detect.fps

    # Observation ---------------------------------------------------------------------------
    @property
    def pipeline(self) -> Pipeline | None:
        """The detect stage (its stage timings), once the detect thread has built it."""
        return self._pipeline

    def latest_frame(self) -> Frame | None:
        p = self._pipeline
        return p.last_frame if p is not None else None

    def stats(self) -> CameraStats:
        now = time.monotonic()
        c = self._capture.counters
        p = self._pipeline
        hour_ago = now - 3600.0
        age = now - c.last_frame_mono if c.last_frame_mono is not None else None
        return CameraStats(
            # A read blocked on a silent stream is not "up", even before the read timeout fires.
            stream_up=c.stream_up and (age is None or age < STALL_S),
            fps_in=round(rate(c.in_times, now, self._started), 2),
            fps_detect=round(rate(self._detect_times, now, self._started), 2),
            detect_ms=round(p.last_detect_ms, 2) if p is not None and p.last_detect_ms is not None else None,
            last_frame_age_s=round(age, 3) if age is not None else None,
            expected_fps=c.expected_fps,
            reconnects_1h=sum(1 for t in c.reconnect_times if t >= hour_ago),
            stalls_1h=sum(1 for t in c.stall_times if t >= hour_ago),
            detector_runs=p.detector_runs if p is not None else 0,
            detector_runs_saved=p.detector_runs_saved if p is not None else 0,
            frames_in=c.frames_in,
            frames_dropped=self._handoff.dropped,
            frames_processed=p.frames if p is not None else 0,
            events=p.events if p is not None else 0,
            frame_errors=self.frame_errors,
            tamper=p.tamper.status() if p is not None and self.camera.tamper.enabled else None,
        )

    def confirm_view(self) -> str:
        """An operator accepts the camera's current view as its tamper reference (the confirm-view
        command); applied by the detect thread at its next frame. Returns the tamper state before."""
        p = self._pipeline
        if p is None:
            raise DeviceError(f"camera {self.camera.id} is not running")
        return p.tamper.request_confirm()

    @property
    def reconnects(self) -> int:
        return self._capture.counters.reconnects

    # Threads -------------------------------------------------------------------------------
    def _capture_main(self) -> None:
        try:
            for frame in self._capture.frames():
                self._handoff.put(frame)
        except DeviceError as exc:
            log.error("camera source failed camera=%s error=%s", self.camera.id, exc)
            self.error = exc
        except Exception as exc:  # never die silently: the agent watches stream_up
            log.exception("capture crashed camera=%s", self.camera.id)
            self.error = exc
        finally:
            self._handoff.end(reader_alive=self._threads[0].is_alive)

    def _detect_main(self, loaded: threading.Event) -> None:
        try:
            detector: ObjectDetector = (
                self.shared.seat(self.camera.detect)
                if self.shared is not None
                else load_detector(self.model, self.camera.detect)
            )
        except DeviceError as exc:
            self.error = exc
            loaded.set()
            return
        pipeline = Pipeline(self.device, self.camera, detector, self.on_event, self.next_seq, self.tamper_dir)
        self._pipeline = pipeline
        loaded.set()
        try:
            while (item := self._handoff.take()) is not None:
                with self._lock:
                    pending, self._pending = self._pending, None
                if pending is not None:
                    pipeline.set_camera(pending)
                    log.info("camera config reloaded camera=%s", pending.id)
                try:
                    tracks = pipeline.process(item)
                except Exception:  # one bad frame (a decoder glitch, an odd size) must not end the camera
                    self.frame_errors += 1
                    if self.frame_errors == 1 or self.frame_errors % 100 == 0:
                        log.exception("frame failed camera=%s errors=%d", self.camera.id, self.frame_errors)
                    continue
                self._detect_times.append(time.monotonic())
                if self.on_frame is not None:
                    self.on_frame(item, tracks, pipeline.rules.active)
                if self._stop.is_set():
                    break
            pipeline.finish()
        except Exception as exc:
            log.exception("detect stage crashed camera=%s", self.camera.id)
            self.error = exc
        finally:
            self._finished.set()

"""Every camera's detections from a few interpreters: one bounded queue of requests, one thread
per interpreter taking from it (as Frigate does).

Each camera resizes its frame in its own thread and waits for the detections of its tensor. The
pool's default is `model.threads` interpreters of one thread each rather than one interpreter of
`model.threads` threads: a multi-threaded XNNPACK invoke waits for all its threads at every
layer, so on 2 cores shared with decoding, tracking and the recorders one busy core stalls the
whole invoke; two single-threaded interpreters each go on with whatever core is free
(`python -m bench.capacity` measures both in one run). One interpreter with XNNPACK's packed
weights is 13–14 MB, once per device instead of once per camera.

Recurrent models carry state from frame to frame of one stream, so they keep one interpreter per
camera (NotShareable). An Edge TPU is one device: it gets one interpreter.
"""

import logging
import queue
import threading
from dataclasses import dataclass, field

import numpy as np

from device.detector import Detection, Detector, NotShareable, Scores, load_detector
from device.errors import DeviceError
from matthan_wire.config import DetectConfig, ModelConfig

log = logging.getLogger("device.detector")

SHARED_WAIT_S = 10.0  # a camera waiting this long for its detections: the shared detector is stuck


@dataclass
class _Request:
    tensor: np.ndarray
    scores: Scores
    done: threading.Event = field(default_factory=threading.Event)
    result: list[Detection] | None = None
    error: BaseException | None = None


class SharedDetector:
    """A pool of interpreters for every camera: requests in a bounded queue, a thread per interpreter.

    No batching: the SSD post-processing op of these models takes one image at a time.
    `interpreters` splits `model.threads` between them (default: one thread each; 1 is one
    interpreter with all the threads).
    """

    def __init__(self, model: ModelConfig, max_waiting: int = 256, interpreters: int | None = None) -> None:
        count = max(1, interpreters or model.threads)
        each = model.model_copy(update={"threads": max(1, model.threads // count)})
        self.detector = load_detector(each)
        if self.detector.recurrent_states:
            raise NotShareable(
                f"model {self.detector.model_name}: a recurrent model keeps state per stream; "
                "it cannot be shared between cameras"
            )
        if self.detector.delegate == "edgetpu":
            count = 1
        self.detectors: list[Detector] = [self.detector, *(load_detector(each) for _ in range(count - 1))]
        self.threads_each = each.threads
        self.model_name = self.detector.model_name
        self.delegate = self.detector.delegate
        self._queue: queue.Queue[_Request] = queue.Queue(maxsize=max_waiting)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._invokes = [0] * len(self.detectors)  # one slot per thread: no lock on the hot path
        self.errors = 0

    @property
    def invokes(self) -> int:
        return sum(self._invokes)

    @property
    def invokes_each(self) -> list[int]:
        return list(self._invokes)

    def start(self) -> None:
        self._stop.clear()
        self._threads = [
            threading.Thread(target=self._run, args=(k,), name=f"detector-{k}", daemon=True)
            for k in range(len(self.detectors))
        ]
        for t in self._threads:
            t.start()
        log.info(
            "shared detector started model=%s delegate=%s interpreters=%d threads_each=%d",
            self.model_name, self.delegate, len(self.detectors), self.threads_each,
        )  # fmt: skip

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout)
        self._threads = []

    @property
    def alive(self) -> bool:
        """Every interpreter's thread runs: the health watch turns red when one has died, though
        the others still serve (`run` goes on while any does)."""
        return bool(self._threads) and all(t.is_alive() for t in self._threads)

    def _serving(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def seat(self, detect: DetectConfig | None = None) -> "DetectorSeat":
        """A camera's way in, with its own score floors."""
        return DetectorSeat(self, detect or DetectConfig())

    def run(self, tensor: np.ndarray, scores: Scores) -> list[Detection]:
        """From a camera's thread: queue the tensor, wait for its detections."""
        if not self._serving():
            raise DeviceError("the shared detector is not running")
        req = _Request(tensor, scores)
        try:
            self._queue.put(req, timeout=SHARED_WAIT_S)
        except queue.Full:
            raise DeviceError(f"shared detector: {self._queue.maxsize} frames already waiting") from None
        if not req.done.wait(SHARED_WAIT_S):
            raise DeviceError(f"shared detector: no answer within {SHARED_WAIT_S:.0f}s")
        if req.error is not None:
            raise DeviceError(f"shared detector: {req.error}")
        assert req.result is not None
        return req.result

    def _run(self, k: int) -> None:
        try:
            self._serve(k)
        finally:
            if not self._stop.is_set():
                left = sum(t.is_alive() for t in self._threads) - 1
                log.error(
                    "shared detector thread detector-%d died; %d of %d still serve",
                    k,
                    left,
                    len(self._threads),
                )

    def _serve(self, k: int) -> None:
        detector = self.detectors[k]
        while not self._stop.is_set():
            try:
                req = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                detector.invoke(req.tensor)
                req.result = detector.results(req.scores)
                self._invokes[k] += 1
            except Exception as exc:  # one odd tensor must not take every camera's detection down
                self.errors += 1
                req.error = exc
                if self.errors == 1 or self.errors % 100 == 0:
                    log.exception("shared detector invoke failed errors=%d", self.errors)
            except BaseException as exc:  # the thread ends; its camera gets an answer first
                req.error = exc
                raise
            finally:
                req.done.set()
        # Whoever still waits gets an answer rather than a timeout.
        while True:
            try:
                req = self._queue.get_nowait()
            except queue.Empty:
                return
            req.error = DeviceError("the shared detector stopped")
            req.done.set()


class DetectorSeat:
    """One camera at a SharedDetector: preprocesses in the camera's thread, invokes in the pool."""

    def __init__(self, shared: SharedDetector, detect: DetectConfig) -> None:
        self.shared = shared
        self.model_name = shared.model_name
        self.delegate = f"{shared.delegate} (shared)"
        self.max_detections = shared.detector.max_detections
        self.known_labels = shared.detector.known_labels
        self.scores = Scores.of(detect)

    def set_scores(self, detect: DetectConfig) -> None:
        self.scores = Scores.of(detect)

    def detect(self, image_bgr: np.ndarray) -> list[Detection]:
        # preprocess reads only the input's size and type: safe outside the detector's threads.
        return self.shared.run(self.shared.detector.preprocess(image_bgr), self.scores)

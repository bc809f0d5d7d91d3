"""The shared detector: a pool of interpreters for every camera, with the real model on real frames."""

import sys
import threading
import time

import numpy as np
import pytest

from device.detector import Detection, NotShareable, load_detector
from device.errors import DeviceError
from device.shared_detector import SharedDetector
from matthan_wire.config import DetectConfig, ModelConfig
from tests.support.video import frames_at


def test_a_shared_detector_gives_each_camera_what_its_own_would(model_config: ModelConfig, video) -> None:  # type: ignore[no-untyped-def]
    """Six cameras at once through the pool: every answer is the one for its own frame, with its
    own score floors, whichever interpreter gave it."""
    frames = frames_at(video("vtest_480x360.mp4"), set(range(0, 120, 10)))
    own = load_detector(model_config)
    strict = DetectConfig(min_score=0.7)
    expected = {i: (own.detect(img), None) for i, img in frames.items()}
    own.set_scores(strict)
    expected = {i: (loose, own.detect(frames[i])) for i, (loose, _) in expected.items()}
    shared = SharedDetector(model_config)
    shared.start()
    got: dict[tuple[int, int], list[Detection]] = {}
    errors: list[BaseException] = []

    def camera(k: int) -> None:
        seat = shared.seat(strict if k % 2 else DetectConfig())
        try:
            for _ in range(3):
                for i, img in frames.items():
                    got[(k, i)] = seat.detect(img)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=camera, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    shared.stop()
    assert errors == []
    assert shared.invokes == 6 * 3 * len(frames)
    assert len(shared.invokes_each) == model_config.threads
    assert min(shared.invokes_each) > 0  # six cameras at once kept every interpreter busy
    for (k, i), dets in got.items():
        assert dets == expected[i][1 if k % 2 else 0], (k, i)
    assert any(len(expected[i][0]) > len(expected[i][1]) for i in frames)  # the floors did differ


def test_a_recurrent_model_is_not_shared(traffic: ModelConfig) -> None:
    with pytest.raises(NotShareable, match="recurrent"):
        SharedDetector(traffic)


def test_a_stopped_shared_detector_answers_with_an_error_not_a_hang(model_config: ModelConfig) -> None:
    shared = SharedDetector(model_config)
    seat = shared.seat()
    with pytest.raises(DeviceError, match="not running"):
        seat.detect(np.zeros((360, 480, 3), np.uint8))
    shared.start()
    assert seat.detect(np.zeros((360, 480, 3), np.uint8)) == []
    shared.stop()
    with pytest.raises(DeviceError, match="not running"):
        seat.detect(np.zeros((360, 480, 3), np.uint8))


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the death is the test
def test_one_dead_pool_thread_turns_health_red_while_the_others_serve(model_config: ModelConfig) -> None:
    """A pool thread that dies (here: its interpreter raises SystemExit, which no `except
    Exception` stops) is seen by `alive`, which the agent's health watch reads; the camera whose
    frame it held gets an error, not a hang, and the other interpreter goes on serving."""
    shared = SharedDetector(model_config)
    assert len(shared.detectors) == 2

    def dies(tensor: np.ndarray) -> None:
        raise SystemExit("interpreter thread gone")

    shared.detectors[0].invoke = dies  # type: ignore[method-assign]
    shared.start()
    seat = shared.seat()
    frame = np.zeros((360, 480, 3), np.uint8)
    try:
        for _ in range(500):  # until the pool's queue hands a frame to thread 0
            try:
                seat.detect(frame)
            except DeviceError as exc:
                assert "interpreter thread gone" in str(exc)
                break
        else:
            pytest.fail("thread 0 never took a frame")
        shared._threads[0].join(10)
        assert not shared.alive
        assert [seat.detect(frame) for _ in range(3)] == [[], [], []]  # thread 1 serves on
    finally:
        shared.stop()
    assert not shared.alive


def test_the_pool_splits_the_threads_between_its_interpreters(model_config: ModelConfig) -> None:
    four = model_config.model_copy(update={"threads": 4})
    assert [len(SharedDetector(four).detectors), SharedDetector(four).threads_each] == [4, 1]
    one = SharedDetector(four, interpreters=1)
    assert [len(one.detectors), one.threads_each] == [1, 4]
    two = SharedDetector(four, interpreters=2)
    assert [len(two.detectors), two.threads_each] == [2, 2]


def test_an_invoke_lets_python_threads_run(model_config: ModelConfig) -> None:
    """The interpreters release the GIL while they invoke: the cameras' Python (tracking, rules)
    runs beside them, and two interpreters invoke at once."""
    detector = load_detector(model_config.model_copy(update={"threads": 1}))
    tensor = np.zeros((1, *detector.input_size[::-1], 3), np.uint8)
    ticks = [0]
    during: list[int] = []

    def invoking() -> None:
        for _ in range(20):
            before = ticks[0]
            detector.invoke(tensor)
            during.append(ticks[0] - before)

    # A long switch interval: a thread holding the GIL through an invoke would be interrupted
    # only every 50 ms, so most invokes would see no tick at all.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.05)
    try:
        t = threading.Thread(target=invoking)
        t.start()
        deadline = time.monotonic() + 60
        while t.is_alive() and time.monotonic() < deadline:
            ticks[0] += 1
        t.join()
    finally:
        sys.setswitchinterval(interval)
    assert len(during) == 20
    assert sorted(during)[5] > 100  # 15 of 20 invokes ran beside the ticking loop

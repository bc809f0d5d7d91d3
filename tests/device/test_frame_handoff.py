"""The hand-off between a camera's capture and detect threads."""

import threading
from datetime import UTC, datetime

import numpy as np

from device.frame_handoff import FrameHandoff
from device.frames import Frame


def _frame(i: int) -> Frame:
    return Frame(np.zeros((2, 2, 3), np.uint8), datetime(2026, 1, 1, tzinfo=UTC), i)


def test_latest_wins_replaces_an_untaken_frame_and_counts_it() -> None:
    handoff = FrameHandoff(lossless=False, stop=threading.Event())
    for i in range(3):
        handoff.put(_frame(i))
    taken = handoff.take()
    assert taken is not None and taken.index == 2
    assert handoff.dropped == 2


def test_lossless_keeps_every_frame_in_order_then_the_end() -> None:
    handoff = FrameHandoff(lossless=True, stop=threading.Event())
    got: list[int] = []

    def detect() -> None:
        while (frame := handoff.take()) is not None:
            got.append(frame.index)

    reader = threading.Thread(target=detect)
    reader.start()
    for i in range(20):  # more than the queue holds: the capture side waits
        handoff.put(_frame(i))
    handoff.end(reader_alive=reader.is_alive)
    reader.join(10)
    assert got == list(range(20))
    assert handoff.dropped == 0


def test_a_stopped_camera_ends_even_with_a_full_queue_and_no_reader() -> None:
    stop = threading.Event()
    handoff = FrameHandoff(lossless=True, stop=stop)
    for i in range(4):
        handoff.put(_frame(i))
    stop.set()
    handoff.put(_frame(4))  # returns: stopping
    handoff.end(reader_alive=lambda: True)  # makes room for the end marker
    assert [f.index for f in iter(handoff.take, None)] == [1, 2, 3]

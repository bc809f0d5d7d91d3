import logging
import queue
import threading

import pytest

from matthan.worker_thread import WorkerThread
from tests.support.net import wait_until


def test_steps_until_stopped_then_is_not_alive() -> None:
    steps: list[int] = []
    worker: WorkerThread

    def step() -> None:
        steps.append(1)
        worker.stopping.wait(0.01)

    worker = WorkerThread("stepper", step)
    worker.start()
    assert worker.alive
    wait_until(lambda: len(steps) >= 3, 10)
    worker.stop(5)
    assert not worker.alive and worker.crashes == 0
    count = len(steps)
    worker.stopping.wait(0.05)
    assert len(steps) == count, "no step after stop returned"


def test_the_wake_hook_ends_a_wait_on_the_owners_queue() -> None:
    inbox: queue.SimpleQueue[str] = queue.SimpleQueue()
    seen: list[str] = []
    worker = WorkerThread("waiter", lambda: seen.append(inbox.get()), wake=lambda: inbox.put("wake"))
    worker.start()
    inbox.put("job")
    wait_until(lambda: seen == ["job"], 10)
    worker.stop(5)  # the step blocks on the queue without a timeout: only the hook ends it
    assert not worker.alive and seen == ["job", "wake"]


def test_a_crash_ends_the_thread_is_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    def step() -> None:
        raise RuntimeError("boom")

    worker = WorkerThread("crasher", step)
    with caplog.at_level(logging.ERROR, logger="matthan.worker"):
        worker.start()
        wait_until(lambda: not worker.alive, 10)
    assert worker.crashes == 1
    assert "thread crashed thread=crasher crashes=1" in caplog.text and "boom" in caplog.text


def test_a_stopped_worker_starts_again() -> None:
    ran = threading.Event()
    worker: WorkerThread

    def step() -> None:
        ran.set()
        worker.stopping.wait(1)

    worker = WorkerThread("again", step)
    worker.start()
    worker.stop(5)
    ran.clear()
    worker.start()
    assert ran.wait(5) and worker.alive
    worker.stop(5)
    assert not worker.alive

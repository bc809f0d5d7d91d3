"""Waiting for processes to end by the kernel's word (a pidfd), not by polling or sleeping."""

import contextlib
import os
import queue
import select
import signal
import subprocess
import threading
import time
from collections.abc import Iterable
from typing import IO

from tests.support.net import patient


def gone(pid: int) -> bool:
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], 0)[0])
    finally:
        os.close(fd)


def wait_gone(pids: Iterable[int], timeout: float) -> list[int]:
    """Wait until every pid has exited (a zombie counts: it runs nothing); returns the survivors.

    A pidfd becomes readable when its process exits, whoever its parent is now, so orphans
    reparented to an init that does not reap them are seen too.
    """
    fds: dict[int, int] = {}
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            fds[pid] = os.pidfd_open(pid)
    deadline = time.monotonic() + timeout
    try:
        while fds:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            readable, _, _ = select.select(list(fds.values()), [], [], left)
            for pid, fd in list(fds.items()):
                if fd in readable:
                    os.close(fds.pop(pid))
        return sorted(fds)
    finally:
        for fd in fds.values():
            os.close(fd)


def read_line_starting(proc: "subprocess.Popen[str]", prefix: str, timeout: float) -> str:
    """The first stdout line of proc that starts with prefix: the process's readiness signal."""
    found: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(prefix):
                found.put(line.rstrip("\n"))
                return
        found.put(None)

    threading.Thread(target=read, daemon=True).start()
    timeout = patient(timeout)
    try:
        line = found.get(timeout=timeout)
    except queue.Empty:
        raise TimeoutError(f"no line starting with {prefix!r} within {timeout}s") from None
    if line is None:
        raise RuntimeError(f"exited with {proc.wait()} before printing {prefix!r}")
    return line


def kill_all(pids: Iterable[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


class LineWatcher:
    """Reads a process's output stream to its end (so the pipe never fills and blocks the
    process) and lets a test wait for a line containing some text: a readiness signal."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._ended = False
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    def wait_for(self, text: str, timeout: float) -> str:
        def found() -> str | None:
            return next((ln for ln in self.lines if text in ln), None)

        timeout = patient(timeout)
        with self._cond:
            if not self._cond.wait_for(lambda: found() is not None or self._ended, timeout):
                raise TimeoutError(f"no line with {text!r} within {timeout}s; last: {self.lines[-5:]}")
            line = found()
            if line is None:
                raise RuntimeError(f"the stream ended without a line with {text!r}; last: {self.lines[-5:]}")
            return line

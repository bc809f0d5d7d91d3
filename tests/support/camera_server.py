"""A live camera stand-in: MPEG-TS over TCP, the clip at its own rate, looped, to every client.

Each connection gets its own `ffmpeg -re -stream_loop -1 … -c copy -f mpegts` writing into the
socket, as a camera serves its main and sub streams to the recorder, the prober and the capture
at once. stop() closes the port and every open connection: the camera is gone.
"""

import contextlib
import socket
import subprocess
import threading
from pathlib import Path

from device.ffmpeg import FFMPEG


class TsCamera:
    def __init__(self, clip: Path) -> None:
        self.clip = clip
        self._srv = socket.socket()
        self._srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._srv.bind(("127.0.0.1", 0))
        self._srv.listen(8)
        self.port = self._srv.getsockname()[1]
        self._procs: list[subprocess.Popen[bytes]] = []
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def start(self) -> "TsCamera":
        self._thread.start()
        return self

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._srv.accept()
            except OSError:
                return
            proc = subprocess.Popen(
                [FFMPEG, "-v", "quiet", "-re", "-stream_loop", "-1", "-i", str(self.clip), "-map", "0:v",
                 "-c", "copy", "-f", "mpegts", "pipe:1"],
                stdin=subprocess.DEVNULL, stdout=conn.fileno(),
            )  # fmt: skip
            with self._lock:
                if self._stopped.is_set():
                    proc.kill()
                self._procs.append(proc)
                self._conns.append(conn)

    def stop(self) -> None:
        self._stopped.set()
        with contextlib.suppress(OSError):
            self._srv.shutdown(socket.SHUT_RDWR)
        self._srv.close()
        with self._lock:
            for proc in self._procs:
                proc.kill()
                proc.wait(5)
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
        self._thread.join(5)

"""A real SMTP server as a separate process: `python -m tests.cloud.attention.smtpd PORT DIR`.

aiosmtpd's controller; every message received is written to DIR as <n>.eml. Prints "ready"."""

import sys
import threading
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


class Saver:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.n = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        with self.lock:
            self.n += 1
            tmp = self.folder / f"{self.n}.tmp"
            tmp.write_bytes(envelope.content)
            tmp.rename(self.folder / f"{self.n}.eml")
        return "250 OK"


def main(argv: list[str]) -> int:
    port, folder = int(argv[0]), Path(argv[1])
    folder.mkdir(parents=True, exist_ok=True)
    controller = Controller(Saver(folder), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

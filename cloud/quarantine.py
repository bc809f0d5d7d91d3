"""Messages the ingest could not store, kept as files for an operator to inspect and replay.

A folder, not a table: what lands here is what the database refused or what made our own code
fail, so writing it back into that database is the step most likely to fail again, and a folder
needs no schema change. Each message is a pair named by the hash of its topic and payload (so a
device resending the same message, as it will without a receipt, overwrites its own copy):

    {sha}.bin   the payload exactly as it arrived
    {sha}.json  topic, reason, when, and how the ingest classified it

The folder is bounded by a file count; past it, a message is only logged and counted.
"""

import hashlib
import json
import logging
import os
from pathlib import Path

from matthan_wire import utc_now
from matthan_wire.timeutil import format_ts

log = logging.getLogger("matthan.cloud.quarantine")


class Quarantine:
    def __init__(self, folder: str | Path, max_messages: int = 10_000) -> None:
        self.folder = Path(folder)
        self.max_messages = max_messages
        self.kept = 0
        self.not_kept = 0
        self._count: int | None = None

    def keep(self, topic: str, payload: bytes, reason: str, kind: str) -> Path | None:
        """Write the message; None (logged, counted) when the folder is full or unwritable."""
        sha = hashlib.sha256(topic.encode("utf-8", "replace") + b"\0" + payload).hexdigest()[:32]
        body = self.folder / f"{sha}.bin"
        try:
            if self._count is None:
                self.folder.mkdir(parents=True, exist_ok=True)
                self._count = sum(1 for _ in self.folder.glob("*.bin"))
            fresh = not body.exists()
            if fresh and self._count >= self.max_messages:
                self.not_kept += 1
                return None
            meta = {
                "topic": topic[:1000],
                "kind": kind,
                "reason": reason[:2000],
                "at": format_ts(utc_now()),
                "bytes": len(payload),
            }
            _write(body, payload)
            _write(body.with_suffix(".json"), json.dumps(meta, ensure_ascii=False).encode())
        except OSError as exc:
            self.not_kept += 1
            log.error("quarantine write failed folder=%s error=%s", self.folder, exc)
            return None
        if fresh:
            self._count += 1
        self.kept += 1
        return body


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)

"""A station's memory on disk (SQLite): the alerts it has shown, and the messages it could not handle.

Shown ids make a restarted station show nothing twice, however many copies the device's replays,
the broker's session and the cloud's resends bring. An id is written after its line is printed
and committed once per handled batch, so a crash can show an alert twice, never lose it. The ids
are bounded (the oldest go first): a copy can only come from the device's outbox or the cloud's
resend window, both far shorter than `keep` alerts of one ward.

Quarantine keeps the last `QUARANTINE_MAX` messages that failed (topic, the payload's head, the
error), for whoever investigates; nothing reads them back.
"""

import logging
import sqlite3
import time
from pathlib import Path

from ward.errors import WardError

log = logging.getLogger("matthan.ward")

QUARANTINE_MAX = 1000
QUARANTINE_BYTES = 64 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS shown (event_id TEXT PRIMARY KEY, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS shown_at ON shown (at);
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY, at REAL NOT NULL, topic TEXT NOT NULL, payload BLOB NOT NULL, error TEXT NOT NULL
);
"""


class StationState:
    def __init__(self, path: Path | None, keep: int = 100_000) -> None:
        self.path = path
        self.keep = keep
        target = ":memory:"
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise WardError(f"station state {path}: {exc.strerror}") from None
            target = str(path)
        try:
            # The listener hands it from the thread that builds it to the one that runs it.
            self._db = sqlite3.connect(target, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise WardError(f"station state {path}: {exc}") from None
        self._open = False
        self._added = 0

    def shown(self, event_id: str) -> bool:
        row = self._db.execute("SELECT 1 FROM shown WHERE event_id = ?", (event_id,)).fetchone()
        return row is not None

    def add(self, event_id: str) -> None:
        self._begin()
        self._db.execute("INSERT OR IGNORE INTO shown (event_id, at) VALUES (?, ?)", (event_id, time.time()))
        self._added += 1

    def quarantine(self, topic: str, payload: bytes, error: str) -> None:
        self._begin()
        self._db.execute(
            "INSERT INTO quarantine (at, topic, payload, error) VALUES (?, ?, ?, ?)",
            (time.time(), topic[:500], payload[:QUARANTINE_BYTES], error[:2000]),
        )
        self._db.execute(
            "DELETE FROM quarantine WHERE id <= (SELECT MAX(id) FROM quarantine) - ?", (QUARANTINE_MAX,)
        )

    def commit(self) -> None:
        if not self._open:
            return
        self._db.execute("COMMIT")
        self._open = False
        if self._added >= 1000:
            self._added = 0
            self._prune()

    def quarantined(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM quarantine").fetchone()[0])

    def close(self) -> None:
        self.commit()
        self._db.close()

    def _begin(self) -> None:
        if not self._open:
            self._db.execute("BEGIN")
            self._open = True

    def _prune(self) -> None:
        (count,) = self._db.execute("SELECT COUNT(*) FROM shown").fetchone()
        if count > self.keep:
            self._db.execute(
                "DELETE FROM shown WHERE event_id IN (SELECT event_id FROM shown ORDER BY at LIMIT ?)",
                (count - self.keep,),
            )

"""The durable upload queue: the clips, snapshots and sidecars waiting for the cloud, and what it
has confirmed.

The queue is SQLite in WAL mode with synchronous=FULL: an entry committed here survives an agent
restart and a power cut. It is also the index of the media folder: retention evicts only files
the queue knows (device/retention.py), never whatever else happens to be in the folder. The
uploader (device/uploader.py) drains it; the clip maker keeps its pending cuts in it too.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from device.errors import DeviceError
from matthan.hashing import sha256_file
from matthan_wire.config import StorageConfig

# The uploader's logger: the queue was part of it, and operators filter by it.
log = logging.getLogger("device.uploader")

Kind = Literal["clip", "snapshot", "sidecar", "crop", "manifest"]
# Small first: the snapshot and the sidecar say what happened while the clip is still on its way.
_PRIORITY = {"snapshot": 0, "crop": 1, "sidecar": 1, "manifest": 1, "clip": 2}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS media (
    event_id    TEXT NOT NULL,
    kind        TEXT NOT NULL,
    path        TEXT NOT NULL,
    size        INTEGER NOT NULL,
    sha256      TEXT NOT NULL,
    created_at  REAL NOT NULL,
    -- pending: to upload; uploaded: the cloud confirmed the checksum; evicted: deleted unconfirmed
    -- (counted); removed: deleted after confirmation; failed: the cloud refuses it for good
    state       TEXT NOT NULL DEFAULT 'pending',
    priority    INTEGER NOT NULL,
    next_try    REAL NOT NULL DEFAULT 0,
    attempts    INTEGER NOT NULL DEFAULT 0,
    sent_offset INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    done_at     REAL,
    PRIMARY KEY (event_id, kind)
);
CREATE INDEX IF NOT EXISTS media_due ON media (state, priority, next_try, created_at);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
-- Event ends whose clip is not cut yet: an agent restart during post-capture must not lose them.
CREATE TABLE IF NOT EXISTS clip_jobs (
    event_id TEXT PRIMARY KEY, alert TEXT NOT NULL, created_at REAL NOT NULL
);
"""


class UploadError(DeviceError):
    """The upload queue cannot be opened or a file cannot be queued."""


@dataclass(frozen=True)
class MediaItem:
    event_id: str
    kind: Kind
    path: Path
    size: int
    sha256: str
    created_at: float
    state: str
    attempts: int
    sent_offset: int
    last_error: str | None


@dataclass(frozen=True)
class Backlog:
    count: int
    bytes: int
    oldest_age_s: float | None


def queue_path(storage: StorageConfig) -> Path:
    """Where the upload queue lives: on the persistent storage, never on the tmpfs cache."""
    return Path(storage.path) / "uploads.db"


class UploadQueue:
    """The durable index of media on the device and what the cloud has confirmed."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = Path(db_path)
        try:
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.db_path, check_same_thread=False, isolation_level=None, timeout=30
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed entry must survive a power cut, not only a crash.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise UploadError(f"cannot open the upload queue {self.db_path}: {exc}") from None
        self._lock = threading.Lock()
        self.changed = threading.Event()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add(self, event_id: str, kind: Kind, path: Path, sha256: str | None = None) -> MediaItem:
        """Queue a file; the same event, kind and content again changes nothing (idempotent)."""
        if kind not in _PRIORITY:
            raise UploadError(f"unknown media kind {kind!r}")
        path = Path(path)
        try:
            size = path.stat().st_size
            digest = sha256 or sha256_file(path)
        except OSError as exc:
            raise UploadError(f"cannot queue {path}: {exc}") from None
        with self._lock:
            row = self._db.execute(
                "SELECT sha256, state FROM media WHERE event_id=? AND kind=?", (event_id, kind)
            ).fetchone()
            if row is not None and row[0] == digest:
                pass
            elif row is not None and row[1] == "uploaded":
                # The cloud holds another version; it would answer 409 for ever. Keep the record.
                log.error(
                    "upload refused event=%s kind=%s reason=a different file was already uploaded",
                    event_id,
                    kind,
                )
            else:
                self._db.execute(
                    "INSERT OR REPLACE INTO media (event_id, kind, path, size, sha256, created_at, priority)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (event_id, kind, str(path), size, digest, time.time(), _PRIORITY[kind]),
                )
        self.changed.set()
        item = self.get(event_id, kind)
        assert item is not None
        return item

    def get(self, event_id: str, kind: str) -> MediaItem | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLS} FROM media WHERE event_id=? AND kind=?", (event_id, kind)
            ).fetchone()
        return _item(row) if row else None

    def next_due(self, now: float | None = None) -> MediaItem | None:
        now = time.time() if now is None else now
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLS} FROM media WHERE state='pending' AND next_try<=?"
                " ORDER BY priority, created_at LIMIT 1",
                (now,),
            ).fetchone()
        return _item(row) if row else None

    def has_more_urgent(self, item: MediaItem, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM media WHERE state='pending' AND priority<? AND next_try<=? LIMIT 1",
                (_PRIORITY[item.kind], now),
            ).fetchone()
        return row is not None

    def seconds_to_next(self, now: float | None = None) -> float | None:
        now = time.time() if now is None else now
        with self._lock:
            row = self._db.execute("SELECT MIN(next_try) FROM media WHERE state='pending'").fetchone()
        return None if row[0] is None else max(0.0, row[0] - now)

    def set_offset(self, item: MediaItem, offset: int) -> None:
        self._update(item, "sent_offset=?", offset)

    def retry_later(self, item: MediaItem, delay: float, error: str) -> None:
        self._update(item, "next_try=?, attempts=attempts+1, last_error=?", time.time() + delay, error[:500])

    def mark_uploaded(self, item: MediaItem) -> None:
        # A file retention evicted while its upload was in flight did reach the cloud after all.
        self._update(
            item,
            "state=CASE state WHEN 'evicted' THEN 'removed' ELSE 'uploaded' END,"
            " done_at=?, last_error=NULL, sent_offset=size",
            time.time(),
        )
        self.bump("uploaded_total")

    def mark_failed(self, item: MediaItem, error: str) -> None:
        # Only from pending: a file retention evicted meanwhile stays counted as evicted.
        self._update(
            item,
            "state=CASE state WHEN 'pending' THEN 'failed' ELSE state END, done_at=?, last_error=?",
            time.time(),
            error[:500],
        )
        self.bump("failed_total")

    def mark_deleted(self, item: MediaItem) -> None:
        """Retention deleted the file: 'removed' if the cloud had it, 'evicted' if not (counted)."""
        state = "removed" if item.state == "uploaded" else "evicted"
        with self._lock:
            self._db.execute(
                "UPDATE media SET state=?, done_at=? WHERE event_id=? AND kind=? AND state=?",
                (state, time.time(), item.event_id, item.kind, item.state),
            )
        if state == "evicted":
            self.bump("evicted_unconfirmed_total")

    def stored(self) -> list[MediaItem]:
        """Files the queue knows and still keeps on disk, oldest first."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLS} FROM media WHERE state IN ('pending', 'uploaded', 'failed')"
                " ORDER BY created_at"
            ).fetchall()
        return [_item(r) for r in rows]

    def backlog(self, now: float | None = None) -> Backlog:
        """(count, bytes, oldest age in seconds) of what still waits for the cloud."""
        now = time.time() if now is None else now
        with self._lock:
            n, size, oldest = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(size), 0), MIN(created_at) FROM media WHERE state='pending'"
            ).fetchone()
        return Backlog(int(n), int(size), None if oldest is None else max(0.0, now - oldest))

    def bump(self, name: str, by: int = 1) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO counters (name, value) VALUES (?, ?)"
                " ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                (name, by),
            )

    def counter(self, name: str) -> int:
        with self._lock:
            row = self._db.execute("SELECT value FROM counters WHERE name=?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def save_job(self, event_id: str, alert_json: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO clip_jobs (event_id, alert, created_at) VALUES (?, ?, ?)",
                (event_id, alert_json, time.time()),
            )

    def drop_job(self, event_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM clip_jobs WHERE event_id=?", (event_id,))

    def jobs(self) -> list[str]:
        """The saved event ends (Alert JSON), oldest first."""
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT alert FROM clip_jobs ORDER BY created_at")]

    def _update(self, item: MediaItem, assignments: str, *values: object) -> None:
        # Guarded by the content hash: a file replaced meanwhile keeps its own progress.
        with self._lock:
            self._db.execute(
                f"UPDATE media SET {assignments} WHERE event_id=? AND kind=? AND sha256=?",
                (*values, item.event_id, item.kind, item.sha256),
            )


_COLS = "event_id, kind, path, size, sha256, created_at, state, attempts, sent_offset, last_error"


def _item(row: tuple[Any, ...]) -> MediaItem:
    event_id, kind, path, size, sha, created, state, attempts, offset, err = row
    return MediaItem(
        event_id, kind, Path(path), int(size), sha, float(created), state, int(attempts), int(offset), err
    )

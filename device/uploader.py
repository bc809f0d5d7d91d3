"""The durable upload queue and the uploader: clips, snapshots and sidecars to the cloud.

The queue is SQLite in WAL mode with synchronous=FULL: an entry committed here survives an agent
restart and a power cut. It is also the index of the media folder: retention evicts only files
the queue knows (device/retention.py), never whatever else happens to be in the folder.

The protocol is the offset-based, resumable one in docs/internals.md:
HEAD learns how many bytes the server holds; PATCH sends the rest in chunks, each with its own
SHA-256 (`Chunk-Sha256`) and the whole file's (`Upload-Sha256`); the server answers the last
chunk with 201 once the whole file's checksum matches. A 409 carries the server's offset (we
continue from there), a 400 means the chunk arrived damaged (resend it), a 422 means the whole
file did not match (the server dropped it; start again from zero, after re-checking our copy).
Auth refusals (401/403) are logged as what they are and retried slowly. Every call has a timeout;
failures back off with jitter, per item, so one stuck file does not hold up the others.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx

from device.errors import DeviceError
from matthan.backoff import Backoff
from matthan_wire.config import StorageConfig
from matthan_wire.upload import (
    CHUNK_SHA256,
    CONTENT_TYPE,
    UPLOAD_COMPLETE,
    UPLOAD_LENGTH,
    UPLOAD_OFFSET,
    UPLOAD_SHA256,
    UploadStatus,
)

log = logging.getLogger(__name__)

Kind = Literal["clip", "snapshot", "sidecar", "crop", "manifest"]
KINDS: tuple[Kind, ...] = ("snapshot", "crop", "sidecar", "manifest", "clip")
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


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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


@dataclass
class UploaderStats:
    uploaded: int = 0
    bytes_sent: int = 0
    chunks_sent: int = 0
    chunks_rejected: int = 0  # 400: damaged on the way, resent
    offset_resyncs: int = 0  # 409: continued from the server's offset
    restarts_from_zero: int = 0  # 422: whole-file checksum mismatch
    auth_failures: int = 0
    errors: int = 0
    resumed_at: int | None = None  # the last offset a resumed upload continued from (> 0)
    last_error: str | None = None
    connected: bool | None = None


class _Retry(Exception):
    def __init__(self, reason: str, delay: float | None = None) -> None:
        super().__init__(reason)
        self.delay = delay


def token_from_file(path: Path | str) -> Callable[[], str | None]:
    """The upload token as enrollment left it, read at each call: a re-enrolment needs no restart."""

    def read() -> str | None:
        try:
            return Path(path).read_text(encoding="utf-8").strip() or None
        except OSError as exc:
            log.error("upload token unreadable path=%s error=%s", path, exc.strerror)
            return None

    return read


class Uploader:
    """One thread draining the queue to `{cloud}/api/v1/media/{event_id}/{kind}`."""

    def __init__(
        self,
        uploads: UploadQueue,
        cloud_url: str,
        token: str | Callable[[], str | None] | None,
        *,
        chunk_bytes: int = 256 * 1024,
        max_bytes_per_s: float | None = None,
        timeout_s: float = 15.0,
        ca: str | None = None,
        backoff: Backoff | None = None,
        auth_retry_s: float = 300.0,
        max_chunk_rejects: int = 5,
    ) -> None:
        if chunk_bytes < 1:
            raise UploadError("chunk_bytes must be positive")
        if max_bytes_per_s is not None and max_bytes_per_s <= 0:
            raise UploadError("the bandwidth cap must be positive (bytes per second), or none")
        self.uploads = uploads
        self.base = cloud_url.rstrip("/") + "/api/v1/media"
        self._token = token
        # Under a cap, chunks are no longer than one second's worth, so the pacing stays smooth.
        self.chunk_bytes = min(chunk_bytes, int(max_bytes_per_s)) if max_bytes_per_s else chunk_bytes
        self.max_bytes_per_s = max_bytes_per_s
        self._timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0))
        # A private CA (the project's own) for a cloud that is not under a public one.
        try:
            self._verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca) if ca else True
        except (OSError, ssl.SSLError) as exc:
            raise UploadError(f"cloud.ca {ca}: not a readable CA certificate ({exc})") from None
        self._backoff_proto = backoff or Backoff(initial=1.0, maximum=120.0)
        self._backoffs: dict[tuple[str, str], Backoff] = {}
        self.auth_retry_s = auth_retry_s
        self.max_chunk_rejects = max_chunk_rejects
        self.stats = UploaderStats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: httpx.Client | None = None
        # Pacing state for the bandwidth cap, across items.
        self._pace_t0 = time.monotonic()
        self._pace_bytes = 0

    def start(self) -> None:
        self._stop.clear()
        self._client = httpx.Client(timeout=self._timeout, verify=self._verify)
        self._thread = threading.Thread(target=self._run, name="uploader", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.uploads.changed.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._client is not None:
            self._client.close()
            self._client = None

    def backlog(self) -> Backlog:
        return self.uploads.backlog()

    # -- the loop --------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            # Cleared before looking: an add() or stop() from now on wakes the wait below at once.
            self.uploads.changed.clear()
            if self._stop.is_set():
                return
            item = self.uploads.next_due()
            if item is None:
                wait = self.uploads.seconds_to_next()
                self.uploads.changed.wait(min(wait, 5.0) if wait is not None else 5.0)
                continue
            try:
                self.upload_one(item)
            except Exception as exc:  # a disk error on one file must not end every later upload
                delay = self._backoff_proto.maximum
                log.exception("upload error event=%s kind=%s retry_in=%.0fs", item.event_id, item.kind, delay)
                self.stats.errors += 1
                self.stats.last_error = f"{exc.__class__.__name__}: {exc}"
                self.uploads.retry_later(item, delay, self.stats.last_error)

    def upload_one(self, item: MediaItem) -> bool:
        """One attempt at one file: True when the cloud has confirmed it."""
        key = (item.event_id, item.kind)
        backoff = self._backoffs.setdefault(
            key, Backoff(self._backoff_proto.initial, self._backoff_proto.maximum, self._backoff_proto.factor)
        )
        try:
            done = self._send(item)
        except _Retry as exc:
            delay = exc.delay if exc.delay is not None else backoff.next()
            self.stats.last_error = str(exc)
            self.uploads.retry_later(item, delay, str(exc))
            log.warning(
                "upload retry event=%s kind=%s reason=%s retry_in=%.1fs", item.event_id, item.kind, exc, delay
            )
            return False
        if done:
            self._backoffs.pop(key, None)
        return done

    def _headers(self) -> dict[str, str]:
        token = self._token() if callable(self._token) else self._token
        return {"Authorization": f"Bearer {token}"} if token else {}

    def _call(self, method: str, url: str, **kw: object) -> httpx.Response:
        assert self._client is not None, "start() the uploader first"
        try:
            resp = self._client.request(method, url, **kw)  # type: ignore[arg-type]
        except httpx.HTTPError as exc:
            self.stats.errors += 1
            self.stats.connected = False
            raise _Retry(f"{method} failed: {exc.__class__.__name__}: {exc}") from None
        self.stats.connected = True
        if resp.status_code in (401, 403):
            self.stats.auth_failures += 1
            what = "does not accept this device's token" if resp.status_code == 401 else "refuses this upload"
            log.error(
                "upload refused: the cloud %s (HTTP %d: %s); check the device's enrollment and "
                "cloud.token_file; retrying in %.0fs",
                what, resp.status_code, resp.text[:200], self.auth_retry_s,
            )  # fmt: skip
            raise _Retry(f"HTTP {resp.status_code} from {method}: token refused", self.auth_retry_s)
        if resp.status_code >= 500 or resp.status_code == 429:
            self.stats.errors += 1
            raise _Retry(f"HTTP {resp.status_code} from {method}")
        return resp

    def _send(self, item: MediaItem) -> bool:
        url = f"{self.base}/{item.event_id}/{item.kind}"
        if not item.path.is_file():
            self.uploads.mark_failed(item, "file vanished before upload")
            log.error(
                "upload failed event=%s kind=%s reason=file %s is gone", item.event_id, item.kind, item.path
            )
            return False
        head = self._call("HEAD", url, headers=self._headers())
        if head.status_code == UploadStatus.NOT_FOUND:
            offset = 0
        elif head.status_code == UploadStatus.ALREADY_COMPLETE:
            offset = int(head.headers.get(UPLOAD_OFFSET, "0"))
            if offset > 0 and offset != item.sent_offset:
                log.info("upload resume event=%s kind=%s offset=%d", item.event_id, item.kind, offset)
            if offset > 0:
                self.stats.resumed_at = offset
        else:
            raise _Retry(f"HEAD answered {head.status_code}: {head.text[:200]}")
        rejects = 0
        restarts = 0
        with item.path.open("rb") as f:
            while not self._stop.is_set():
                if offset > 0 and self.uploads.has_more_urgent(item):
                    # A new alert's snapshot must not wait behind a long clip; the clip resumes after.
                    log.info(
                        "upload paused event=%s kind=%s offset=%d for a more urgent file",
                        item.event_id,
                        item.kind,
                        offset,
                    )
                    return False
                if offset > item.size:
                    offset = 0  # the server holds more than our file: only a restart from zero can fix that
                f.seek(offset)
                body = f.read(min(self.chunk_bytes, item.size - offset))
                self._pace(len(body))
                headers = {
                    **self._headers(),
                    UPLOAD_OFFSET: str(offset),
                    UPLOAD_LENGTH: str(item.size),
                    UPLOAD_SHA256: item.sha256,
                    CHUNK_SHA256: hashlib.sha256(body).hexdigest(),
                    "Content-Type": CONTENT_TYPE,
                }
                resp = self._call("PATCH", url, content=body, headers=headers)
                code = resp.status_code
                if code in (UploadStatus.ALREADY_COMPLETE, UploadStatus.COMPLETED):
                    if resp.headers.get(UPLOAD_COMPLETE, "1") != "1":
                        raise _Retry(f"PATCH answered {code} without Upload-Complete: 1")
                    self.stats.bytes_sent += len(body)
                    self.stats.chunks_sent += 1
                    self.stats.uploaded += 1
                    self.uploads.mark_uploaded(item)
                    log.info("upload done event=%s kind=%s size=%d", item.event_id, item.kind, item.size)
                    return True
                if code == UploadStatus.CHUNK_STORED:
                    self.stats.bytes_sent += len(body)
                    self.stats.chunks_sent += 1
                    rejects = 0
                    offset = int(resp.headers.get(UPLOAD_OFFSET, offset + len(body)))
                    self.uploads.set_offset(item, offset)
                    continue
                if code == UploadStatus.WRONG_OFFSET:
                    server = resp.headers.get(UPLOAD_OFFSET)
                    if resp.headers.get(UPLOAD_COMPLETE) == "1" or server is None:
                        # A completed upload with another checksum: the cloud will never take this one.
                        self.uploads.mark_failed(
                            item, f"409: the cloud holds a different file: {resp.text[:200]}"
                        )
                        log.error(
                            "upload conflict event=%s kind=%s reason=%s",
                            item.event_id,
                            item.kind,
                            resp.text[:200],
                        )
                        return False
                    self.stats.offset_resyncs += 1
                    log.info(
                        "upload offset resync event=%s kind=%s ours=%d server=%s",
                        item.event_id,
                        item.kind,
                        offset,
                        server,
                    )
                    offset = int(server)
                    continue
                if code == UploadStatus.BAD_CHUNK:
                    self.stats.chunks_rejected += 1
                    rejects += 1
                    log.warning(
                        "upload chunk rejected event=%s kind=%s offset=%d (checksum); resending",
                        item.event_id,
                        item.kind,
                        offset,
                    )
                    if rejects >= self.max_chunk_rejects:
                        raise _Retry(
                            f"{rejects} chunks in a row rejected at offset {offset}: {resp.text[:200]}"
                        )
                    continue
                if code == UploadStatus.CHECKSUM_MISMATCH:
                    restarts += 1
                    self.stats.restarts_from_zero += 1
                    if sha256_file(item.path) != item.sha256:
                        self.uploads.mark_failed(item, "the file changed on disk after it was queued")
                        log.error(
                            "upload failed event=%s kind=%s reason=file changed on disk since it was cut",
                            item.event_id,
                            item.kind,
                        )
                        return False
                    log.warning(
                        "upload checksum mismatch event=%s kind=%s; sending again from zero",
                        item.event_id,
                        item.kind,
                    )
                    if restarts >= 3:
                        raise _Retry("whole-file checksum refused three times")
                    offset = 0
                    continue
                if code == UploadStatus.GONE:
                    # The cloud deleted this event's media once their purpose was served: never sent again.
                    self.uploads.mark_failed(item, f"410: {resp.text[:200]}")
                    log.warning("upload refused event=%s kind=%s reason=deleted by the cloud's retention",
                                item.event_id, item.kind)  # fmt: skip
                    return False
                if code == UploadStatus.TOO_LARGE:
                    self.uploads.mark_failed(item, f"413: over the cloud's size limit ({item.size} bytes)")
                    log.error(
                        "upload failed event=%s kind=%s reason=over the cloud's size limit size=%d",
                        item.event_id,
                        item.kind,
                        item.size,
                    )
                    return False
                raise _Retry(f"PATCH answered {code}: {resp.text[:200]}")
        return False

    def _pace(self, nbytes: int) -> None:
        """Sleep so that the bytes sent stay under the cap (averaged over the last stretch)."""
        if not self.max_bytes_per_s:
            return
        now = time.monotonic()
        if now - self._pace_t0 > 5.0 and self._pace_bytes / (now - self._pace_t0) < self.max_bytes_per_s / 2:
            # An idle stretch is not credit for a burst later.
            self._pace_t0, self._pace_bytes = now, 0
        self._pace_bytes += nbytes
        ahead = self._pace_t0 + self._pace_bytes / self.max_bytes_per_s - now
        if ahead > 0:
            self._stop.wait(ahead)

"""The uploader: the queued clips, snapshots and sidecars to the cloud, one thread, resumable.

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
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from device.upload_queue import Backlog, MediaItem, UploadError, UploadQueue
from matthan.backoff import Backoff
from matthan.hashing import sha256_file
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

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

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

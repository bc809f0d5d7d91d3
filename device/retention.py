"""The device's disk budget: clips, snapshots and sidecars never fill the disk, nor lose evidence early.

Two limits (storage.budget_mb for what we keep, storage.min_free_mb for the filesystem) and one
order: files the cloud has confirmed go first, oldest first; a file the cloud has not confirmed
goes only when nothing confirmed is left, and each such eviction is counted and logged as the
loss it is. Only files the upload queue indexes are ever deleted, and only inside the media
folder: a missing or damaged index must never turn into "delete everything unknown" (the way
Frigate once deleted every recording, docs/lessons.md #6).
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from device.upload_queue import MediaItem, UploadQueue
from matthan_wire.config import StorageConfig

log = logging.getLogger(__name__)

MB = 1024 * 1024


@dataclass
class RetentionStats:
    evicted_confirmed: int = 0
    evicted_unconfirmed: int = 0
    freed_bytes: int = 0
    usage_bytes: int = 0
    free_bytes: int | None = None
    over_budget: bool = False  # still over after evicting everything it may


@dataclass(frozen=True)
class Eviction:
    event_id: str
    kind: str
    size: int
    confirmed: bool


class Retention:
    def __init__(
        self,
        uploads: UploadQueue,
        media_dir: Path,
        budget_bytes: int,
        min_free_bytes: int = 0,
        *,
        extra_usage: Callable[[], int] = lambda: 0,
        disk_free: Callable[[], int] | None = None,
    ) -> None:
        self.uploads = uploads
        self.media_dir = Path(media_dir).resolve()
        self.budget_bytes = budget_bytes
        self.min_free_bytes = min_free_bytes
        # Other things under the budget (the segment cache when it is not on tmpfs).
        self._extra_usage = extra_usage
        self._disk_free = disk_free or (lambda: shutil.disk_usage(self.media_dir).free)
        self._lock = threading.Lock()
        self.stats = RetentionStats()

    @classmethod
    def from_config(
        cls,
        storage: StorageConfig,
        uploads: UploadQueue,
        media_dir: Path,
        extra_usage: Callable[[], int] = lambda: 0,
    ) -> Retention:
        return cls(
            uploads, media_dir, storage.budget_mb * MB, storage.min_free_mb * MB, extra_usage=extra_usage
        )

    def usage(self) -> int:
        return sum(_size_on_disk(i) for i in self.uploads.stored()) + self._extra_usage()

    def enforce(self) -> list[Eviction]:
        """Evict until within budget and above the free-space floor; returns what went, in order."""
        with self._lock:
            items = [i for i in self.uploads.stored() if _size_on_disk(i) > 0]
            usage = sum(_size_on_disk(i) for i in items) + self._extra_usage()
            free = self._disk_free()
            # Confirmed first, oldest first; then unconfirmed, oldest first (stored() is by age).
            order = [i for i in items if i.state == "uploaded"] + [i for i in items if i.state != "uploaded"]
            evicted: list[Eviction] = []
            for item in order:
                if usage <= self.budget_bytes and free >= self.min_free_bytes:
                    break
                size = _size_on_disk(item)
                if not self._delete(item):
                    continue
                usage -= size
                free += size
                confirmed = item.state == "uploaded"
                evicted.append(Eviction(item.event_id, item.kind, size, confirmed))
                self.stats.freed_bytes += size
                if confirmed:
                    self.stats.evicted_confirmed += 1
                    log.info(
                        "evicted event=%s kind=%s size=%d (confirmed by the cloud)",
                        item.event_id,
                        item.kind,
                        size,
                    )
                else:
                    self.stats.evicted_unconfirmed += 1
                    log.error(
                        "evicted UNCONFIRMED event=%s kind=%s size=%d: over the disk budget with nothing "
                        "uploaded left to evict; this evidence never reached the cloud",
                        item.event_id, item.kind, size,
                    )  # fmt: skip
            self.stats.usage_bytes = usage
            self.stats.free_bytes = free
            self.stats.over_budget = usage > self.budget_bytes or free < self.min_free_bytes
            if self.stats.over_budget:
                log.error(
                    "over the disk budget usage=%d budget=%d free=%d min_free=%d; nothing indexed left",
                    usage, self.budget_bytes, free, self.min_free_bytes,
                )  # fmt: skip
            return evicted

    def evicted_unconfirmed_total(self) -> int:
        """Survives restarts: the count lives in the upload queue's database."""
        return self.uploads.counter("evicted_unconfirmed_total")

    def _delete(self, item: MediaItem) -> bool:
        path = item.path.resolve()
        if self.media_dir not in path.parents:
            # The index points outside our folder: that file is not ours to delete.
            log.error(
                "not evicting event=%s kind=%s path=%s: outside %s",
                item.event_id,
                item.kind,
                path,
                self.media_dir,
            )
            return False
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.error("cannot evict event=%s kind=%s path=%s error=%s", item.event_id, item.kind, path, exc)
            return False
        self.uploads.mark_deleted(item)
        return True


def _size_on_disk(item: MediaItem) -> int:
    try:
        return item.path.stat().st_size
    except OSError:
        return 0

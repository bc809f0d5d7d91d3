"""A camera's segment folder: which segment files its recorder wrote, when each began and ended on
the wall clock, what open events still hold, and pruning the rest.

Files are named `{camera}-{session}-{index}.ts`, the session being the millisecond the ffmpeg
process was started. ffmpeg closes a segment (its last write, the file's mtime) the moment it
opens the next, so a segment starts at its predecessor's mtime and ends at its own. The first
segment of a session starts between two directory scans when the recorder saw it appear (and not
before the session began: its name is taken just before ffmpeg starts, device/recorder.py), or, for
files found at start-up, between the session's start and its own last write.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

# The recorder's logger: pruning was always the recorder's to report, and operators filter by it.
log = logging.getLogger("device.recorder")

_NAME_RE = re.compile(r"^(?P<cam>[a-z0-9-]+)-(?P<session>\d{13})-(?P<index>\d{6})\.ts$")
_CLOSE_SLACK = timedelta(milliseconds=50)
_CLOCK_SLACK = timedelta(milliseconds=20)


@dataclass(frozen=True)
class Segment:
    path: Path
    session: int
    # The segment started somewhere in [start_lo, start_hi].
    start_lo: datetime
    start_hi: datetime
    # Best estimate of its end: the next segment's start, or its last write for a session's last.
    end: datetime
    complete: bool
    size: int

    @property
    def start(self) -> datetime:
        return self.start_lo + (self.start_hi - self.start_lo) / 2


@dataclass
class _Seg:
    path: Path
    session: int
    index: int
    # When the recorder saw the file appear (between two scans); None for files found at start-up.
    seen: tuple[datetime, datetime] | None
    size: int = 0
    mtime: datetime | None = None
    mtime_ns: int = -1  # the file's as last converted to `mtime`


class SegmentCache:
    """The index of one camera's segment files and the holds of its open events; thread-safe.

    `writing()` says whether an ffmpeg is writing the newest file right now (it is then incomplete).
    """

    def __init__(self, camera_id: str, folder: Path, segment_s: float, writing: Callable[[], bool]) -> None:
        self.camera_id = camera_id
        self.folder = folder
        self.segment_s = segment_s
        self._writing = writing
        self._lock = threading.Lock()
        # By file name: a scan runs five times a second, and a Path per listed file cost more than
        # the listing itself.
        self._segs: dict[str, _Seg] = {}
        self._writing_then: bool | None = None  # writing() when longest_segment_s was last updated
        self._holds: dict[str, datetime] = {}
        self._last_scan: datetime | None = None
        self.longest_segment_s = segment_s
        self.pruned = 0

    def output(self, session: int) -> list[str]:
        """ffmpeg's segment muxer writing, for one ffmpeg session, the files this cache indexes."""
        pattern = self.folder / f"{self.camera_id}-{session:013d}-%06d.ts"
        return [
            "-f", "segment", "-segment_time", f"{self.segment_s:g}", "-segment_format", "mpegts",
            "-reset_timestamps", "1", str(pattern),
        ]  # fmt: skip

    def segments(self) -> list[Segment]:
        with self._lock:
            return self._segments_locked()

    def usage(self) -> tuple[int, int, datetime | None]:
        """How many segment files, their bytes, and the newest one's last write."""
        with self._lock:
            newest = max((s.mtime for s in self._segs.values() if s.mtime), default=None)
            return len(self._segs), sum(s.size for s in self._segs.values()), newest

    # -- holds: what open events keep from pruning ------------------------------------------------

    def hold(self, key: str, since: datetime) -> None:
        with self._lock:
            self._holds[key] = since

    def holds(self) -> dict[str, datetime]:
        with self._lock:
            return dict(self._holds)

    def take_holds(self, holds: dict[str, datetime]) -> None:
        with self._lock:
            self._holds.update(holds)

    def release(self, key: str) -> None:
        with self._lock:
            self._holds.pop(key, None)

    # -- the index --------------------------------------------------------------------------------

    def scan(self, live_session: int | None = None) -> int:
        """Index new segment files, forget vanished ones; returns how many are new in the live session."""
        began = datetime.now(UTC)
        prefix = f"{self.camera_id}-"
        seen: dict[str, tuple[str, os.stat_result]] = {}
        try:
            with os.scandir(self.folder) as it:
                for entry in it:
                    if entry.name.startswith(prefix) and entry.name.endswith(".ts"):
                        try:
                            seen[entry.name] = (entry.path, entry.stat())
                        except FileNotFoundError:
                            continue
        except FileNotFoundError:
            seen = {}  # the folder is gone, and with it every segment it held
        # A file first listed now was created after the previous listing began and before this one ended.
        listed = datetime.now(UTC)
        new = 0
        with self._lock:
            gone = [name for name in self._segs if name not in seen]
            for name in gone:
                del self._segs[name]
            added = 0
            for name, (path, st) in seen.items():
                seg = self._segs.get(name)
                if seg is None:
                    m = _NAME_RE.match(name)
                    if m is None or m.group("cam") != self.camera_id:
                        continue  # not ours: never touched
                    session, index = int(m.group("session")), int(m.group("index"))
                    live = live_session is not None and session == live_session
                    bracket = None
                    if live and self._last_scan:
                        # Nor can it be older than its ffmpeg, started just after the session was named.
                        after = max(self._last_scan, datetime.fromtimestamp(session / 1000, UTC))
                        bracket = (after - _CLOCK_SLACK, listed)
                    seg = self._segs[name] = _Seg(Path(path), session, index, bracket)
                    added += 1
                    if live:
                        new += 1
                seg.size = st.st_size
                if st.st_mtime_ns != seg.mtime_ns:
                    seg.mtime, seg.mtime_ns = datetime.fromtimestamp(st.st_mtime, UTC), st.st_mtime_ns
            self._last_scan = began
            # A segment is complete once the next one appears or ffmpeg stops writing: only then can
            # the longest one change (the file being written is not complete).
            writing = self._writing()
            if added or gone or writing != self._writing_then:
                self._writing_then = writing
                done = [(s.end - s.start_lo).total_seconds() for s in self._segments_locked() if s.complete]
                self.longest_segment_s = max([self.longest_segment_s, *done])
        return new

    def _segments_locked(self) -> list[Segment]:
        items = sorted(self._segs.values(), key=lambda seg: (seg.session, seg.index))
        live = self._writing()
        out: list[Segment] = []
        prev: _Seg | None = None
        for i, seg in enumerate(items):
            mtime = seg.mtime or datetime.now(UTC)
            if (
                prev is not None
                and prev.session == seg.session
                and prev.index == seg.index - 1
                and prev.mtime
            ):
                # Opened when its predecessor was closed; a few ms of slack for the two system calls.
                lo, hi = prev.mtime - _CLOSE_SLACK, prev.mtime + _CLOSE_SLACK
            elif seg.seen is not None:
                lo, hi = seg.seen
            else:
                lo = datetime.fromtimestamp(seg.session / 1000, UTC)
                hi = mtime
            # A file's times come from the kernel's coarse clock, a tick behind datetime.now().
            lo, hi = min(lo, mtime), min(hi, mtime + _CLOCK_SLACK)
            # The newest file of a running ffmpeg is still being written.
            complete = not (live and i == len(items) - 1)
            out.append(Segment(seg.path, seg.session, lo, hi, mtime, complete, seg.size))
            prev = seg
        return out

    def prune(self, keep_s: float, hold_head_s: float) -> None:
        """Delete complete segments older than `keep_s`, except the first `hold_head_s` of each hold."""
        now = datetime.now(UTC)
        with self._lock:
            window = now - timedelta(seconds=keep_s)
            if not any(seg.mtime is not None and seg.mtime < window for seg in self._segs.values()):
                return  # a segment ends at its last write: none is old enough (most scans)
            heads = [(since, since + timedelta(seconds=hold_head_s)) for since in self._holds.values()]
            doomed = [
                s.path
                for s in self._segments_locked()
                if s.complete and s.end < window and not any(s.end >= a and s.start_lo <= b for a, b in heads)
            ]
        for path in doomed:
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("segment not pruned camera=%s path=%s error=%s", self.camera_id, path, exc)
                continue
            with self._lock:
                self._segs.pop(path.name, None)
                self.pruned += 1

"""The segment index, on files the test writes itself (the recorder's tests run it under ffmpeg)."""

import os
import time
from pathlib import Path

from device.segment_cache import SegmentCache


def _write(folder: Path, session: int, index: int, at: float) -> Path:
    path = folder / f"cam-1-{session:013d}-{index:06d}.ts"
    path.write_bytes(b"\x47" * 188)
    os.utime(path, (at, at))
    return path


def test_the_index_follows_the_folder_and_measures_each_complete_segment(tmp_path: Path) -> None:
    writing = [True]
    cache = SegmentCache("cam-1", tmp_path, 2.0, writing=lambda: writing[0])
    session = int(time.time() * 1000) - 60_000
    t0 = session / 1000
    _write(tmp_path, session, 0, t0 + 2.0)
    _write(tmp_path, session, 1, t0 + 4.0)
    (tmp_path / "cam-10-0000000000001-000000.ts").write_bytes(b"")  # another camera's: never listed
    assert cache.scan(session) == 2
    assert [s.complete for s in cache.segments()] == [True, False]  # ffmpeg writes the newest
    assert cache.longest_segment_s == 2.0  # at least the nominal length; the first starts unknown

    # A 5 s segment closes as the next opens: it started at its predecessor's last write (a few ms
    # of slack before it), and its length counts once it is complete.
    _write(tmp_path, session, 1, t0 + 7.0)
    assert cache.scan(session) == 0
    assert cache.longest_segment_s == 2.0
    _write(tmp_path, session, 2, t0 + 8.0)
    assert cache.scan(session) == 1
    assert round(cache.longest_segment_s, 3) == 5.05

    # ffmpeg stopped: the last segment is complete without a successor, and is measured too.
    _write(tmp_path, session, 2, t0 + 16.0)
    assert cache.scan(session) == 0
    assert round(cache.longest_segment_s, 3) == 5.05
    writing[0] = False
    assert cache.scan(session) == 0
    assert round(cache.longest_segment_s, 3) == 9.05
    assert all(s.complete for s in cache.segments())

    # A file deleted behind the recorder's back is forgotten; its size no longer counts.
    (tmp_path / f"cam-1-{session:013d}-{0:06d}.ts").unlink()
    cache.scan(session)
    count, size, newest = cache.usage()
    assert (count, size) == (2, 2 * 188)
    assert newest is not None and abs(newest.timestamp() - (t0 + 16.0)) < 1e-3


def test_pruning_deletes_what_is_older_than_the_window_unless_held(tmp_path: Path) -> None:
    cache = SegmentCache("cam-1", tmp_path, 2.0, writing=lambda: True)
    now = time.time()
    session = int((now - 40) * 1000)
    paths = [_write(tmp_path, session, i, now - 40 + 2 * (i + 1)) for i in range(20)]
    cache.scan(session)
    cache.prune(keep_s=10.0, hold_head_s=2.0)
    kept = [s.path for s in cache.segments()]
    assert kept == [p for p in paths if p.exists()]
    assert len(kept) == 5 and cache.pruned == 15  # the last 10 s, the newest still being written
    cache.prune(keep_s=10.0, hold_head_s=2.0)
    assert cache.pruned == 15  # nothing more is old enough


def test_a_new_sessions_first_segment_starts_between_the_later_of_scan_and_session_and_its_listing(
    tmp_path: Path,
) -> None:
    cache = SegmentCache("cam-1", tmp_path, 1.0, writing=lambda: True)
    cache.scan()  # the recorder's start-up scan, long before the camera answers its probe
    time.sleep(0.05)
    session = int(time.time() * 1000)  # named just before ffmpeg starts
    _write(tmp_path, session, 0, time.time())
    assert cache.scan(session) == 1
    (first,) = cache.segments()
    # Not from the start-up scan: ffmpeg did not exist then. 20 ms of slack for the coarse clock.
    assert abs(first.start_lo.timestamp() - (session / 1000 - 0.020)) < 1e-3

    # A later segment file seen without its predecessor: between the scan before and this one.
    before = time.time()
    cache.scan(session)
    _write(tmp_path, session, 5, time.time())
    assert cache.scan(session) == 1
    late = cache.segments()[-1]
    assert before - 0.021 <= late.start_lo.timestamp() <= late.start_hi.timestamp() <= time.time() + 0.021

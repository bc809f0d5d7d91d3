"""The disk budget on real clip files: confirmed first, oldest first; unconfirmed last and counted."""

import logging
import subprocess
from pathlib import Path

import pytest

from device.ffmpeg import FFMPEG
from device.retention import Retention
from device.upload_queue import UploadQueue


@pytest.fixture
def clips(tmp_path: Path, assets_dir: Path) -> list[Path]:
    """Five real one-second MP4 clips (by copy) from different parts of the footage."""
    media = tmp_path / "media"
    media.mkdir()
    source = str(assets_dir / "video/one-by-one-person-detection.mp4")
    out = []
    for i in range(5):
        path = media / f"ev-{i}.mp4"
        subprocess.run(
            [FFMPEG, "-v", "error", "-ss", str(2 * i), "-i", source, "-t", "1", "-map", "0:v", "-c", "copy",
             str(path)],
            check=True,
        )  # fmt: skip
        out.append(path)
    return out


def queue_all(uploads: UploadQueue, clips: list[Path]) -> None:
    for i, path in enumerate(clips):  # queued in age order: ev-0 is the oldest
        uploads.add(f"ev-{i}", "clip", path)


def confirm(uploads: UploadQueue, *event_ids: str) -> None:
    for event_id in event_ids:
        item = uploads.get(event_id, "clip")
        assert item is not None
        uploads.mark_uploaded(item)


def sizes(clips: list[Path]) -> list[int]:
    return [p.stat().st_size for p in clips]


def test_nothing_goes_while_the_budget_allows(tmp_path: Path, clips: list[Path]) -> None:
    uploads = UploadQueue(tmp_path / "media.db")
    queue_all(uploads, clips)
    confirm(uploads, "ev-0", "ev-1")
    ret = Retention(uploads, tmp_path / "media", budget_bytes=sum(sizes(clips)))
    assert ret.enforce() == []
    assert all(p.exists() for p in clips)


def test_confirmed_go_first_oldest_first(tmp_path: Path, clips: list[Path]) -> None:
    uploads = UploadQueue(tmp_path / "media.db")
    queue_all(uploads, clips)
    confirm(uploads, "ev-1", "ev-3")  # ev-0, ev-2, ev-4 never reached the cloud
    s = sizes(clips)
    # Room for everything but one clip: the oldest confirmed (ev-1) goes, ev-0 stays though older.
    ret = Retention(uploads, tmp_path / "media", budget_bytes=sum(s) - 1)
    gone = ret.enforce()
    assert [(e.event_id, e.confirmed) for e in gone] == [("ev-1", True)]
    assert not clips[1].exists() and clips[0].exists()
    # Room for the three unconfirmed only: both confirmed go, every unconfirmed one stays.
    ret.budget_bytes = s[0] + s[2] + s[4]
    gone = ret.enforce()
    assert [(e.event_id, e.confirmed) for e in gone] == [("ev-3", True)]
    assert [p.exists() for p in clips] == [True, False, True, False, True]
    assert ret.stats.evicted_unconfirmed == 0 and uploads.counter("evicted_unconfirmed_total") == 0
    removed = uploads.get("ev-1", "clip")
    assert removed is not None and removed.state == "removed"
    assert uploads.backlog().count == 3  # what is still to upload is all still there


def test_unconfirmed_only_as_a_last_resort_counted_and_logged(
    tmp_path: Path, clips: list[Path], caplog: pytest.LogCaptureFixture
) -> None:
    uploads = UploadQueue(tmp_path / "media.db")
    queue_all(uploads, clips)
    confirm(uploads, "ev-4")
    s = sizes(clips)
    ret = Retention(uploads, tmp_path / "media", budget_bytes=s[2] + s[3] + s[4] - 1)
    with caplog.at_level(logging.ERROR, logger="device.retention"):
        gone = ret.enforce()
    # The newest clip is the confirmed one and goes first; then the oldest unconfirmed ones.
    assert [(e.event_id, e.confirmed) for e in gone] == [("ev-4", True), ("ev-0", False), ("ev-1", False)]
    assert [p.exists() for p in clips] == [False, False, True, True, False]
    assert ret.stats.evicted_unconfirmed == 2
    assert sum("UNCONFIRMED" in r.getMessage() for r in caplog.records) == 2
    lost = uploads.get("ev-0", "clip")
    assert lost is not None and lost.state == "evicted"
    assert uploads.next_due() is not None and uploads.next_due().event_id == "ev-2"  # type: ignore[union-attr]
    uploads.close()
    # The count survives a restart: it is in the queue's database, as health reports it.
    again = UploadQueue(tmp_path / "media.db")
    assert Retention(again, tmp_path / "media", budget_bytes=10**9).evicted_unconfirmed_total() == 2


def test_free_space_floor(tmp_path: Path, clips: list[Path]) -> None:
    """A small disk (its free space follows the real files in the folder) must keep a floor free."""
    uploads = UploadQueue(tmp_path / "media.db")
    queue_all(uploads, clips)
    confirm(uploads, "ev-0", "ev-1", "ev-2")
    s = sizes(clips)
    media = tmp_path / "media"
    capacity = sum(s) + 1000

    def disk_free() -> int:
        return capacity - sum(p.stat().st_size for p in media.iterdir() if p.suffix == ".mp4")

    ret = Retention(uploads, media, budget_bytes=10**9, min_free_bytes=1000 + s[0] + 1, disk_free=disk_free)
    gone = ret.enforce()
    assert [e.event_id for e in gone] == ["ev-0", "ev-1"]
    assert disk_free() >= ret.min_free_bytes


def test_never_deletes_what_the_index_does_not_know(tmp_path: Path, clips: list[Path]) -> None:
    media = tmp_path / "media"
    stranger = media / "someone-elses.mp4"
    stranger.write_bytes(b"\0" * 500_000)  # bigger than the whole budget
    outside = tmp_path / "outside.mp4"
    outside.write_bytes(clips[0].read_bytes())
    uploads = UploadQueue(tmp_path / "media.db")
    uploads.add("ev-x", "clip", outside)  # an index entry pointing out of the media folder
    confirm(uploads, "ev-x")
    queue_all(uploads, clips)
    ret = Retention(uploads, media, budget_bytes=1)
    gone = ret.enforce()
    assert {e.event_id for e in gone} == {f"ev-{i}" for i in range(5)}
    assert stranger.exists() and outside.exists()
    assert ret.stats.over_budget  # and it says so rather than reach for files it does not own

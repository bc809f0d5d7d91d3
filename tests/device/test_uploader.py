"""The uploader against the real cloud service (uvicorn in its own process, killable mid-upload)."""

import hashlib
import logging
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import pytest

from device.errors import DeviceError
from device.ffmpeg import FFMPEG
from device.upload_queue import UploadQueue
from device.uploader import Uploader
from matthan.backoff import Backoff
from tests.support.cloud_server import Cloud
from tests.support.net import free_port, wait_until

FAST = Backoff(initial=0.2, maximum=1.0)


@pytest.fixture(scope="module")
def long_clip(assets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 1 MB of real footage (45 s of one-by-one, by copy): long enough to interrupt."""
    out = tmp_path_factory.mktemp("media") / "ev-long.mp4"
    subprocess.run(
        [FFMPEG, "-v", "error", "-i", str(assets_dir / "video/one-by-one-person-detection.mp4"), "-t", "45",
         "-map", "0:v", "-c", "copy", "-movflags", "+faststart", str(out)],
        check=True,
    )  # fmt: skip
    return out


def run_until(up: Uploader, done: Callable[[], object], timeout: float, what: str) -> None:
    """Run the uploader until `done()` holds (failing after `timeout`), then stop it."""
    up.start()
    try:
        wait_until(done, timeout=timeout, what=what)
    finally:
        up.stop()


def uploader(uploads: UploadQueue, cloud: Cloud, **kw: object) -> Uploader:
    kw.setdefault("backoff", FAST)
    kw.setdefault("timeout_s", 5.0)
    return Uploader(uploads, cloud.url, cloud.token, **kw)  # type: ignore[arg-type]


def test_uploads_each_kind_and_the_cloud_holds_identical_bytes(
    cloud: Cloud, long_clip: Path, tmp_path: Path, assets_dir: Path
) -> None:
    media = tmp_path / "media"
    media.mkdir()
    jpeg = media / "ev-1.jpg"
    frame = cv2.VideoCapture(str(assets_dir / "video/vtest_480x360.mp4")).read()[1]
    jpeg.write_bytes(bytes(cv2.imencode(".jpg", frame)[1]))
    side = media / "ev-1.json"
    side.write_text('{"event_id": "ev-1"}')
    uploads = UploadQueue(tmp_path / "media.db")
    uploads.add("ev-1", "clip", long_clip)
    uploads.add("ev-1", "snapshot", jpeg)
    uploads.add("ev-1", "sidecar", side)
    assert uploads.backlog().count == 3 and uploads.backlog().bytes > 1_000_000
    up = uploader(uploads, cloud)
    run_until(up, lambda: uploads.backlog().count == 0, timeout=30, what="all uploaded")
    for kind, path in (("clip", long_clip), ("snapshot", jpeg), ("sidecar", side)):
        assert cloud.get("ev-1", kind) == path.read_bytes()
        item = uploads.get("ev-1", kind)
        assert item is not None and item.state == "uploaded"
    assert up.stats.uploaded == 3 and up.stats.chunks_rejected == 0

    # Idempotent: a device that lost its queue sends it all again; the cloud confirms, nothing changes.
    again = UploadQueue(tmp_path / "other.db")
    again.add("ev-1", "clip", long_clip)
    up2 = uploader(again, cloud)
    run_until(up2, lambda: again.backlog().count == 0, timeout=15, what="re-confirmed")
    assert up2.stats.bytes_sent == 0 and again.get("ev-1", "clip").state == "uploaded"  # type: ignore[union-attr]


def test_resumes_from_the_confirmed_offset_after_the_server_is_killed(
    own_cloud: Cloud, long_clip: Path, tmp_path: Path
) -> None:
    cloud = own_cloud
    size = long_clip.stat().st_size
    uploads = UploadQueue(tmp_path / "media.db")
    uploads.add("ev-2", "clip", long_clip)
    # Capped at 400 kB/s in 64 kB chunks: a second or two in flight, time enough to pull the plug.
    up = uploader(uploads, cloud, chunk_bytes=64 * 1024, max_bytes_per_s=400_000)
    t0 = time.monotonic()
    up.start()
    try:
        wait_until(lambda: up.stats.bytes_sent >= size // 3, timeout=20, what="a third sent")
        cloud.kill()
        time.sleep(1.0)
        assert uploads.backlog().count == 1
        cloud.start()
        held = int(cloud.head("ev-2", "clip").headers["Upload-Offset"])
        assert 0 < held < size
        wait_until(lambda: uploads.backlog().count == 0, timeout=30, what="upload finished after restart")
    finally:
        up.stop()
    elapsed = time.monotonic() - t0
    assert cloud.get("ev-2", "clip") == long_clip.read_bytes()
    assert up.stats.resumed_at is not None and up.stats.resumed_at >= held
    # Resumed, not restarted: at most the chunk in flight at the kill was sent twice.
    assert size <= up.stats.bytes_sent <= size + 64 * 1024
    assert elapsed >= 0.8 * size / 400_000  # the cap held


def test_a_new_snapshot_goes_before_the_rest_of_a_long_clip(
    cloud: Cloud, long_clip: Path, tmp_path: Path
) -> None:
    uploads = UploadQueue(tmp_path / "media.db")
    uploads.add("ev-10", "clip", long_clip)
    up = uploader(uploads, cloud, chunk_bytes=64 * 1024, max_bytes_per_s=400_000)
    up.start()
    try:
        wait_until(lambda: up.stats.bytes_sent >= 128 * 1024, timeout=10, what="clip under way")
        snap = tmp_path / "ev-11.jpg"
        snap.write_bytes(b"\xff\xd8" + os.urandom(20_000) + b"\xff\xd9")
        uploads.add("ev-11", "snapshot", snap)
        wait_until(lambda: uploads.get("ev-11", "snapshot").state == "uploaded", timeout=10, what="snapshot")  # type: ignore[union-attr]
        clip = uploads.get("ev-10", "clip")
        assert clip is not None and clip.state == "pending"  # overtaken, not finished first
        wait_until(lambda: uploads.backlog().count == 0, timeout=20, what="clip finished after")
    finally:
        up.stop()
    assert cloud.get("ev-10", "clip") == long_clip.read_bytes()
    assert up.stats.bytes_sent <= long_clip.stat().st_size + snap.stat().st_size  # nothing sent twice


def test_resumes_after_the_device_restarts(cloud: Cloud, long_clip: Path, tmp_path: Path) -> None:
    size = long_clip.stat().st_size
    uploads = UploadQueue(tmp_path / "media.db")
    uploads.add("ev-3", "clip", long_clip)
    first = uploader(uploads, cloud, chunk_bytes=64 * 1024, max_bytes_per_s=500_000)
    first.start()
    wait_until(lambda: first.stats.bytes_sent >= size // 2, timeout=20, what="half sent")
    first.stop()
    uploads.close()

    reopened = UploadQueue(tmp_path / "media.db")  # the agent came back up
    assert reopened.backlog().count == 1
    second = uploader(reopened, cloud, chunk_bytes=64 * 1024)
    run_until(second, lambda: reopened.backlog().count == 0, timeout=20, what="finished after restart")
    assert cloud.get("ev-3", "clip") == long_clip.read_bytes()
    assert first.stats.bytes_sent + second.stats.bytes_sent <= size + 64 * 1024
    assert second.stats.resumed_at is not None and second.stats.resumed_at >= size // 2


def test_two_senders_of_one_file_resync_on_409_and_agree(
    cloud: Cloud, long_clip: Path, tmp_path: Path
) -> None:
    """Two queues send the same clip at once (a restored backup next to the live agent): each 409
    carries the server's offset, the loser continues from there, and the file arrives once, intact."""
    queues = [UploadQueue(tmp_path / f"media{i}.db") for i in range(2)]
    ups = [uploader(q, cloud, chunk_bytes=64 * 1024, max_bytes_per_s=600_000) for q in queues]
    for q in queues:
        q.add("ev-8", "clip", long_clip)
    for u in ups:
        u.start()
    try:
        for q in queues:
            wait_until(lambda q=q: q.backlog().count == 0, timeout=30, what="both confirmed")
    finally:
        for u in ups:
            u.stop()
    assert sum(u.stats.offset_resyncs for u in ups) >= 1
    assert all(q.get("ev-8", "clip").state == "uploaded" for q in queues)  # type: ignore[union-attr]
    assert cloud.get("ev-8", "clip") == long_clip.read_bytes()


class CorruptingProxy:
    """A TCP proxy that flips one byte in the body of the Nth PATCH, as a bad link would."""

    def __init__(self, target_port: int, nth_patch: int) -> None:
        self.target_port = target_port
        self.nth = nth_patch
        self.patches = 0
        self.corrupted = 0
        self._srv = socket.create_server(("127.0.0.1", 0))
        self.port = self._srv.getsockname()[1]
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._srv.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._srv.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._up, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._down, args=(upstream, client), daemon=True).start()

    def _down(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            dst.close()

    def _up(self, src: socket.socket, dst: socket.socket) -> None:
        buf, remaining, corrupt = b"", 0, False
        try:
            while data := src.recv(65536):
                buf += data
                out = bytearray()
                while buf:
                    if remaining == 0:
                        end = buf.find(b"\r\n\r\n")
                        if end < 0:
                            break
                        head, buf = buf[: end + 4], buf[end + 4 :]
                        out += head
                        remaining = _content_length(head)
                        if head.startswith(b"PATCH "):
                            with self._lock:
                                self.patches += 1
                                corrupt = self.patches == self.nth
                        continue
                    body = bytearray(buf[:remaining])
                    if corrupt and body:
                        body[len(body) // 2] ^= 0xFF
                        corrupt = False
                        self.corrupted += 1
                    out += body
                    remaining -= len(body)
                    buf = buf[len(body) :]
                dst.sendall(out)
        except OSError:
            pass
        finally:
            dst.close()


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


def test_a_corrupted_chunk_is_rejected_and_resent(cloud: Cloud, long_clip: Path, tmp_path: Path) -> None:
    proxy = CorruptingProxy(cloud.port, nth_patch=3)
    uploads = UploadQueue(tmp_path / "media.db")
    uploads.add("ev-4", "clip", long_clip)
    up = Uploader(
        uploads, f"http://127.0.0.1:{proxy.port}", cloud.token, chunk_bytes=256 * 1024, backoff=FAST
    )
    up.start()
    try:
        wait_until(lambda: uploads.backlog().count == 0, timeout=30, what="uploaded through the bad link")
    finally:
        up.stop()
        proxy.close()
    assert proxy.corrupted == 1
    assert up.stats.chunks_rejected == 1  # the server said 400, the chunk went again
    assert cloud.get("ev-4", "clip") == long_clip.read_bytes()


def test_a_file_changed_on_disk_is_refused_whole_and_not_retried_for_ever(
    cloud: Cloud, long_clip: Path, tmp_path: Path
) -> None:
    clip = tmp_path / "ev-5.mp4"
    clip.write_bytes(long_clip.read_bytes()[:300_000])
    uploads = UploadQueue(tmp_path / "media.db")
    item = uploads.add("ev-5", "clip", clip)
    with clip.open("r+b") as f:  # bit rot after the clip was cut and its checksum taken
        f.seek(150_000)
        f.write(b"\xff\xff")
    up = uploader(uploads, cloud, chunk_bytes=128 * 1024)
    up.start()
    try:
        wait_until(lambda: uploads.get("ev-5", "clip").state == "failed", timeout=20, what="given up")  # type: ignore[union-attr]
    finally:
        up.stop()
    assert up.stats.restarts_from_zero == 1  # the server's 422 (whole-file SHA-256) was heard
    assert cloud.head("ev-5", "clip").status_code == 404  # the partial was discarded
    assert "changed on disk" in (uploads.get("ev-5", "clip").last_error or "")  # type: ignore[union-attr]
    assert item.sha256 == hashlib.sha256(long_clip.read_bytes()[:300_000]).hexdigest()


def test_a_refused_token_is_logged_and_retried_slowly(
    cloud: Cloud, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    snap = tmp_path / "ev-6.jpg"
    snap.write_bytes(b"\xff\xd8" + os.urandom(2000) + b"\xff\xd9")
    uploads = UploadQueue(tmp_path / "media.db")
    uploads.add("ev-6", "snapshot", snap)
    tokens = iter(["not-a-token", "still-wrong"])

    def token() -> str:
        return next(tokens, cloud.token)  # re-enrolled on the third try

    up = Uploader(uploads, cloud.url, token, backoff=FAST, auth_retry_s=1.0)
    with caplog.at_level(logging.ERROR, logger="device.uploader"):
        t0 = time.monotonic()
        up.start()
        try:
            wait_until(
                lambda: uploads.backlog().count == 0, timeout=20, what="uploaded once the token is good"
            )
        finally:
            up.stop()
    assert up.stats.auth_failures == 2
    assert time.monotonic() - t0 >= 2.0  # slow retries, not a hammering loop
    assert any("token" in r.getMessage() and "401" in r.getMessage() for r in caplog.records)
    assert cloud.get("ev-6", "snapshot") == snap.read_bytes()


def test_cloud_down_backs_off_and_reports_the_backlog(tmp_path: Path, long_clip: Path) -> None:
    uploads = UploadQueue(tmp_path / "media.db")
    uploads.add("ev-7", "clip", long_clip)
    up = Uploader(uploads, f"http://127.0.0.1:{free_port()}", "t", backoff=FAST, timeout_s=2.0)
    run_until(up, lambda: up.stats.errors >= 2, timeout=10, what="failed attempts")
    backlog = up.backlog()
    assert backlog.count == 1 and backlog.bytes == long_clip.stat().st_size
    assert backlog.oldest_age_s is not None and backlog.oldest_age_s > 0
    item = uploads.get("ev-7", "clip")
    assert item is not None and item.attempts >= 2 and item.state == "pending"


def test_a_bad_bandwidth_cap_or_ca_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DeviceError, match="bandwidth cap"):
        Uploader(UploadQueue(tmp_path / "q.db"), "http://127.0.0.1:1", None, max_bytes_per_s=0)
    with pytest.raises(DeviceError, match="CA certificate"):
        Uploader(
            UploadQueue(tmp_path / "q.db"), "https://127.0.0.1:1", None, ca=str(tmp_path / "missing.pem")
        )

"""Where clips, snapshots and sidecars live: a local folder by default, S3-compatible storage for
scale. Partial uploads are always staged on local disk (append-only writes are cheap there and
impossible on object stores); a completed, verified file moves into the store in one step.

Keys are built only from validated ids and a fixed kind, never from a name the client chose.
"""

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from cloud.errors import CloudError
from matthan.i18n import Msg
from matthan_wire.ids import is_id

EXTENSIONS = {"clip": "mp4", "snapshot": "jpg", "sidecar": "json", "crop": "jpg", "manifest": "jws"}
CONTENT_TYPES = {
    "clip": "video/mp4",
    "snapshot": "image/jpeg",
    "sidecar": "application/json",
    "crop": "image/jpeg",
    "manifest": "application/jose",
}


def media_key(device_id: str, event_id: str, kind: str) -> str:
    if not (is_id(device_id) and is_id(event_id)) or kind not in EXTENSIONS:
        raise ValueError(f"unsafe media key parts: {device_id!r} {event_id!r} {kind!r}")
    return f"{device_id}/{event_id}/{kind}.{EXTENSIONS[kind]}"


class ClipStore(Protocol):
    staging: Path

    def put_file(self, source: Path, key: str, content_type: str) -> None: ...
    def put_bytes(self, data: bytes, key: str, content_type: str) -> None: ...
    def local_path(self, key: str) -> Path | None: ...
    def size(self, key: str) -> int | None: ...
    def read_range(self, key: str, start: int, end: int) -> Iterator[bytes]: ...
    def delete(self, key: str) -> bool: ...  # True when something was there
    def describe(self) -> str: ...


def partial_path(store: ClipStore, event_id: str, kind: str) -> Path:
    if not is_id(event_id) or kind not in EXTENSIONS:
        raise ValueError(f"unsafe partial name: {event_id!r} {kind!r}")
    return store.staging / f"{event_id}.{kind}.part"


class LocalStore:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.staging = self.root / ".partial"
        try:
            self.staging.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CloudError(
                Msg("clips folder %(folder)s: %(error)s", folder=str(root), error=exc.strerror)
            ) from None

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        # Keys come from media_key already; this is the belt to its braces.
        if self.root not in path.parents:
            raise ValueError(f"key {key!r} leaves the clip store")
        return path

    def put_file(self, source: Path, key: str, content_type: str) -> None:
        dest = self._path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, dest)

    def put_bytes(self, data: bytes, key: str, content_type: str) -> None:
        dest = self._path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_suffix(dest.suffix + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, dest)

    def local_path(self, key: str) -> Path | None:
        path = self._path(key)
        return path if path.is_file() else None

    def size(self, key: str) -> int | None:
        path = self.local_path(key)
        return path.stat().st_size if path else None

    def read_range(self, key: str, start: int, end: int) -> Iterator[bytes]:
        with self._path(key).open("rb") as f:
            f.seek(start)
            left = end - start + 1
            while left > 0:
                chunk = f.read(min(left, 256 * 1024))
                if not chunk:
                    return
                left -= len(chunk)
                yield chunk

    def delete(self, key: str) -> bool:
        path = self._path(key)
        existed = path.is_file()
        path.unlink(missing_ok=True)
        return existed

    def describe(self) -> str:
        return str(self.root)


class S3Store:
    def __init__(self, url: str, staging: Path, endpoint_url: str | None = None) -> None:
        import boto3  # type: ignore[import-untyped]
        from botocore.config import Config  # type: ignore[import-untyped]

        bucket, _, prefix = url[len("s3://") :].partition("/")
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.staging = staging.resolve()
        self.staging.mkdir(parents=True, exist_ok=True)
        config = Config(connect_timeout=10, read_timeout=60, retries={"max_attempts": 5, "mode": "standard"})
        self.client: Any = boto3.client("s3", endpoint_url=endpoint_url, config=config)

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def put_file(self, source: Path, key: str, content_type: str) -> None:
        # upload_file switches to multipart for big clips and retries parts on its own.
        self.client.upload_file(
            str(source), self.bucket, self._key(key), ExtraArgs={"ContentType": content_type}
        )
        source.unlink(missing_ok=True)

    def put_bytes(self, data: bytes, key: str, content_type: str) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, ContentType=content_type)

    def local_path(self, key: str) -> Path | None:
        return None

    def size(self, key: str) -> int | None:
        from botocore.exceptions import ClientError  # type: ignore[import-untyped]

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError:
            return None
        return int(head["ContentLength"])

    def read_range(self, key: str, start: int, end: int) -> Iterator[bytes]:
        obj = self.client.get_object(Bucket=self.bucket, Key=self._key(key), Range=f"bytes={start}-{end}")
        yield from obj["Body"].iter_chunks(256 * 1024)

    def delete(self, key: str) -> bool:
        existed = self.size(key) is not None
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        return existed

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def open_store(clips: str, staging: Path, endpoint_url: str | None = None) -> ClipStore:
    if clips.startswith("s3://"):
        return S3Store(clips, staging, endpoint_url)
    return LocalStore(Path(clips))

"""The resumable upload endpoint as docs/internals.md specifies it, against the real app and disk."""

import hashlib
import os

from fastapi.testclient import TestClient
from sqlmodel import Session

from cloud.models import Device
from matthan_wire.timeutil import utc_now
from tests.cloud.conftest import add_device, add_user, bearer

URL = "/api/v1/media/{}/clip"


def _patch(client: TestClient, token: str, event: str, data: bytes, offset: int, whole: bytes, **extra: str):  # type: ignore[no-untyped-def]
    headers = {
        **bearer(token),
        "Upload-Offset": str(offset),
        "Upload-Length": str(len(whole)),
        "Upload-Sha256": hashlib.sha256(whole).hexdigest(),
        "Chunk-Sha256": hashlib.sha256(data).hexdigest(),
        "Content-Type": "application/offset+octet-stream",
        **extra,
    }
    return client.patch(URL.format(event), content=data, headers=headers)


def test_resumable_upload_verifies_and_is_idempotent(cloud: TestClient) -> None:
    token = add_device(cloud, "dev-a", "ben-nghe")
    clip = os.urandom(300_000)
    event = "dev-a-0001"
    assert cloud.head(URL.format(event), headers=bearer(token)).status_code == 404

    r = _patch(cloud, token, event, clip[:100_000], 0, clip)
    assert r.status_code == 204 and r.headers["Upload-Offset"] == "100000"
    # A retry of an old chunk (the device did not see the answer): 409 says where we stand.
    r = _patch(cloud, token, event, clip[:100_000], 0, clip)
    assert r.status_code == 409 and r.headers["Upload-Offset"] == "100000"
    # Resume after a "crash": ask, then send the rest.
    head = cloud.head(URL.format(event), headers=bearer(token))
    assert head.status_code == 200
    assert (head.headers["Upload-Offset"], head.headers["Upload-Complete"]) == ("100000", "0")
    offset = int(head.headers["Upload-Offset"])
    r = _patch(cloud, token, event, clip[offset:], offset, clip)
    assert r.status_code == 201 and r.headers["Upload-Complete"] == "1"

    got = cloud.get(URL.format(event), headers=bearer(token))
    assert got.status_code == 200 and got.content == clip and got.headers["content-type"] == "video/mp4"
    part = cloud.get(URL.format(event), headers={**bearer(token), "Range": "bytes=1000-1999"})
    assert part.status_code == 206 and part.content == clip[1000:2000]

    # The same file again: 200, nothing changes. Another file for the same event: 409.
    assert _patch(cloud, token, event, clip, 0, clip).status_code == 200
    other = os.urandom(1000)
    assert _patch(cloud, token, event, other, 0, other).status_code == 409
    assert cloud.get(URL.format(event), headers=bearer(token)).content == clip


def test_checksums_guard_every_chunk_and_the_whole(cloud: TestClient) -> None:
    token = add_device(cloud, "dev-a", "ben-nghe")
    clip = os.urandom(50_000)
    event = "dev-a-0002"
    bad = _patch(cloud, token, event, clip[:20_000], 0, clip, **{"Chunk-Sha256": "0" * 64})
    assert bad.status_code == 400 and "Chunk-Sha256" in bad.json()["detail"]
    assert cloud.head(URL.format(event), headers=bearer(token)).status_code == 404  # nothing stored
    assert _patch(cloud, token, event, clip[:10_000], 0, clip).status_code == 204
    bad = _patch(cloud, token, event, clip[10_000:20_000], 10_000, clip, **{"Chunk-Sha256": "1" * 64})
    assert bad.status_code == 400
    assert cloud.head(URL.format(event), headers=bearer(token)).headers["Upload-Offset"] == "10000"

    corrupt = bytearray(clip)
    corrupt[-1] ^= 0xFF
    assert _patch(cloud, token, event, clip[10_000:20_000], 10_000, clip).status_code == 204
    r = _patch(cloud, token, event, bytes(corrupt[20_000:]), 20_000, clip)
    assert r.status_code == 422
    assert cloud.head(URL.format(event), headers=bearer(token)).status_code == 404  # partial discarded
    assert _patch(cloud, token, event, clip, 0, clip).status_code == 201


def test_traversal_oversize_and_bad_headers_are_clear_4xx(cloud: TestClient) -> None:
    token = add_device(cloud, "dev-a", "ben-nghe")
    data = b"x" * 10
    for evil in ("..%2F..%2Fetc%2Fpasswd", "%2E%2E", "UPPER", "a.b", "-x"):
        r = cloud.patch(
            f"/api/v1/media/{evil}/clip",
            content=data,
            headers={
                **bearer(token),
                "Upload-Offset": "0",
                "Upload-Length": "10",
                "Upload-Sha256": hashlib.sha256(data).hexdigest(),
            },
        )
        assert r.status_code in (400, 404), (evil, r.status_code)
    assert _patch(cloud, token, "ok-1", data, 0, data, **{"Upload-Length": str(10**12)}).status_code == 413
    # A body longer than the declared length is refused, and nothing is kept.
    r = _patch(
        cloud,
        token,
        "ok-2",
        data + b"more",
        0,
        data,
        **{"Chunk-Sha256": hashlib.sha256(data + b"more").hexdigest()},
    )
    assert r.status_code == 413
    r = cloud.patch(URL.format("ok-3"), content=data, headers={**bearer(token), "Upload-Offset": "zero"})
    assert r.status_code == 400
    r = cloud.patch("/api/v1/media/ok-4/passwd", content=data, headers=bearer(token))
    assert r.status_code == 400
    clips = cloud.app.state.clip_store.root  # type: ignore[attr-defined]
    assert not any(p.name == "passwd" for p in clips.parent.rglob("*"))


def test_only_the_owner_uploads_and_revoked_devices_are_refused(cloud: TestClient) -> None:
    a = add_device(cloud, "dev-a", "ben-nghe")
    b = add_device(cloud, "dev-b", "da-kao")
    data = os.urandom(1000)
    assert _patch(cloud, a, "ev-1", data, 0, data).status_code == 201
    assert _patch(cloud, b, "ev-1", data, 0, data).status_code == 403
    assert cloud.head(URL.format("ev-1")).status_code == 401
    assert cloud.head(URL.format("ev-1"), headers=bearer("mdt_nonsense")).status_code == 401
    # Ward scoping for people: an officer of another ward does not see it; staff do.
    officer = add_user(cloud, "officer-dk", "ward_officer", "da-kao")
    operator = add_user(cloud, "op", "operator")
    assert cloud.get(URL.format("ev-1"), headers=bearer(officer)).status_code == 404
    assert cloud.get(URL.format("ev-1"), headers=bearer(operator)).content == data
    with Session(cloud.app.state.engine) as s:  # type: ignore[attr-defined]
        dev = s.get(Device, "dev-a")
        assert dev is not None
        dev.revoked_at = utc_now()
        s.add(dev)
        s.commit()
    assert _patch(cloud, a, "ev-2", data, 0, data).status_code == 403

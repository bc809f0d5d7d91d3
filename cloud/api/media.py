"""Resumable, verified clip/snapshot/sidecar upload (device → cloud) and download with ranges.

The protocol is docs/internals.md "Clip and snapshot upload": offset-based like tus, HEAD to ask
where to resume, PATCH to append, GET to read back. Status codes:

- `204` chunk stored (`Upload-Offset` = new offset); `201` + `Upload-Complete: 1` when the last
  chunk made the whole file and its SHA-256 matched; `200` + `Upload-Complete: 1` when the same
  file was already complete (idempotent).
- `409` wrong offset (the server's `Upload-Offset` is in the answer), or a different file for
  an event that is already complete.
- `400` a malformed header, an event id that is not an id, or a `Chunk-Sha256` mismatch
  (nothing stored; resend the chunk).
- `413` the declared length is over the limit, or the body runs past it.
- `422` the whole file's SHA-256 did not match; the partial is discarded, start again at 0.
"""

import asyncio
import hashlib
import logging
import re
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Request, Response
from fastapi.responses import FileResponse, StreamingResponse
from sqlmodel import Session

from cloud import audit, evidence
from cloud.auth import AnyCaller, DbSession, DeviceCaller, Principal, require_ward
from cloud.clipstore import CONTENT_TYPES, ClipStore, media_key, partial_path
from cloud.errors import CloudError, Forbidden, NotFound
from cloud.models import AlertRow, Device, MediaObject, RetentionPurge
from matthan.hashing import sha256_file
from matthan.i18n import Msg
from matthan_wire.ids import is_id
from matthan_wire.timeutil import utc_now
from matthan_wire.upload import (
    CHUNK_SHA256,
    CONTENT_TYPE,
    MEDIA_KINDS,
    UPLOAD_COMPLETE,
    UPLOAD_LENGTH,
    UPLOAD_OFFSET,
    UPLOAD_SHA256,
    UploadStatus,
)

router = APIRouter(prefix="/api/v1/media", tags=["media"])
log = logging.getLogger("matthan.cloud.media")
SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_locks: dict[tuple[str, str], asyncio.Lock] = {}

UPLOAD_HEADERS = {
    UPLOAD_OFFSET: {"description": "bytes the server holds", "schema": {"type": "integer"}},
    UPLOAD_LENGTH: {"description": "the whole file's size", "schema": {"type": "integer"}},
    UPLOAD_COMPLETE: {
        "description": "1 when the file is complete and verified",
        "schema": {"type": "string"},
    },
}


def _check(event_id: str, kind: str) -> None:
    if not is_id(event_id):
        raise CloudError(
            Msg("event id %(event)r is not an id ([a-z0-9-], at most 63 characters)", event=event_id)
        )
    if kind not in MEDIA_KINDS:
        raise CloudError(Msg("kind %(kind)r: one of %(kinds)s", kind=kind, kinds=", ".join(MEDIA_KINDS)))


def _owner_check(session: Session, principal: Principal, event_id: str, media: MediaObject | None) -> None:
    """Event ids are bound to the device that sent the alert (or, failing that, first uploaded)."""
    alert = session.get(AlertRow, event_id)
    owner = alert.device_id if alert else (media.device_id if media else None)
    if principal.kind == "device":
        if owner is not None and owner != principal.name:
            raise Forbidden(Msg("event %(event)s belongs to another device", event=event_id))
        return
    ward = alert.ward if alert else None
    if ward is None and owner is not None:
        device = session.get(Device, owner)
        ward = device.ward if device else None
    if ward is not None:
        require_ward(principal, ward)
    elif principal.ward_scope is not None:
        raise NotFound(Msg("not found"))


def _state_headers(media: MediaObject) -> dict[str, str]:
    return {
        UPLOAD_OFFSET: str(media.size if media.complete else media.offset),
        UPLOAD_LENGTH: str(media.size),
        UPLOAD_COMPLETE: "1" if media.complete else "0",
        "Cache-Control": "no-store",
    }


@router.head(
    "/{event_id}/{kind}",
    summary="Where to resume an upload",
    responses={
        200: {"description": "upload state", "headers": UPLOAD_HEADERS},
        404: {"description": "none yet"},
    },
)
def upload_state(event_id: str, kind: str, principal: AnyCaller, session: DbSession) -> Response:
    _check(event_id, kind)
    media = session.get(MediaObject, (event_id, kind))
    _owner_check(session, principal, event_id, media)
    if media is None:
        return Response(status_code=UploadStatus.NOT_FOUND)
    return Response(status_code=UploadStatus.ALREADY_COMPLETE, headers=_state_headers(media))


def _int_header(name: str, value: str | None) -> int:
    # At most 18 digits: past that int() is slow or refuses (4,300 digits) and no column holds it.
    if value is None or not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise HTTPException(400, f"{name} header: a non-negative integer is required")
    return int(value)


@router.patch(
    "/{event_id}/{kind}",
    summary="Append a chunk at Upload-Offset",
    status_code=204,
    openapi_extra={
        "requestBody": {"content": {CONTENT_TYPE: {"schema": {"type": "string", "format": "binary"}}}}
    },
    responses={
        201: {"description": "complete and verified", "headers": UPLOAD_HEADERS},
        200: {"description": "already complete with the same SHA-256", "headers": UPLOAD_HEADERS},
        204: {"description": "chunk stored", "headers": UPLOAD_HEADERS},
        400: {"description": "bad header or Chunk-Sha256 mismatch (nothing stored)"},
        409: {"description": "wrong offset (see Upload-Offset), or a different completed file"},
        413: {"description": "over the size limit"},
        422: {"description": "whole-file SHA-256 mismatch; partial discarded"},
        410: {"description": "the event's media were deleted by retention; do not send again"},
    },
)
async def upload_chunk(
    event_id: str,
    kind: str,
    request: Request,
    principal: DeviceCaller,
    session: DbSession,
    upload_offset: Annotated[str | None, Header()] = None,
    upload_length: Annotated[str | None, Header()] = None,
    upload_sha256: Annotated[str | None, Header()] = None,
    chunk_sha256: Annotated[str | None, Header()] = None,
) -> Response:
    _check(event_id, kind)
    offset = _int_header(UPLOAD_OFFSET, upload_offset)
    length = _int_header(UPLOAD_LENGTH, upload_length)
    whole_sha = (upload_sha256 or "").lower()
    if not SHA_RE.match(whole_sha):
        raise HTTPException(
            UploadStatus.BAD_CHUNK, f"{UPLOAD_SHA256} header: the whole file's SHA-256 as 64 hex digits"
        )
    chunk_sha = chunk_sha256.lower() if chunk_sha256 else None
    if chunk_sha is not None and not SHA_RE.match(chunk_sha):
        raise HTTPException(UploadStatus.BAD_CHUNK, f"{CHUNK_SHA256} header: 64 hex digits")
    settings = request.app.state.settings
    if length > settings.max_upload_bytes:
        raise HTTPException(
            413, f"Upload-Length {length} is over the limit of {settings.max_upload_bytes} bytes"
        )
    if offset > length:
        raise HTTPException(400, "Upload-Offset is past Upload-Length")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > length - offset:
        raise HTTPException(413, f"the body runs past Upload-Length ({length - offset} bytes left)")

    if session.get(RetentionPurge, event_id) is not None:
        # A late copy must not bring back what retention deleted once its purpose was served.
        raise HTTPException(UploadStatus.GONE, f"event {event_id}: its media were deleted by retention")
    store: ClipStore = request.app.state.clip_store
    lock = _locks.setdefault((event_id, kind), asyncio.Lock())
    async with lock:
        media = session.get(MediaObject, (event_id, kind))
        _owner_check(session, principal, event_id, media)
        part = partial_path(store, event_id, kind)
        if media is not None and media.complete:
            if media.sha256 == whole_sha and media.size == length:
                return Response(status_code=UploadStatus.ALREADY_COMPLETE, headers=_state_headers(media))
            raise HTTPException(
                UploadStatus.WRONG_OFFSET, "a different file was already completed for this event and kind"
            )
        if media is not None and (media.sha256 != whole_sha or media.size != length):
            # The device now has a different file than the one it started with: start over.
            media.sha256, media.size, media.offset = whole_sha, length, 0
            part.unlink(missing_ok=True)
        if media is None:
            media = MediaObject(
                event_id=event_id,
                kind=kind,
                device_id=principal.name,
                size=length,
                sha256=whole_sha,
                offset=0,
                key=media_key(principal.name, event_id, kind),
            )
        if offset != media.offset:
            session.add(media)
            session.commit()
            return Response(
                status_code=UploadStatus.WRONG_OFFSET,
                content=f"offset {offset} is not where the upload stands",
                headers=_state_headers(media),
            )
        written, digest, overflow = await _append(request, part, offset, length - offset)
        if overflow:
            _truncate(part, offset)
            raise HTTPException(413, f"the body runs past Upload-Length ({length - offset} bytes left)")
        if chunk_sha is not None and digest != chunk_sha:
            _truncate(part, offset)
            raise HTTPException(
                UploadStatus.BAD_CHUNK,
                f"{CHUNK_SHA256} does not match the body; nothing stored, send it again",
            )
        request.app.state.metrics.upload_bytes.labels(kind).inc(written)
        media.offset = offset + written
        if media.offset < length:
            session.add(media)
            session.commit()
            return Response(status_code=UploadStatus.CHUNK_STORED, headers=_state_headers(media))
        if (sha256_file(part) if part.exists() else hashlib.sha256().hexdigest()) != whole_sha:
            part.unlink(missing_ok=True)
            if session.get(MediaObject, (event_id, kind)) is not None:
                session.delete(media)
            session.commit()
            raise HTTPException(
                UploadStatus.CHECKSUM_MISMATCH,
                f"the whole file's SHA-256 does not match {UPLOAD_SHA256}; upload it again from 0",
            )
        await asyncio.to_thread(store.put_file, part, media.key, CONTENT_TYPES[kind])
        media.complete, media.completed_at = True, utc_now()
        session.add(media)
        session.commit()
        # A manifest, or a file it names, completed: (re)check the event's evidence. The file is
        # stored whatever happens here; a check that fails is redone with the next file or on demand.
        try:
            evidence.check_event(session, settings, store, event_id)
            session.commit()
        except Exception:
            session.rollback()
            log.exception("evidence check failed event=%s kind=%s", event_id, kind)
        # Complete uploads answer from the row alone; the lock is not needed any more.
        _locks.pop((event_id, kind), None)
        return Response(status_code=UploadStatus.COMPLETED, headers=_state_headers(media))


async def _append(request: Request, part: Path, offset: int, room: int) -> tuple[int, str, bool]:
    """Write the body at offset; returns (bytes written, sha256 hex of them, ran past room)."""
    part.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    written = 0
    mode = "r+b" if part.exists() else "wb"
    with part.open(mode) as f:
        f.seek(offset)
        f.truncate()
        async for piece in request.stream():
            if written + len(piece) > room:
                return written, "", True
            f.write(piece)
            digest.update(piece)
            written += len(piece)
    return written, digest.hexdigest(), False


def _truncate(part: Path, offset: int) -> None:
    if part.exists():
        with part.open("r+b") as f:
            f.truncate(offset)


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@router.get(
    "/{event_id}/{kind}",
    summary="Read a stored clip, snapshot or sidecar (HTTP range requests supported)",
    responses={
        200: {"description": "the file"},
        206: {"description": "a range"},
        404: {"description": "none"},
    },
)
def download(
    event_id: str, kind: str, request: Request, principal: AnyCaller, session: DbSession
) -> Response:
    _check(event_id, kind)
    media = session.get(MediaObject, (event_id, kind))
    _owner_check(session, principal, event_id, media)
    if media is None or not media.complete:
        raise NotFound(Msg("not stored (yet)"))
    if principal.is_user:
        # Chain of custody: every view and download of an alert's media, by whom (and which bytes).
        audit.record(
            session, principal.label(), "media.view", event_id, kind=kind, range=request.headers.get("range")
        )
        session.commit()
    store: ClipStore = request.app.state.clip_store
    ctype = CONTENT_TYPES[kind]
    local = store.local_path(media.key)
    if local is not None:
        # Starlette's FileResponse answers Range / If-Range itself (206, 416, multipart).
        return FileResponse(local, media_type=ctype, headers={"ETag": f'"{media.sha256}"'})
    size = media.size
    headers = {"Accept-Ranges": "bytes", "ETag": f'"{media.sha256}"'}
    start, end = 0, size - 1
    status = 200
    spec = request.headers.get("range")
    match = _RANGE.match(spec.strip()) if spec else None
    if match and (match.group(1) or match.group(2)):
        if match.group(1):
            start = int(match.group(1))
            end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
        else:  # a suffix: the last N bytes
            start = max(0, size - int(match.group(2)))
        if start >= size or start > end:
            return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(end - start + 1 if size else 0)
    body = store.read_range(media.key, start, end) if size else iter(())
    return StreamingResponse(body, status_code=status, media_type=ctype, headers=headers)

"""The resumable media upload protocol (device → cloud): header names, kinds and what each status means.

Offset-based like tus (docs/internals.md "Clip and snapshot upload"): HEAD asks where to resume,
PATCH appends a chunk at `Upload-Offset`, GET reads the stored file back.
"""

from enum import IntEnum

UPLOAD_OFFSET = "Upload-Offset"  # bytes the server holds (answers); where this chunk starts (PATCH)
UPLOAD_LENGTH = "Upload-Length"  # the whole file's size
UPLOAD_COMPLETE = "Upload-Complete"  # "1" when the file is complete and verified, else "0"
UPLOAD_SHA256 = "Upload-Sha256"  # hex SHA-256 of the whole file
CHUNK_SHA256 = "Chunk-Sha256"  # hex SHA-256 of this PATCH body
CONTENT_TYPE = "application/offset+octet-stream"

# manifest: the event's signed evidence manifest, a compact JWS (matthan_wire/evidence.py).
MEDIA_KINDS = ("clip", "snapshot", "sidecar", "crop", "manifest")


class UploadStatus(IntEnum):
    """What the server's status code means to the uploader."""

    ALREADY_COMPLETE = 200  # the same file (SHA-256) was complete already: done, nothing changed
    COMPLETED = 201  # the last chunk made the whole file and its SHA-256 matched
    CHUNK_STORED = 204  # go on from the answer's Upload-Offset
    BAD_CHUNK = 400  # a malformed header or a Chunk-Sha256 mismatch: nothing stored, resend
    NOT_FOUND = 404  # HEAD: nothing held yet, start at 0
    WRONG_OFFSET = 409  # continue from the answer's Upload-Offset (or a different file is complete)
    TOO_LARGE = 413  # over the server's size limit: never retried as is
    CHECKSUM_MISMATCH = 422  # the whole file did not match Upload-Sha256; the partial is gone, start at 0
    GONE = 410  # the event's media were deleted by the cloud's retention: never retried

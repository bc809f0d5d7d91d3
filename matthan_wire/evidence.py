"""The evidence manifest: what one event's media is, signed on the device that recorded it.

The device writes one manifest per event once its clip is cut (or once it knows there will be
none), signs it as a compact JWS (RFC 7515, ES256, the device certificate in `x5c`) and uploads
the token as the event's `manifest` media next to the clip, snapshot, crop and sidecar. Anyone holding
the project's CA certificate (and its CRL) can then check that these exact bytes came from that
device, for that camera, rule and time (`matthan evidence verify`).

Every field is bounded: the cloud parses manifests from the network.
"""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from matthan_wire.ids import Id
from matthan_wire.timeutil import UtcDateTime

Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
# The media kinds a manifest can name (the manifest itself is not among them). "crop" came later:
# a manifest from an older device never names one, and stays valid (see matthan/evidence.py).
EvidenceKind = Literal["clip", "snapshot", "sidecar", "crop"]
JWS_MEDIA_TYPE = "application/jose"
MANIFEST_TYP = "matthan-evidence+jwt"  # the JWS `typ`: what a verifier expects, nothing else
MAX_MANIFEST_BYTES = 64 * 1024  # the compact JWS with its certificate: a few kB in practice


class FileDigest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sha256: Sha256Hex
    size: int = Field(ge=0, le=1 << 40)


class SiteRef(BaseModel):
    """Where the camera stands, as the device's configuration names it (optional)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name | None = None


class RuleRef(BaseModel):
    """The rule that fired and the configuration it belonged to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rule: Name
    zone: Name | None = None
    type: Annotated[str, StringConstraints(max_length=32)]
    category: Annotated[str, StringConstraints(max_length=32)]
    config_version: int | None = Field(default=None, ge=0)
    # SHA-256 of the camera's configuration (zones and rules) in canonical JSON: see config_digest.
    config_sha256: Sha256Hex


class ModelRef(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name | None = None
    sha256: Sha256Hex | None = None


class EventOrigin(BaseModel):
    """The first fields of what a device writes about one event (this manifest, the clip's sidecar):
    the format's version, the event, and the device, ward and camera that recorded it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    event_id: Id
    device_id: Id
    ward: Id
    camera_id: Id


class EvidenceManifest(EventOrigin):
    """The signed statement: the JWS payload, as canonical JSON (see canonical_manifest)."""

    site: SiteRef = Field(default_factory=SiteRef)
    rule: RuleRef
    model: ModelRef = Field(default_factory=ModelRef)
    started_at: UtcDateTime
    ended_at: UtcDateTime | None = None
    clip_start: UtcDateTime | None = None
    clip_end: UtcDateTime | None = None
    signed_at: UtcDateTime
    # What the device holds for this event: clip, snapshot, sidecar and, for a camera with a separate
    # record stream, the crop of the object (each may be absent).
    files: dict[EvidenceKind, FileDigest] = Field(default_factory=dict, max_length=4)


def canonical_manifest(manifest: EvidenceManifest) -> bytes:
    """The bytes that are signed: pydantic's JSON (field order fixed by the model), no spaces."""
    return manifest.model_dump_json(exclude_none=False).encode()

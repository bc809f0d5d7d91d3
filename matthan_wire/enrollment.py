"""The enrollment HTTP API's bodies (claim tokens, enroll, renew, revoke, import, commissioning),
shared by the cloud's router and the technician's tools."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from matthan_wire.ids import Id
from matthan_wire.timeutil import UtcDateTime

CLAIM_PREFIX = "mct_"
ClaimStatus = Literal["open", "used", "expired", "revoked"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClaimRequest(_Body):
    ward: Id
    device_id: Id | None = None
    # Long enough to drive to the site, short enough that a lost printout is soon worthless.
    ttl_hours: float = Field(default=72.0, gt=0.0, le=24.0 * 30)


class ClaimIssued(_Body):
    token: str
    ward: str
    device_id: str | None
    expires_at: UtcDateTime
    qr: str  # the token as a text QR code, for a printout


class ClaimInfo(_Body):
    """A claim token as listed: never the secret itself, only a short prefix of its hash."""

    ref: str
    ward: str
    device_id: str | None
    expires_at: UtcDateTime
    status: ClaimStatus
    used_at: UtcDateTime | None
    used_by: str | None
    created_by: str | None
    created_at: UtcDateTime | None = None
    revoked_at: UtcDateTime | None = None
    revoked_by: str | None = None


class EnrollRequest(_Body):
    token: str = Field(min_length=8, max_length=200)
    device_id: Id
    csr: str = Field(min_length=100, max_length=10_000)
    # The ward the technician is standing in; a token for another ward is refused.
    ward: Id | None = None
    camera: str | None = Field(default=None, min_length=1, max_length=2000)
    camera_id: Id = "cam-1"


class EnrollResponse(_Body):
    device_id: str
    ward: str
    certificate: str
    ca: str
    broker_url: str
    cloud_url: str
    api_token: str
    site: dict[str, Any]  # a SiteConfig: the cameras and health settings to start with


class RenewRequest(_Body):
    csr: str = Field(min_length=100, max_length=10_000)


class RenewResponse(_Body):
    certificate: str
    ca: str
    not_after: UtcDateTime


class RevokeResult(_Body):
    device_id: str
    revoked_at: UtcDateTime
    serials: list[str]
    broker_reloaded: bool


class CheckItem(_Body):
    name: str
    status: Literal["pass", "warn", "fail"]
    detail: str
    ms: float | None = None


class CommissioningReport(_Body):
    by: str = Field(min_length=1, max_length=128)
    at: UtcDateTime
    ok: bool
    items: list[CheckItem]


class ImportResult(_Body):
    devices: int
    cameras: int
    tokens: list[ClaimIssued]


def status_of(
    expires_at: datetime, used_at: datetime | None, now: datetime, revoked_at: datetime | None = None
) -> ClaimStatus:
    if used_at is not None:
        return "used"
    if revoked_at is not None:
        return "revoked"
    return "expired" if expires_at <= now else "open"

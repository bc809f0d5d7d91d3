"""Claim tokens: single use, expiring, bound to a ward (and optionally one device id).

Only the token's hash is stored; the token itself is shown once, when issued.
"""

import secrets
from datetime import timedelta

from sqlmodel import Session, select

from cloud.audit import record
from cloud.auth import token_hash
from cloud.models import ClaimToken, Ward
from matthan_wire.enrollment import CLAIM_PREFIX, ClaimInfo, ClaimIssued, status_of
from matthan_wire.timeutil import utc_now
from provisioning.qr import qr_text

LIST_LIMIT = 1000


def issue_claim(session: Session, ward: str, device_id: str | None, ttl_hours: float, by: str) -> ClaimIssued:
    """A new claim token (the caller commits)."""
    token = CLAIM_PREFIX + secrets.token_urlsafe(24)
    expires = utc_now() + timedelta(hours=ttl_hours)
    if session.get(Ward, ward) is None:
        session.add(Ward(id=ward))
    session.add(
        ClaimToken(
            token_hash=token_hash(token), ward=ward, device_id=device_id, expires_at=expires, created_by=by
        )
    )
    record(session, by, "claim_token.issue", ward, device_id=device_id, expires_at=expires.isoformat())
    return ClaimIssued(token=token, ward=ward, device_id=device_id, expires_at=expires, qr=qr_text(token))


def list_claims(session: Session, ward: str | None = None) -> list[ClaimInfo]:
    """The newest claim tokens first: never the secret, only a short prefix of its hash."""
    query = select(ClaimToken).order_by(ClaimToken.created_at.desc())  # type: ignore[attr-defined]
    if ward:
        query = query.where(ClaimToken.ward == ward)
    now = utc_now()
    return [
        ClaimInfo(
            ref=c.token_hash[:12],
            ward=c.ward,
            device_id=c.device_id,
            expires_at=c.expires_at,
            status=status_of(c.expires_at, c.used_at, now),
            used_at=c.used_at,
            used_by=c.used_by,
            created_by=c.created_by,
        )
        for c in session.exec(query.limit(LIST_LIMIT))
    ]

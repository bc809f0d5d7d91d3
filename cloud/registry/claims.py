"""Claim tokens: single use, expiring, bound to a ward (and optionally one device id), revocable
before use.

Only the token's hash is stored; the token itself is shown once, when issued. A listed token is
named by `ref`, a prefix of its hash.
"""

import secrets
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from cloud.audit import record
from cloud.auth import token_hash
from cloud.errors import Conflict, NotFound
from cloud.models import ClaimToken, Ward
from matthan.i18n import N_, Msg
from matthan_wire.enrollment import CLAIM_PREFIX, ClaimInfo, ClaimIssued, status_of
from matthan_wire.timeutil import utc_now
from provisioning.qr import qr_text

LIST_LIMIT = 1000
REF_LENGTH = 12


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
    return [_info(c, now) for c in session.exec(query.limit(LIST_LIMIT))]


def revoke_claim(session: Session, ref: str, by: str) -> ClaimInfo:
    """Withdraw an unused token named by its `ref` (the caller commits); audited."""
    if not (len(ref) == REF_LENGTH and all(c in "0123456789abcdef" for c in ref)):
        raise NotFound(N_("no such claim token"))
    found = session.exec(select(ClaimToken).where(col(ClaimToken.token_hash).startswith(ref)).limit(2)).all()
    if len(found) != 1:
        raise NotFound(N_("no such claim token"))
    claim = found[0]
    if claim.used_at is not None:
        raise Conflict(Msg(N_("claim token %(ref)s was used already; revoke the device instead"), ref=ref))
    if claim.revoked_at is not None:
        raise Conflict(Msg(N_("claim token %(ref)s is revoked already"), ref=ref))
    now = utc_now()
    claim.revoked_at, claim.revoked_by = now, by
    session.add(claim)
    record(session, by, "claim_token.revoke", claim.ward, ref=ref, device_id=claim.device_id)
    return _info(claim, now)


def _info(c: ClaimToken, now: datetime) -> ClaimInfo:
    return ClaimInfo(
        ref=c.token_hash[:REF_LENGTH],
        ward=c.ward,
        device_id=c.device_id,
        expires_at=c.expires_at,
        status=status_of(c.expires_at, c.used_at, now, c.revoked_at),
        used_at=c.used_at,
        used_by=c.used_by,
        created_by=c.created_by,
        created_at=c.created_at,
        revoked_at=c.revoked_at,
        revoked_by=c.revoked_by,
    )

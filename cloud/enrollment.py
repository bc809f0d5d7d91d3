"""Provisioning endpoints: claim tokens, enrollment, certificate renewal, revocation, bulk import and
the commissioning report.

Enrollment follows AWS IoT fleet provisioning by claim: the operations centre issues a single-use,
expiring claim token bound to a ward (and optionally one device id); the device makes its own key,
sends only a CSR with the token, and gets back its certificate, the CA, the broker address, an
upload token and its first configuration. The private key never leaves the device.

Configuration (environment, or `app.state.enrollment` set by the composition root or a test):
MATTHAN_PROVISION_CA_DIR (the CA folder; required to enroll), MATTHAN_PROVISION_BROKER_URL (what
devices connect to, mqtts://…), MATTHAN_PROVISION_BROKER_DIR (the broker-config folder: when set,
the ACL and CRL are regenerated and the broker reloaded on every enrollment and revocation).
"""

import logging
import os
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Body, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy import update
from sqlmodel import Session, col, select

from cloud.api.config import _publish as publish_desired
from cloud.api.config import redact
from cloud.audit import record
from cloud.auth import Admin, DbSession, DeviceCaller, Staff, issue_device_token, token_hash
from cloud.models import Camera, ClaimToken, DesiredConfigRow, Device, Ward
from matthan_wire.codec import describe
from matthan_wire.config import CameraConfig, SiteConfig
from matthan_wire.enrollment import (
    CLAIM_PREFIX,
    ClaimInfo,
    ClaimIssued,
    ClaimRequest,
    CommissioningReport,
    EnrollRequest,
    EnrollResponse,
    ImportResult,
    RenewRequest,
    RenewResponse,
    RevokeResult,
    status_of,
)
from matthan_wire.timeutil import utc_now
from provisioning import pki
from provisioning.errors import ProvisionError
from provisioning.qr import qr_text
from provisioning.revoke import revoke_device, sync_broker

log = logging.getLogger("matthan.cloud.enrollment")
router = APIRouter(prefix="/api/v1", tags=["provisioning"])
ENV = "MATTHAN_PROVISION_"


class EnrollmentSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ca_dir: Path | None = None
    broker_url: str | None = None
    broker_dir: Path | None = None
    device_cert_days: int = pki.DEVICE_DAYS

    @classmethod
    def from_env(cls) -> "EnrollmentSettings":
        return cls(
            ca_dir=os.environ.get(f"{ENV}CA_DIR") or None,
            broker_url=os.environ.get(f"{ENV}BROKER_URL") or None,
            broker_dir=os.environ.get(f"{ENV}BROKER_DIR") or None,
        )


def _settings(request: Request) -> EnrollmentSettings:
    found: EnrollmentSettings | None = getattr(request.app.state, "enrollment", None)
    if found is None:
        found = EnrollmentSettings.from_env()
        request.app.state.enrollment = found
    return found


def _authority(request: Request) -> pki.Authority:
    conf = _settings(request)
    if conf.ca_dir is None:
        raise HTTPException(503, f"enrollment is not configured on this server: set {ENV}CA_DIR")
    try:
        return pki.Authority(conf.ca_dir)
    except ProvisionError as exc:
        raise HTTPException(503, f"certificate authority unavailable: {exc}") from None


# --- claim tokens ------------------------------------------------------------------------------------


def issue_claim(session: Session, ward: str, device_id: str | None, ttl_hours: float, by: str) -> ClaimIssued:
    """A new claim token (the caller commits). Only its hash is stored; the token is shown once."""
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


@router.post("/claim-tokens", status_code=201, response_model=ClaimIssued)
def create_claim_token(body: ClaimRequest, who: Staff, session: DbSession) -> ClaimIssued:
    device = session.get(Device, body.device_id) if body.device_id else None
    if device is not None and device.ward != body.ward:
        raise HTTPException(409, f"device {device.id} is registered in ward {device.ward}, not {body.ward}")
    issued = issue_claim(session, body.ward, body.device_id, body.ttl_hours, who.label())
    session.commit()
    return issued


@router.get("/claim-tokens", response_model=list[ClaimInfo])
def list_claim_tokens(who: Staff, session: DbSession, ward: str | None = None) -> list[ClaimInfo]:
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
        for c in session.exec(query.limit(1000))
    ]


# --- enrollment ---------------------------------------------------------------------------------------


@router.post("/enroll", response_model=EnrollResponse)
def enroll(body: EnrollRequest, request: Request, session: DbSession) -> EnrollResponse:
    conf = _settings(request)
    ca = _authority(request)
    if conf.broker_url is None:
        raise HTTPException(503, f"enrollment is not configured on this server: set {ENV}BROKER_URL")
    now = utc_now()
    claim = session.get(ClaimToken, token_hash(body.token))
    if claim is None:
        raise HTTPException(403, "claim token unknown (mistyped, or issued by another server)")
    if claim.used_at is not None:
        raise HTTPException(
            409, f"claim token already used (by {claim.used_by} at {claim.used_at:%Y-%m-%d %H:%M} UTC)"
        )
    if claim.expires_at <= now:
        raise HTTPException(
            410, f"claim token expired at {claim.expires_at:%Y-%m-%d %H:%M} UTC; ask for a new one"
        )
    if body.ward is not None and body.ward != claim.ward:
        raise HTTPException(403, f"claim token is for ward {claim.ward}, not {body.ward}")
    if claim.device_id is not None and claim.device_id != body.device_id:
        raise HTTPException(403, f"claim token is bound to device {claim.device_id}, not {body.device_id}")
    device = session.get(Device, body.device_id)
    if device is not None:
        if device.ward != claim.ward:
            raise HTTPException(
                403, f"device {device.id} belongs to ward {device.ward}; this token is for ward {claim.ward}"
            )
        if device.revoked_at is not None:
            raise HTTPException(409, f"device {device.id} was revoked; enroll the replacement under a new id")
        if device.cert_serial is not None and claim.device_id != device.id:
            raise HTTPException(
                409,
                f"device {device.id} is already enrolled; re-enrolling needs a token bound to that device id",
            )
    site = _initial_site(session, body)
    # Single use even under a race: only the request whose UPDATE flips used_at goes on.
    flipped = session.execute(
        update(ClaimToken)
        .where(col(ClaimToken.token_hash) == claim.token_hash, col(ClaimToken.used_at).is_(None))
        .values(used_at=now, used_by=body.device_id)
    )
    if flipped.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        raise HTTPException(409, "claim token already used")
    try:
        cert = ca.sign_csr(body.csr.encode(), body.device_id, days=conf.device_cert_days)
    except ProvisionError as exc:
        session.rollback()  # the token stays unused: the technician can retry with a good CSR
        raise HTTPException(400, str(exc)) from None
    if device is None:
        device = Device(id=body.device_id, ward=claim.ward)
    elif device.cert_serial is not None:
        # Re-enrolment of a replaced box: the old certificates must stop working.
        ca.revoke(body.device_id, keep={f"{cert.serial_number:x}"})
    device.cert_serial = f"{cert.serial_number:x}"
    device.cert_fingerprint = pki.fingerprint(cert)
    api_token = issue_device_token(session, device)
    _, desired = _store_site(session, device, site, by=f"device:{device.id}")
    record(
        session,
        f"device:{device.id}",
        "device.enroll",
        device.id,
        ward=device.ward,
        serial=device.cert_serial,
    )
    session.commit()
    log.info("enrolled device=%s ward=%s serial=%s", device.id, device.ward, device.cert_serial)
    _sync_broker(request, session)
    # Retained, so the device finds its configuration the moment it first connects (an imported
    # device's config was stored before it had a broker identity, so publish the latest either way).
    desired = desired or _latest_desired(session, device.id)
    if desired is not None:
        publish_desired(request.app.state.mqtt, device, desired)
    return EnrollResponse(
        device_id=device.id,
        ward=device.ward,
        certificate=pki.cert_pem(cert).decode(),
        ca=ca.cert_path.read_text(),
        broker_url=conf.broker_url,
        cloud_url=str(request.app.state.settings.public_url),
        api_token=api_token,
        site=site.model_dump(mode="json", exclude_defaults=True),
    )


def _initial_site(session: Session, body: EnrollRequest) -> SiteConfig:
    """The device's first configuration: the camera given at enrollment, else the imported one."""
    latest = _latest_desired(session, body.device_id)
    try:
        if body.camera is not None:
            camera = CameraConfig(id=body.camera_id, source=body.camera)
            if latest is not None:
                old = SiteConfig.model_validate(latest.body)
                others = [c for c in old.cameras if c.id != body.camera_id]
                return old.model_copy(update={"cameras": [camera, *others]})
            return SiteConfig(cameras=[camera])
        if latest is not None:
            return SiteConfig.model_validate(latest.body)
    except ValidationError as exc:
        raise HTTPException(422, f"camera: {describe(exc)}") from None
    raise HTTPException(422, "no camera for this device: pass --camera rtsp://… or import it first")


def _latest_desired(session: Session, device_id: str) -> DesiredConfigRow | None:
    query = (
        select(DesiredConfigRow)
        .where(DesiredConfigRow.device_id == device_id)
        .order_by(DesiredConfigRow.version.desc())  # type: ignore[attr-defined]
    )
    return session.exec(query).first()


def _store_site(
    session: Session, device: Device, site: SiteConfig, by: str
) -> tuple[list[Camera], DesiredConfigRow | None]:
    """A new desired-config version when the site changed (returned, to publish after the commit),
    and a registry row per camera with its stream URL redacted."""
    latest = _latest_desired(session, device.id)
    body = site.model_dump(mode="json")
    row = None
    if latest is None or latest.body != body:
        version = (latest.version if latest else 0) + 1
        row = DesiredConfigRow(
            device_id=device.id, version=version, body=body, created_by=by, created_at=utc_now()
        )
        session.add(row)
        device.desired_version = version
        device.health_interval_s = site.health.interval_s
    session.add(device)
    cameras = []
    for cam in site.cameras:
        cam_row = session.get(Camera, (device.id, cam.id)) or Camera(device_id=device.id, id=cam.id)
        cam_row.source_redacted = redact(cam.source)
        session.add(cam_row)
        cameras.append(cam_row)
    return cameras, row


# --- renewal, revocation ----------------------------------------------------------------------------


@router.post("/devices/{device_id}/renew", response_model=RenewResponse)
def renew(
    device_id: str, body: RenewRequest, caller: DeviceCaller, request: Request, session: DbSession
) -> RenewResponse:
    if caller.name != device_id:
        raise HTTPException(403, "a device renews only its own certificate")
    ca = _authority(request)
    try:
        cert = ca.sign_csr(body.csr.encode(), device_id, days=_settings(request).device_cert_days)
    except ProvisionError as exc:
        raise HTTPException(400, str(exc)) from None
    device = session.get(Device, device_id)
    assert device is not None  # the token resolved to it
    device.cert_serial = f"{cert.serial_number:x}"
    device.cert_fingerprint = pki.fingerprint(cert)
    session.add(device)
    record(session, caller.label(), "device.renew", device_id, serial=device.cert_serial)
    session.commit()
    return RenewResponse(
        certificate=pki.cert_pem(cert).decode(),
        ca=ca.cert_path.read_text(),
        not_after=cert.not_valid_after_utc,
    )


@router.post("/devices/{device_id}/revoke", response_model=RevokeResult)
def revoke(device_id: str, who: Admin, request: Request, session: DbSession) -> RevokeResult:
    ca = _authority(request)
    try:
        device, serials = revoke_device(session, ca, device_id, who.label())
    except ProvisionError as exc:
        raise HTTPException(404, str(exc)) from None
    session.commit()
    reloaded = _sync_broker(request, session)
    assert device.revoked_at is not None
    return RevokeResult(
        device_id=device_id, revoked_at=device.revoked_at, serials=serials, broker_reloaded=reloaded
    )


def _sync_broker(request: Request, session: Session) -> bool:
    """Regenerate the broker's ACL and CRL from the registry and SIGHUP it; True when reloaded."""
    conf = _settings(request)
    if conf.ca_dir is None:
        return False
    try:
        return sync_broker(session, conf.ca_dir, conf.broker_dir)
    except ProvisionError as exc:
        # The change itself stands; the operator must fix the broker folder and rerun broker-config.
        log.error("broker config not regenerated: %s", exc)
        return False


# --- bulk import, commissioning ---------------------------------------------------------------------


@router.post("/import", response_model=ImportResult, status_code=201)
def import_cameras(
    csv_text: Annotated[str, Body(media_type="text/csv")],
    who: Staff,
    session: DbSession,
    ttl_hours: Annotated[float, Query(gt=0, le=720)] = 72.0,
) -> ImportResult:
    from provisioning.bulk_import import import_csv

    try:
        result = import_csv(session, csv_text, by=who.label(), ttl_hours=ttl_hours)
    except ProvisionError as exc:
        raise HTTPException(422, str(exc)) from None
    session.commit()
    return result


@router.post("/devices/{device_id}/commissioning", status_code=204)
def commissioning_report(
    device_id: str, report: CommissioningReport, caller: DeviceCaller, session: DbSession
) -> None:
    if caller.name != device_id:
        raise HTTPException(403, "a device reports only its own commissioning")
    device = session.get(Device, device_id)
    assert device is not None
    device.check_report = report.model_dump(mode="json")
    if report.ok:
        device.commissioned_by = report.by
        device.commissioned_at = report.at
    session.add(device)
    record(session, caller.label(), "device.commissioning", device_id, ok=report.ok, by=report.by)
    session.commit()

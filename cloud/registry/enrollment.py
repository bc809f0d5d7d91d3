"""Enrollment, renewal, revocation and the commissioning report: what the registry does when a
device joins, renews its certificate, is cut off, or is signed off by its technician.

Enrollment follows AWS IoT fleet provisioning by claim: the operations centre issues a single-use,
expiring claim token bound to a ward (and optionally one device id); the device makes its own key,
sends only a CSR with the token, and gets back its certificate, the CA, the broker address, an
upload token and its first configuration. The private key never leaves the device.

Configuration: `Settings.enrollment` (cloud/settings.py; MATTHAN_PROVISION_CA_DIR, _BROKER_URL,
_BROKER_DIR). When the broker folder is set, the ACL and CRL are regenerated and the broker reloaded
on every enrollment and revocation.
"""

import logging

from pydantic import ValidationError
from sqlalchemy import update
from sqlmodel import Session, col

from cloud.audit import record
from cloud.auth import issue_device_token, token_hash
from cloud.errors import CloudError, Conflict, Forbidden, Gone, Invalid, NotFound, Unavailable
from cloud.models import ClaimToken, DesiredConfigRow, Device
from cloud.mqtt import MqttLink
from cloud.registry.claims import issue_claim
from cloud.registry.revoke import revoke_device, sync_broker
from cloud.registry.sites import latest_desired, store_site
from cloud.services.config import publish_desired
from cloud.settings import ENROLLMENT_ENV_PREFIX, EnrollmentSettings
from matthan.i18n import Msg
from matthan_wire.codec import describe
from matthan_wire.config import CameraConfig, SiteConfig
from matthan_wire.enrollment import (
    ClaimIssued,
    ClaimRequest,
    CommissioningReport,
    EnrollRequest,
    EnrollResponse,
    RenewRequest,
    RenewResponse,
    RevokeResult,
)
from matthan_wire.timeutil import utc_now
from provisioning import pki
from provisioning.errors import ProvisionError

log = logging.getLogger("matthan.cloud.enrollment")


def authority(conf: EnrollmentSettings) -> pki.Authority:
    if conf.ca_dir is None:
        raise Unavailable(
            Msg(
                "enrollment is not configured on this server: set %(name)s",
                name=f"{ENROLLMENT_ENV_PREFIX}CA_DIR",
            )
        )
    try:
        return pki.Authority(conf.ca_dir)
    except ProvisionError as exc:
        raise Unavailable(Msg("certificate authority unavailable: %(error)s", error=exc.args[0])) from None


def create_claim(session: Session, body: ClaimRequest, by: str) -> ClaimIssued:
    """A claim token for a ward (and device); committed."""
    device = session.get(Device, body.device_id) if body.device_id else None
    if device is not None and device.ward != body.ward:
        raise Conflict(
            Msg(
                "device %(device)s is registered in ward %(ward)s, not %(asked)s",
                device=device.id,
                ward=device.ward,
                asked=body.ward,
            )
        )
    issued = issue_claim(session, body.ward, body.device_id, body.ttl_hours, by)
    session.commit()
    return issued


def enroll(
    session: Session, body: EnrollRequest, conf: EnrollmentSettings, link: MqttLink | None, cloud_url: str
) -> EnrollResponse:
    ca = authority(conf)
    if conf.broker_url is None:
        raise Unavailable(
            Msg(
                "enrollment is not configured on this server: set %(name)s",
                name=f"{ENROLLMENT_ENV_PREFIX}BROKER_URL",
            )
        )
    now = utc_now()
    claim = session.get(ClaimToken, token_hash(body.token))
    if claim is None:
        raise Forbidden(Msg("claim token unknown (mistyped, or issued by another server)"))
    if claim.revoked_at is not None:
        raise Gone(
            Msg(
                "claim token revoked at %(at)s UTC; ask for a new one",
                at=f"{claim.revoked_at:%Y-%m-%d %H:%M}",
            )
        )
    if claim.used_at is not None:
        raise Conflict(
            Msg(
                "claim token already used (by %(by)s at %(at)s UTC)",
                by=claim.used_by,
                at=f"{claim.used_at:%Y-%m-%d %H:%M}",
            )
        )
    if claim.expires_at <= now:
        raise Gone(
            Msg(
                "claim token expired at %(at)s UTC; ask for a new one",
                at=f"{claim.expires_at:%Y-%m-%d %H:%M}",
            )
        )
    if body.ward is not None and body.ward != claim.ward:
        raise Forbidden(
            Msg("claim token is for ward %(ward)s, not %(asked)s", ward=claim.ward, asked=body.ward)
        )
    if claim.device_id is not None and claim.device_id != body.device_id:
        raise Forbidden(
            Msg(
                "claim token is bound to device %(device)s, not %(asked)s",
                device=claim.device_id,
                asked=body.device_id,
            )
        )
    device = session.get(Device, body.device_id)
    if device is not None:
        if device.ward != claim.ward:
            raise Forbidden(
                Msg(
                    "device %(device)s belongs to ward %(ward)s; this token is for ward %(token_ward)s",
                    device=device.id,
                    ward=device.ward,
                    token_ward=claim.ward,
                )
            )
        if device.revoked_at is not None:
            raise Conflict(
                Msg("device %(device)s was revoked; enroll the replacement under a new id", device=device.id)
            )
        if device.cert_serial is not None and claim.device_id != device.id:
            raise Conflict(
                Msg(
                    "device %(device)s is already enrolled; "
                    "re-enrolling needs a token bound to that device id",
                    device=device.id,
                )
            )
    site = _initial_site(session, body)
    # Single use even under a race: only the request whose UPDATE flips used_at goes on.
    flipped = session.execute(
        update(ClaimToken)
        .where(
            col(ClaimToken.token_hash) == claim.token_hash,
            col(ClaimToken.used_at).is_(None),
            col(ClaimToken.revoked_at).is_(None),
        )
        .values(used_at=now, used_by=body.device_id)
    )
    if flipped.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        raise Conflict(Msg("claim token already used"))
    try:
        cert = ca.sign_csr(body.csr.encode(), body.device_id, days=conf.device_cert_days or pki.DEVICE_DAYS)
    except ProvisionError as exc:
        session.rollback()  # the token stays unused: the technician can retry with a good CSR
        raise BadCsr(exc.args[0]) from None
    if device is None:
        device = Device(id=body.device_id, ward=claim.ward)
    elif device.cert_serial is not None:
        # Re-enrolment of a replaced box: the old certificates must stop working.
        ca.revoke(body.device_id, keep={f"{cert.serial_number:x}"})
    device.cert_serial = f"{cert.serial_number:x}"
    device.cert_fingerprint = pki.fingerprint(cert)
    api_token = issue_device_token(session, device)
    _, desired = store_site(session, device, site, by=f"device:{device.id}")
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
    broker_sync(session, conf)
    # Retained, so the device finds its configuration the moment it first connects (an imported
    # device's config was stored before it had a broker identity, so publish the latest either way).
    desired = desired or latest_desired(session, device.id)
    if desired is not None:
        publish_desired(link, device, desired)
    return EnrollResponse(
        device_id=device.id,
        ward=device.ward,
        certificate=pki.cert_pem(cert).decode(),
        ca=ca.cert_path.read_text(),
        broker_url=conf.broker_url,
        cloud_url=cloud_url,
        api_token=api_token,
        site=site.model_dump(mode="json", exclude_defaults=True),
    )


class BadCsr(Invalid):
    """A CSR the CA refuses to sign (HTTP 400: fix the request, the token is still good)."""

    status = 400


def _initial_site(session: Session, body: EnrollRequest) -> SiteConfig:
    """The device's first configuration: the camera given at enrollment, else the imported one."""
    latest: DesiredConfigRow | None = latest_desired(session, body.device_id)
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
        raise Invalid(Msg("camera: %(problem)s", problem=describe(exc))) from None
    raise Invalid(Msg("no camera for this device: pass --camera rtsp://… or import it first"))


def renew(
    session: Session, device_id: str, body: RenewRequest, conf: EnrollmentSettings, by: str
) -> RenewResponse:
    ca = authority(conf)
    try:
        cert = ca.sign_csr(body.csr.encode(), device_id, days=conf.device_cert_days or pki.DEVICE_DAYS)
    except ProvisionError as exc:
        raise BadCsr(exc.args[0]) from None
    device = session.get(Device, device_id)
    if device is None:
        raise NotFound(Msg("no device %(device)s", device=device_id))
    device.cert_serial = f"{cert.serial_number:x}"
    device.cert_fingerprint = pki.fingerprint(cert)
    session.add(device)
    record(session, by, "device.renew", device_id, serial=device.cert_serial)
    session.commit()
    return RenewResponse(
        certificate=pki.cert_pem(cert).decode(),
        ca=ca.cert_path.read_text(),
        not_after=cert.not_valid_after_utc,
    )


def revoke(session: Session, device_id: str, conf: EnrollmentSettings, by: str) -> RevokeResult:
    ca = authority(conf)
    device, serials = revoke_device(session, ca, device_id, by)
    session.commit()
    reloaded = broker_sync(session, conf)
    assert device.revoked_at is not None
    return RevokeResult(
        device_id=device_id, revoked_at=device.revoked_at, serials=serials, broker_reloaded=reloaded
    )


def broker_sync(session: Session, conf: EnrollmentSettings) -> bool:
    """Regenerate the broker's ACL and CRL from the registry and SIGHUP it; True when reloaded."""
    if conf.ca_dir is None:
        return False
    try:
        return sync_broker(session, conf.ca_dir, conf.broker_dir)
    except (ProvisionError, CloudError) as exc:
        # The change itself stands; the operator must fix the broker folder and rerun broker-config.
        log.error("broker config not regenerated: %s", exc)
        return False


def commissioning(session: Session, device_id: str, report: CommissioningReport, by: str) -> None:
    device = session.get(Device, device_id)
    if device is None:
        raise NotFound(Msg("no device %(device)s", device=device_id))
    device.check_report = report.model_dump(mode="json")
    if report.ok:
        device.commissioned_by = report.by
        device.commissioned_at = report.at
    session.add(device)
    record(session, by, "device.commissioning", device_id, ok=report.ok, by=report.by)
    session.commit()

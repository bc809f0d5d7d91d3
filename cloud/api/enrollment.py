"""The fleet registry over HTTP: claim tokens, enrollment, certificate renewal, revocation, bulk
import and the commissioning report. The rules are in cloud/registry/."""

from typing import Annotated

from fastapi import APIRouter, Body, Query

from cloud.api.deps import AppSettings, Mqtt
from cloud.auth import Admin, DbSession, DeviceCaller, Staff
from cloud.errors import Forbidden
from cloud.registry import enrollment
from cloud.registry.bulk_import import import_csv
from cloud.registry.claims import list_claims, revoke_claim
from matthan.i18n import Msg
from matthan_wire.enrollment import (
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
)

router = APIRouter(prefix="/api/v1", tags=["provisioning"])


@router.post("/claim-tokens", status_code=201, response_model=ClaimIssued)
def create_claim_token(body: ClaimRequest, who: Staff, session: DbSession) -> ClaimIssued:
    return enrollment.create_claim(session, body, who.label())


@router.get("/claim-tokens", response_model=list[ClaimInfo])
def list_claim_tokens(who: Staff, session: DbSession, ward: str | None = None) -> list[ClaimInfo]:
    return list_claims(session, ward)


@router.post("/claim-tokens/{ref}/revoke", response_model=ClaimInfo)
def revoke_claim_token(ref: str, who: Admin, session: DbSession) -> ClaimInfo:
    """Withdraw an unused token (a lost printout): enrollment refuses it from now on."""
    revoked = revoke_claim(session, ref, who.label())
    session.commit()
    return revoked


@router.post("/enroll", response_model=EnrollResponse)
def enroll(body: EnrollRequest, session: DbSession, settings: AppSettings, link: Mqtt) -> EnrollResponse:
    return enrollment.enroll(session, body, settings.enrollment, link, str(settings.public_url))


@router.post("/devices/{device_id}/renew", response_model=RenewResponse)
def renew(
    device_id: str, body: RenewRequest, caller: DeviceCaller, session: DbSession, settings: AppSettings
) -> RenewResponse:
    if caller.name != device_id:
        raise Forbidden(Msg("a device renews only its own certificate"))
    return enrollment.renew(session, device_id, body, settings.enrollment, caller.label())


@router.post("/devices/{device_id}/revoke", response_model=RevokeResult)
def revoke(device_id: str, who: Admin, session: DbSession, settings: AppSettings) -> RevokeResult:
    return enrollment.revoke(session, device_id, settings.enrollment, who.label())


@router.post("/import", response_model=ImportResult, status_code=201)
def import_cameras(
    csv_text: Annotated[str, Body(media_type="text/csv")],
    who: Staff,
    session: DbSession,
    ttl_hours: Annotated[float, Query(gt=0, le=720)] = 72.0,
) -> ImportResult:
    result = import_csv(session, csv_text, by=who.label(), ttl_hours=ttl_hours)
    session.commit()
    return result


@router.post("/devices/{device_id}/commissioning", status_code=204)
def commissioning_report(
    device_id: str, report: CommissioningReport, caller: DeviceCaller, session: DbSession
) -> None:
    if caller.name != device_id:
        raise Forbidden(Msg("a device reports only its own commissioning"))
    enrollment.commissioning(session, device_id, report, caller.label())

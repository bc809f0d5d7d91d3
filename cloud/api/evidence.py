"""Evidence over HTTP: an event's manifest check, the export zip, pinning (admin) and the audit
chain's state. Every export is in the audit log; so is every pin and unpin, with its reason."""

import os
import tempfile
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from sqlmodel import Session
from starlette.background import BackgroundTask

from cloud import custody, retention
from cloud.api.deps import AppSettings
from cloud.auth import Admin, AnyUser, DbSession, Principal, require_ward
from cloud.errors import NotFound
from cloud.evidence import check_event
from cloud.evidence_export import write_bundle
from cloud.models import AlertPin, AlertRow, EvidenceCheck, RetentionPurge
from matthan.i18n import Msg

router = APIRouter(prefix="/api/v1", tags=["evidence"])


class EvidenceOut(BaseModel):
    event_id: str
    status: str | None  # valid | incomplete | invalid | unverified; None: no manifest yet
    reason: str | None = None
    signer: str | None = None
    serial: str | None = None
    checked_at: datetime | None = None
    pinned: bool = False
    pinned_by: str | None = None
    pin_reason: str | None = None
    purged_at: datetime | None = None


class PinIn(BaseModel):
    reason: Annotated[str, Field(min_length=1, max_length=2000)]


class ChainOut(BaseModel):
    ok: bool
    entries: int
    head_seq: int
    head_hash: str
    problem: str | None


def _visible(session: Session, principal: Principal, event_id: str) -> AlertRow:
    alert = session.get(AlertRow, event_id)
    if alert is None:
        raise NotFound(Msg("no alert %(event)s", event=event_id))
    require_ward(principal, alert.ward)
    return alert


def evidence_out(session: Session, event_id: str, check: EvidenceCheck | None) -> EvidenceOut:
    pin = session.get(AlertPin, event_id)
    purge = session.get(RetentionPurge, event_id)
    return EvidenceOut(
        event_id=event_id,
        status=check.status if check else None,
        reason=check.reason if check else None,
        signer=check.signer if check else None,
        serial=check.serial if check else None,
        checked_at=check.checked_at if check else None,
        pinned=pin is not None,
        pinned_by=pin.pinned_by if pin else None,
        pin_reason=pin.reason if pin else None,
        purged_at=purge.purged_at if purge else None,
    )


@router.get("/alerts/{event_id}/evidence", summary="The signed manifest's check, pin and retention state")
def evidence_state(event_id: str, principal: AnyUser, session: DbSession) -> EvidenceOut:
    _visible(session, principal, event_id)
    return evidence_out(session, event_id, session.get(EvidenceCheck, event_id))


@router.post("/alerts/{event_id}/evidence/check", summary="Verify the event's manifest again now")
def evidence_recheck(
    event_id: str, request: Request, principal: AnyUser, session: DbSession, settings: AppSettings
) -> EvidenceOut:
    _visible(session, principal, event_id)
    check = check_event(session, settings, request.app.state.clip_store, event_id)
    session.commit()
    return evidence_out(session, event_id, check)


@router.get(
    "/alerts/{event_id}/evidence.zip",
    summary="Export the evidence bundle (media, signed manifest, certificate chain, CRL, summary); audited",
    response_class=FileResponse,
)
def evidence_export(
    event_id: str, request: Request, principal: AnyUser, session: DbSession, settings: AppSettings
) -> FileResponse:
    _visible(session, principal, event_id)
    # Built on disk: a clip can be hundreds of MB; the file goes when the answer has been sent.
    tmp = tempfile.NamedTemporaryFile(prefix="evidence-", suffix=".zip", delete=False)  # noqa: SIM115
    try:
        write_bundle(session, settings, request.app.state.clip_store, event_id, principal.label(), tmp)
        tmp.close()
        session.commit()
    except BaseException:
        tmp.close()

        os.unlink(tmp.name)
        raise

    return FileResponse(
        tmp.name,
        media_type="application/zip",
        filename=f"evidence-{event_id}.zip",
        background=BackgroundTask(os.unlink, tmp.name),
    )


@router.post("/alerts/{event_id}/pin", summary="Pin as evidence (admin): retention never deletes it")
def pin(event_id: str, body: PinIn, principal: Admin, session: DbSession) -> EvidenceOut:
    retention.pin(session, principal, event_id, body.reason)
    session.commit()
    return evidence_out(session, event_id, session.get(EvidenceCheck, event_id))


@router.post("/alerts/{event_id}/unpin", summary="Unpin (admin, with a reason): retention applies again")
def unpin(event_id: str, body: PinIn, principal: Admin, session: DbSession) -> EvidenceOut:
    retention.unpin(session, principal, event_id, body.reason)
    session.commit()
    return evidence_out(session, event_id, session.get(EvidenceCheck, event_id))


@router.get("/audit/verify", summary="Check the audit log's hash chain (admin)")
def audit_verify(principal: Admin, session: DbSession) -> ChainOut:
    r = custody.verify_chain(session)
    return ChainOut(ok=r.ok, entries=r.entries, head_seq=r.head_seq, head_hash=r.head_hash, problem=r.problem)

"""Claim tokens (administrators): the list (never a secret: a reference, the ward and device, expiry
and whether it was used or revoked), issuing one (its token, QR code and the technician's enroll
command, shown once), and revoking an unused one. The same functions as the HTTP API
(cloud/registry), so every change is audited alike."""

from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError

from cloud.auth import DbSession, known_wards
from cloud.console.invalid import invalid_message
from cloud.console.pages import Viewer, ViewerDep, check_csrf, page, page_router
from cloud.errors import Forbidden, Invalid
from cloud.registry import enrollment
from cloud.registry.claims import list_claims, revoke_claim
from matthan.i18n import N_
from matthan_wire.enrollment import ClaimIssued, ClaimRequest

router = page_router()
DEFAULT_TTL_HOURS = 72
STATES = {"open": N_("unused"), "used": N_("used"), "expired": N_("expired"), "revoked": N_("revoked")}


def admin_only(v: Viewer) -> None:
    if v.principal.role != "admin":
        raise Forbidden(N_("claim tokens and users are for administrators"))


@router.get("/console/claims")
def claims_page(request: Request, v: ViewerDep, session: DbSession, revoked: str = "") -> HTMLResponse:
    admin_only(v)
    return _render(request, v, session, None, revoked)


@router.post("/console/claims")
def issue(
    request: Request,
    v: ViewerDep,
    session: DbSession,
    ward: Annotated[str, Form(max_length=63)],
    device_id: Annotated[str, Form(max_length=63)] = "",
    ttl_hours: Annotated[str, Form(max_length=8)] = str(DEFAULT_TTL_HOURS),
    csrf_token: Annotated[str, Form()] = "",
) -> HTMLResponse:
    check_csrf(v, csrf_token)
    admin_only(v)
    try:
        body = ClaimRequest.model_validate(
            {"ward": ward.strip(), "device_id": device_id.strip() or None, "ttl_hours": ttl_hours}
        )
    except ValidationError as exc:
        raise Invalid(invalid_message(exc.errors())) from None
    issued = enrollment.create_claim(session, body, v.principal.label())  # commits
    # Rendered, not redirected: the token exists only in this response.
    return _render(request, v, session, issued, "")


@router.post("/console/claims/{ref}/revoke")
def revoke(
    ref: str, v: ViewerDep, session: DbSession, csrf_token: Annotated[str, Form()] = ""
) -> RedirectResponse:
    check_csrf(v, csrf_token)
    admin_only(v)
    revoke_claim(session, ref, v.principal.label())
    session.commit()
    return RedirectResponse(f"/console/claims?revoked={ref}", 303)


def _render(
    request: Request, v: Viewer, session: DbSession, issued: ClaimIssued | None, revoked: str
) -> HTMLResponse:
    cloud_url = str(request.app.state.settings.public_url).rstrip("/")
    return page(
        request,
        "console/claims.html",
        v,
        title=N_("Claim tokens"),
        nav="claims",
        claims=list_claims(session),
        wards=known_wards(session),
        issued=issued,
        enroll_command=_enroll_command(cloud_url, issued) if issued else "",
        revoked=revoked,
        ttl_hours=DEFAULT_TTL_HOURS,
        states=STATES,
    )


def _enroll_command(cloud_url: str, issued: ClaimIssued) -> str:
    """What the technician types on the device (provisioning/cli.py's `enroll`)."""
    return (
        f"matthan provision enroll --cloud {cloud_url} --token {issued.token} "
        f"--device-id {issued.device_id or 'DEVICE-ID'} --ward {issued.ward} --camera rtsp://…"
    )

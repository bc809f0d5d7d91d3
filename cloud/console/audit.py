"""The audit log page (administrators only): who did what, newest first."""

from typing import Annotated

from fastapi import Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import func
from sqlmodel import col, select

from cloud.auth import DbSession
from cloud.console.pages import ViewerDep, page, page_router
from cloud.errors import Forbidden
from cloud.models import AuditLog
from matthan.i18n import N_

router = page_router()


@router.get("/console/audit")
def audit_page(
    request: Request, v: ViewerDep, session: DbSession, limit: Annotated[int, Query(ge=1, le=1000)] = 200
) -> HTMLResponse:
    if v.principal.role != "admin":
        raise Forbidden(N_("the audit log is for administrators"))
    rows = session.exec(select(AuditLog).order_by(col(AuditLog.at).desc()).limit(limit)).all()
    total = session.exec(select(func.count()).select_from(AuditLog)).one()
    return page(request, "console/audit.html", v, title=N_("Audit log"), nav="audit", rows=rows, total=total)

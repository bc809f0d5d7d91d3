"""The audit log page (administrators only): who did what, newest first, filtered by actor, action,
days (on the district's clock) and a text in the target or the detail, a page at a time. Every
link keeps the filters; the page size and the text are bounded so a query stays cheap."""

import json
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import String, cast, func, or_
from sqlmodel import Session, col, select

from cloud.auth import DbSession
from cloud.console.pages import ViewerDep, page, page_router, zone_of
from cloud.errors import Forbidden, Invalid
from cloud.models import AuditLog
from matthan.i18n import N_, Msg
from matthan_wire.ids import QUERY_TEXT

router = page_router()
PAGE_SIZES = (50, 100, 200)
MAX_PAGE = 10_000
Text = Annotated[str, Query(max_length=100, pattern=QUERY_TEXT)]


@dataclass(frozen=True)
class AuditFilters:
    actor: str = ""
    action: str = ""
    since: str = ""  # YYYY-MM-DD, a day on the district's clock (from its start)
    until: str = ""  # YYYY-MM-DD, to that day's end
    q: str = ""
    size: int = PAGE_SIZES[0]

    def link(self, page_no: int) -> str:
        """The page's address with these filters and another page number (empty values left out)."""
        params: dict[str, Any] = {k: v for k, v in vars(self).items() if v and k != "size"}
        if self.size != PAGE_SIZES[0]:
            params["size"] = self.size
        if page_no > 1:
            params["page"] = page_no
        return "/console/audit" + (f"?{urlencode(params)}" if params else "")


@router.get("/console/audit")
def audit_page(
    request: Request,
    v: ViewerDep,
    session: DbSession,
    actor: Text = "",
    action: Annotated[str, Query(max_length=64, pattern=QUERY_TEXT)] = "",
    since: Annotated[str, Query(max_length=10, pattern=QUERY_TEXT)] = "",
    until: Annotated[str, Query(max_length=10, pattern=QUERY_TEXT)] = "",
    q: Text = "",
    size: Annotated[int, Query(ge=1, le=PAGE_SIZES[-1])] = PAGE_SIZES[0],
    page_no: Annotated[int, Query(alias="page", ge=1, le=MAX_PAGE)] = 1,
) -> HTMLResponse:
    if v.principal.role != "admin":
        raise Forbidden(N_("the audit log is for administrators"))
    f = AuditFilters(
        actor.strip(), action.strip(), since, until, q.strip(), min(PAGE_SIZES, key=lambda s: abs(s - size))
    )
    query = _filtered(select(AuditLog), f, zone_of(request))
    total = session.exec(_filtered(select(func.count()).select_from(AuditLog), f, zone_of(request))).one()
    rows = session.exec(
        query.order_by(col(AuditLog.at).desc(), col(AuditLog.id).desc())
        .offset((page_no - 1) * f.size)
        .limit(f.size)
    ).all()
    last = max(1, -(-total // f.size))
    return page(
        request,
        "console/audit.html",
        v,
        title=N_("Audit log"),
        nav="audit",
        rows=rows,
        total=total,
        filters=f,
        page_no=page_no,
        last_page=last,
        first_shown=(page_no - 1) * f.size + 1 if rows else 0,
        actions=_actions(session),
        page_sizes=PAGE_SIZES,
    )


def _filtered(query: Any, f: AuditFilters, zone: tzinfo) -> Any:
    if f.actor:
        query = query.where(col(AuditLog.who).ilike(_like(f.actor), escape="\\"))
    if f.action:
        query = query.where(AuditLog.action == f.action)
    start = _day(f.since, N_("from"), zone)
    end = _day(f.until, N_("to"), zone)
    if start is not None and end is not None and end < start:
        raise Invalid(N_("the first day comes after the last one"))
    if start is not None:
        query = query.where(col(AuditLog.at) >= start)
    if end is not None:
        query = query.where(col(AuditLog.at) < end + timedelta(days=1))
    if f.q:
        # The detail is stored as JSON text, where "lần" is written "l\\u1ea7n": look for both.
        detail = cast(AuditLog.detail, String)
        query = query.where(
            or_(
                col(AuditLog.target).ilike(_like(f.q), escape="\\"),
                detail.ilike(_like(f.q), escape="\\"),
                detail.ilike(_like(json.dumps(f.q)[1:-1]), escape="\\"),
            )
        )
    return query


def _day(text: str, what: str, zone: tzinfo) -> datetime | None:
    """The start of a day given as YYYY-MM-DD (an <input type=date>), on the district's clock."""
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
        if not 1970 <= day.year <= 9000:  # and the day after it exists
            raise ValueError(text)
    except ValueError:
        raise Invalid(
            Msg(N_("%(what)s: %(text)s is not a day like 2026-11-24"), what=Msg(what), text=text)
        ) from None
    return datetime.combine(day, time(), tzinfo=zone)


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _actions(session: Session) -> list[str]:
    """The actions recorded so far, for the filter's choice (a few dozen kinds, not rows)."""
    return sorted(session.exec(select(AuditLog.action).distinct()).all())

"""Shift handover: one printable page for a time range (open alerts, escalations, outages, false
alarms), and the same rows as CSV. Scoped like every page (an officer sees their ward)."""

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import or_
from sqlmodel import Session, col, select

from cloud.attention.escalation import OUTAGE_TYPES
from cloud.auth import DbSession
from cloud.console import views
from cloud.console.alerts import _local_input
from cloud.console.pages import Viewer, ViewerDep, page, page_router, scope, ward_choices, zone_of
from cloud.models import AlertRow, AuditLog
from matthan.i18n import N_
from matthan_wire.timeutil import utc_now

router = page_router()


@dataclass
class Handover:
    since: datetime
    until: datetime
    ward: str | None
    open_alerts: list[AlertRow] = field(default_factory=list)
    escalations: list[tuple[AuditLog, AlertRow]] = field(default_factory=list)
    outages: list[AlertRow] = field(default_factory=list)
    false_alarms: list[AlertRow] = field(default_factory=list)
    new_count: int = 0


def handover(session: Session, v: Viewer, ward: str | None, since: datetime, until: datetime) -> Handover:
    ward = scope(v, ward)
    h = Handover(since=since, until=until, ward=ward)

    def scoped(q: Any) -> Any:
        return q.where(AlertRow.ward == ward) if ward else q

    not_outage = col(AlertRow.type).not_in(OUTAGE_TYPES)
    h.open_alerts = list(
        session.exec(
            scoped(
                select(AlertRow)
                .where(
                    col(AlertRow.state).in_(views.OPEN_STATES), col(AlertRow.started_at) < until, not_outage
                )
                .order_by(col(AlertRow.started_at))
            ).limit(500)
        ).all()
    )
    h.new_count = len(
        session.exec(
            scoped(
                select(AlertRow.event_id).where(
                    col(AlertRow.received_at) >= since, col(AlertRow.received_at) < until
                )
            )
        ).all()
    )
    rows = session.exec(
        scoped(
            select(AuditLog, AlertRow)
            .join(AlertRow, col(AlertRow.event_id) == col(AuditLog.target))
            .where(AuditLog.action == "alert.escalate", col(AuditLog.at) >= since, col(AuditLog.at) < until)
            .order_by(col(AuditLog.at))
        ).limit(500)
    ).all()
    h.escalations = [(a, r) for a, r in rows]
    h.outages = list(
        session.exec(
            scoped(
                select(AlertRow)
                .where(
                    col(AlertRow.type).in_(OUTAGE_TYPES),
                    col(AlertRow.started_at) < until,
                    or_(col(AlertRow.ended_at).is_(None), col(AlertRow.ended_at) >= since),
                )
                .order_by(col(AlertRow.started_at))
            ).limit(500)
        ).all()
    )
    h.false_alarms = list(
        session.exec(
            scoped(
                select(AlertRow)
                .where(
                    AlertRow.state == "false_alarm",
                    col(AlertRow.resolved_at) >= since,
                    col(AlertRow.resolved_at) < until,
                )
                .order_by(col(AlertRow.resolved_at))
            ).limit(500)
        ).all()
    )
    return h


def _handover_of_request(
    request: Request,
    v: ViewerDep,
    session: DbSession,
    ward: str | None = None,
    since: str | None = None,
    until: str | None = None,
    hours: Annotated[float, Query(gt=0, le=24 * 31)] = 12,
) -> Handover:
    """The query both the page and its CSV take: a ward, and a range in the viewer's local time
    (`since`/`until`, or the last `hours` up to now)."""
    zone = zone_of(request)
    end = _local_input(until, "to", zone) or utc_now()
    start = _local_input(since, "from", zone) or end - timedelta(hours=hours)
    return handover(session, v, ward or None, start, end)


HandoverDep = Annotated[Handover, Depends(_handover_of_request)]


@router.get("/console/handover")
def handover_page(request: Request, v: ViewerDep, session: DbSession, h: HandoverDep) -> HTMLResponse:
    zone = zone_of(request)
    return page(
        request,
        "console/handover.html",
        v,
        title=N_("Shift handover"),
        nav="handover",
        h=h,
        wards=ward_choices(session, v),
        since_local=h.since.astimezone(zone).strftime("%Y-%m-%dT%H:%M"),
        until_local=h.until.astimezone(zone).strftime("%Y-%m-%dT%H:%M"),
        csv_url="/console/handover.csv?" + str(request.url.query),
        now=utc_now(),
    )


CSV_COLUMNS = [
    "section",
    "event_id",
    "ward",
    "device",
    "camera",
    "rule",
    "type",
    "started",
    "ended",
    "state",
    "by",
    "detail",
]


def _csv_row(section: str, a: AlertRow, started: str, ended: str, by: str, detail: str) -> list[str]:
    return [
        section,
        a.event_id,
        a.ward,
        a.device_id,
        a.camera_id,
        a.rule,
        a.type,
        started,
        ended,
        a.state,
        by,
        detail,
    ]


@router.get("/console/handover.csv")
def handover_csv(request: Request, h: HandoverDep) -> Response:
    zone = zone_of(request)

    def t(moment: datetime | None) -> str:
        return moment.astimezone(zone).isoformat(timespec="seconds") if moment else ""

    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(CSV_COLUMNS)
    for a in h.open_alerts:
        w.writerow(_csv_row("open", a, t(a.started_at), t(a.ended_at), a.state_by or "", ""))
    for log_row, a in h.escalations:
        d = log_row.detail or {}
        told = "; ".join(f"{x.get('name')} ({x.get('kind')})" for x in d.get("notified", []))
        w.writerow(_csv_row("escalation", a, t(log_row.at), "", "", f"level {d.get('level')}: {told}"))
    for a in h.outages:
        w.writerow(_csv_row("outage", a, t(a.started_at), t(a.ended_at), a.state_by or "", ""))
    for a in h.false_alarms:
        w.writerow(
            _csv_row("false_alarm", a, t(a.started_at), t(a.ended_at), a.resolved_by or "", a.note or "")
        )
    start, end = h.since.astimezone(zone), h.until.astimezone(zone)
    name = f"handover-{start:%Y%m%d-%H%M}-{end:%Y%m%d-%H%M}.csv"
    return Response(
        "\ufeff" + out.getvalue(),  # a BOM: Excel then reads the Vietnamese as UTF-8
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )

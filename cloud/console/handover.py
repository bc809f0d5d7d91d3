"""Shift handover: one printable page for a time range (open alerts, escalations, outages, false
alarms), and the same rows as CSV. Scoped like every page (an officer sees their ward)."""

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import Query, Request
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


def _range(request: Request, since: str | None, until: str | None, hours: float) -> tuple[datetime, datetime]:
    zone = zone_of(request)
    end = _local_input(until, "to", zone) or utc_now()
    start = _local_input(since, "from", zone) or end - timedelta(hours=hours)
    return start, end


@router.get("/console/handover")
def handover_page(
    request: Request,
    v: ViewerDep,
    session: DbSession,
    ward: str | None = None,
    since: str | None = None,
    until: str | None = None,
    hours: Annotated[float, Query(gt=0, le=24 * 31)] = 12,
) -> HTMLResponse:
    start, end = _range(request, since, until, hours)
    h = handover(session, v, ward or None, start, end)
    zone = zone_of(request)
    return page(
        request,
        "console/handover.html",
        v,
        title=N_("Shift handover"),
        nav="handover",
        h=h,
        wards=ward_choices(session, v),
        since_local=start.astimezone(zone).strftime("%Y-%m-%dT%H:%M"),
        until_local=end.astimezone(zone).strftime("%Y-%m-%dT%H:%M"),
        csv_url="/console/handover.csv?" + str(request.url.query),
        now=utc_now(),
    )


@router.get("/console/handover.csv")
def handover_csv(
    request: Request,
    v: ViewerDep,
    session: DbSession,
    ward: str | None = None,
    since: str | None = None,
    until: str | None = None,
    hours: Annotated[float, Query(gt=0, le=24 * 31)] = 12,
) -> Response:
    start, end = _range(request, since, until, hours)
    h = handover(session, v, ward or None, start, end)
    zone = zone_of(request)

    def t(moment: datetime | None) -> str:
        return moment.astimezone(zone).isoformat(timespec="seconds") if moment else ""

    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(
        [
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
    )
    for a in h.open_alerts:
        w.writerow(
            [
                "open",
                a.event_id,
                a.ward,
                a.device_id,
                a.camera_id,
                a.rule,
                a.type,
                t(a.started_at),
                t(a.ended_at),
                a.state,
                a.state_by or "",
                "",
            ]
        )
    for log_row, a in h.escalations:
        d = log_row.detail or {}
        told = "; ".join(f"{x.get('name')} ({x.get('kind')})" for x in d.get("notified", []))
        w.writerow(
            [
                "escalation",
                a.event_id,
                a.ward,
                a.device_id,
                a.camera_id,
                a.rule,
                a.type,
                t(log_row.at),
                "",
                a.state,
                "",
                f"level {d.get('level')}: {told}",
            ]
        )
    for a in h.outages:
        w.writerow(
            [
                "outage",
                a.event_id,
                a.ward,
                a.device_id,
                a.camera_id,
                a.rule,
                a.type,
                t(a.started_at),
                t(a.ended_at),
                a.state,
                a.state_by or "",
                "",
            ]
        )
    for a in h.false_alarms:
        w.writerow(
            [
                "false_alarm",
                a.event_id,
                a.ward,
                a.device_id,
                a.camera_id,
                a.rule,
                a.type,
                t(a.started_at),
                t(a.ended_at),
                a.state,
                a.resolved_by or "",
                a.note or "",
            ]
        )
    name = f"handover-{start.astimezone(zone):%Y%m%d-%H%M}-{end.astimezone(zone):%Y%m%d-%H%M}.csv"
    return Response(
        "\ufeff" + out.getvalue(),  # a BOM: Excel then reads the Vietnamese as UTF-8
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )

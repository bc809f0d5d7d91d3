"""The alert feed: filters, the live stream's cards, and acting on an alert (acknowledge, resolve,
false alarm) through the same service as the API."""

from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlmodel import Session, col, select

from cloud.attention.escalation import UNACKNOWLEDGED
from cloud.attention.escalation import history as escalation_history
from cloud.auth import DbSession
from cloud.console import figures, views
from cloud.console.pages import (
    Viewer,
    ViewerDep,
    check_csrf,
    page,
    page_router,
    safe_next,
    scope,
    templates,
    ward_choices,
    zone_of,
)
from cloud.errors import CloudError, Forbidden, Invalid, NotFound
from cloud.models import AlertRow, AuditLog
from cloud.services import alerts
from matthan.i18n import N_, Msg
from matthan_wire.codec import describe
from matthan_wire.config import CATEGORY_OF
from matthan_wire.ids import QUERY_TEXT, is_id
from matthan_wire.timeutil import bounded_utc, format_ts, utc_now

router = page_router()
FEED_PAGE = 20  # a screenful; older alerts are one click away


@dataclass(frozen=True)
class AlertFilters:
    zone: tzinfo
    ward: str | None = None
    category: str | None = None
    type: str | None = None
    rule: str | None = None
    state: str | None = None
    device: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    order: str = "newest"  # or "oldest": the unacknowledged queue, worked from the oldest

    @property
    def since_local(self) -> str:
        return self.since.astimezone(self.zone).strftime("%Y-%m-%dT%H:%M") if self.since else ""

    @property
    def until_local(self) -> str:
        return self.until.astimezone(self.zone).strftime("%Y-%m-%dT%H:%M") if self.until else ""


def _local_input(text: str | None, what: str, zone: tzinfo) -> datetime | None:
    """A <input type=datetime-local> value, in the district's time zone."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text[:64])
    except ValueError:
        raise CloudError(
            Msg("%(what)s: %(text)r is not a date and time like 2026-11-24T08:30", what=what, text=text[:64])
        ) from None
    try:
        return bounded_utc(moment.replace(tzinfo=zone) if moment.tzinfo is None else moment)
    except ValueError as exc:
        raise Invalid(f"{what}: {exc}") from None


def alert_filters(
    request: Request,
    ward: Annotated[str | None, Query(max_length=63, pattern=QUERY_TEXT)] = None,
    category: Annotated[str | None, Query(max_length=32, pattern=QUERY_TEXT)] = None,
    type: Annotated[str | None, Query(max_length=32, pattern=QUERY_TEXT)] = None,
    rule: Annotated[str | None, Query(max_length=128, pattern=QUERY_TEXT)] = None,
    state: Annotated[str | None, Query(max_length=32, pattern=QUERY_TEXT)] = None,
    device: Annotated[str | None, Query(max_length=63, pattern=QUERY_TEXT)] = None,
    since: Annotated[str | None, Query(max_length=64, pattern=QUERY_TEXT)] = None,
    until: Annotated[str | None, Query(max_length=64, pattern=QUERY_TEXT)] = None,
    order: Annotated[str | None, Query(max_length=16, pattern=QUERY_TEXT)] = None,
) -> AlertFilters:
    zone = zone_of(request)
    return AlertFilters(
        zone=zone,
        ward=ward or None,
        category=category or None,
        type=type or None,
        rule=rule or None,
        state=state or None,
        device=device or None,
        since=_local_input(since, Msg("from"), zone),
        until=_local_input(until, Msg("to"), zone),
        order="oldest" if order == "oldest" else "newest",
    )


FiltersDep = Annotated[AlertFilters, Depends(alert_filters)]


def alert_query(v: Viewer, f: AlertFilters) -> Any:
    states = (
        list(views.OPEN_STATES) if f.state == "open"
        else list(UNACKNOWLEDGED) if f.state == "unacknowledged"
        else [f.state] if f.state else None
    )  # fmt: skip
    return alerts.alert_query(
        ward=scope(v, f.ward), device=f.device, rule=f.rule, category=f.category, type=f.type,
        states=states, since=f.since, until=f.until,
    )  # fmt: skip


def stats(session: Session, v: Viewer, ward: str | None, days: int, zone: tzinfo) -> figures.Stats:
    since = utc_now() - timedelta(days=days)
    rows = session.exec(alert_query(v, AlertFilters(zone=zone, ward=ward, since=since))).all()
    return figures.stats(list(rows), days, zone)


@router.get("/console/alerts")
def alerts_page(
    request: Request,
    v: ViewerDep,
    session: DbSession,
    f: FiltersDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = FEED_PAGE,
) -> HTMLResponse:
    rendered_at = utc_now()
    started = col(AlertRow.started_at)
    q = alert_query(v, f).order_by(started if f.order == "oldest" else started.desc(), col(AlertRow.event_id))
    rows = session.exec(q.limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    more_url = None
    if more:
        keep = [(k, val) for k, val in request.query_params.multi_items() if k != "limit"]
        more_url = "/console/alerts?" + urlencode([*keep, ("limit", str(limit + FEED_PAGE))])
    ward_scope = v.principal.ward_scope or f.ward
    # From the moment this page was read, so an alert landing before the stream connects is not lost.
    params = {"since": format_ts(rendered_at), **({"ward": ward_scope} if ward_scope else {})}
    stream = f"/api/v1/alerts/stream?{urlencode(params)}"
    return page(
        request,
        "console/alerts.html",
        v,
        title=N_("Alerts"),
        nav="alerts",
        alerts=alerts.alert_outs(session, list(rows)),
        filters=f,
        wards=ward_choices(session, v),
        rule_types=sorted(CATEGORY_OF),
        stats=stats(session, v, f.ward, 7, f.zone),
        stream_url=stream,
        more_url=more_url,
        page_size=FEED_PAGE,
        can_act=v.can_act,
        next_url=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
    )


def _card(request: Request, v: Viewer, session: Session, row: AlertRow, next_url: str) -> HTMLResponse:
    a = alerts.alert_outs(session, [row])[0]
    return templates.TemplateResponse(
        request,
        "console/alert_card.html",
        {"a": a, "csrf": v.csrf, "can_act": v.can_act, "next_url": next_url},
    )


@router.get("/console/alerts/card/{event_id}")
def alert_card(request: Request, event_id: str, v: ViewerDep, session: DbSession, f: FiltersDep) -> Response:
    """One alert as the feed shows it; 204 when it does not match the page's filters."""
    if not is_id(event_id):
        raise NotFound("not found")
    row = session.exec(alert_query(v, f).where(AlertRow.event_id == event_id)).first()
    if row is None:
        exists = session.get(AlertRow, event_id)
        if exists is None or not v.principal.may_see(exists.ward):
            raise NotFound("not found")
        return Response(status_code=204)
    return _card(request, v, session, row, "/console/alerts")


@router.post("/console/alerts/{event_id}/action")
def alert_action(
    request: Request,
    event_id: str,
    v: ViewerDep,
    session: DbSession,
    action: Annotated[str, Form()],
    note: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(v, csrf_token)
    if not v.can_act:
        raise Forbidden(N_("your role may not act on alerts"))
    try:
        body = alerts.ActionIn.model_validate({"action": action, "note": note.strip() or None})
    except ValidationError as exc:
        raise CloudError(describe(exc)) from None
    state = request.app.state
    row = alerts.act(session, v.principal, event_id, body, state.mqtt, state.notifier)
    if request.headers.get("x-requested-with") == "fetch":
        return _card(request, v, session, row, safe_next(next))
    return RedirectResponse(safe_next(next or "/console/alerts") + f"#{event_id}", 303)


@router.get("/console/alerts/{event_id}")
def alert_page(request: Request, event_id: str, v: ViewerDep, session: DbSession) -> HTMLResponse:
    """One alert: its card, and its history (lifecycle, escalation levels, who was notified on
    which channel and what became of each message). The link every notification carries."""
    row = alerts.get_alert(session, v.principal, event_id)
    esc, sent = escalation_history(session, event_id)
    trail = session.exec(
        select(AuditLog).where(AuditLog.target == event_id).order_by(col(AuditLog.at), col(AuditLog.id))
    ).all()
    return page(
        request,
        "console/alert_page.html",
        v,
        title=Msg("Alert %(event)s", event=event_id),
        nav="alerts",
        a=alerts.alert_outs(session, [row])[0],
        escalation=esc,
        sent=sent,
        trail=trail,
        can_act=v.can_act,
        next_url=f"/console/alerts/{event_id}",
    )

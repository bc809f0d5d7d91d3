"""The alert feed: filters, the live stream's cards, and acting on an alert (acknowledge, resolve,
false alarm) through the same service as the API."""

import csv
import io
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlmodel import Session, col, select

from cloud import retention
from cloud.attention.escalation import UNACKNOWLEDGED
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
from cloud.models import AlertRow
from cloud.services import alerts
from matthan.display import rule_words
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
    site: str | None = None
    q: str | None = None

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
        raise Invalid(Msg("%(what)s: %(error)s", what=what, error=str(exc))) from None


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
    site: Annotated[str | None, Query(max_length=200, pattern=QUERY_TEXT)] = None,
    q: Annotated[str | None, Query(max_length=200, pattern=QUERY_TEXT)] = None,
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
        site=site or None,
        q=(q or "").strip() or None,
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
        states=states, since=f.since, until=f.until, site=f.site, text=f.q,
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
        stats_url="/console/alerts/part/stats" + (f"?{urlencode({'ward': f.ward})}" if f.ward else ""),
        sites=site_choices(session, v),
        map=alert_map(request, alerts.alert_outs(session, list(rows))),
        csv_url="/console/alerts.csv" + (f"?{request.url.query}" if request.url.query else ""),
        stream_url=stream,
        more_url=more_url,
        page_size=FEED_PAGE,
        can_act=v.can_act,
        is_admin=v.principal.role == "admin",
        next_url=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
    )


def site_choices(session: Session, v: Viewer) -> list[str]:
    q = select(AlertRow.site_name).where(col(AlertRow.site_name).is_not(None)).distinct()
    if v.principal.ward_scope is not None:
        q = q.where(AlertRow.ward == v.principal.ward_scope)
    return sorted(n for n in session.exec(q.limit(500)).all() if n)


def map_config(request: Request, markers: list[dict[str, Any]]) -> dict[str, Any]:
    """What cloud/static/map.js draws: the tile server (none: a blank background) and the markers."""
    settings = request.app.state.settings
    return {"tiles": settings.map_tile_url, "attribution": settings.map_attribution, "markers": markers}


def alert_marker(a: alerts.AlertOut) -> dict[str, Any] | None:
    site = a.site or {}
    if site.get("lat") is None or site.get("lon") is None:
        return None
    return {
        "lat": site["lat"], "lon": site["lon"], "state": a.state, "url": f"/console/alerts/{a.event_id}",
        "label": f"{rule_words(a.type, a.rule_title)} · {site.get('name', '')} · {a.state.replace('_', ' ')}",
    }  # fmt: skip


def alert_map(request: Request, outs: list[alerts.AlertOut]) -> dict[str, Any]:
    return map_config(request, [m for m in map(alert_marker, outs) if m is not None])


@router.get("/console/alerts/part/stats")
def stats_part(request: Request, v: ViewerDep, session: DbSession, ward: str | None = None) -> HTMLResponse:
    """The "Last 7 days" panel again: the feed re-reads it when the live stream reports a change."""
    return templates.TemplateResponse(
        request, "console/stats_part.html", {"stats": stats(session, v, ward or None, 7, zone_of(request))}
    )


CSV_COLUMNS = [
    "event_id", "started_at_local", "ended_at_local", "ward", "site", "address", "lat", "lon", "device",
    "camera", "zone", "zone_title", "rule", "rule_title", "type", "category", "count", "score", "state",
    "state_by", "state_at_local", "note", "page",
]  # fmt: skip
CSV_MAX_ROWS = 50_000


@router.get("/console/alerts.csv")
def alerts_csv(request: Request, v: ViewerDep, session: DbSession, f: FiltersDep) -> Response:
    """The filtered list as CSV (UTF-8 with a BOM, so a spreadsheet reads Vietnamese right)."""
    q = alert_query(v, f).order_by(col(AlertRow.started_at).desc(), col(AlertRow.event_id))
    rows = session.exec(q.limit(CSV_MAX_ROWS)).all()
    zone = f.zone

    def local(moment: datetime | None) -> str:
        return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S") if moment else ""

    base = str(request.base_url).rstrip("/")
    out = io.StringIO()
    out.write("\ufeff")
    w = csv.writer(out)
    w.writerow(CSV_COLUMNS)
    for a in rows:
        site = a.site or {}
        w.writerow([
            a.event_id, local(a.started_at), local(a.ended_at), a.ward, site.get("name", ""),
            site.get("address") or "", site.get("lat", ""), site.get("lon", ""), a.device_id, a.camera_id,
            a.zone or "", a.zone_title or "", a.rule, a.rule_title or "", a.type, a.category,
            a.object_count, f"{a.score:.2f}", a.state, a.state_by or "", local(a.state_at), a.note or "",
            f"{base}/console/alerts/{a.event_id}",
        ])  # fmt: skip
    stamp = utc_now().astimezone(zone).strftime("%Y%m%d-%H%M")
    return Response(
        out.getvalue().encode(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="alerts-{stamp}.csv"'},
    )


def _card(request: Request, v: Viewer, session: Session, row: AlertRow, next_url: str) -> HTMLResponse:
    a = alerts.alert_outs(session, [row])[0]
    return templates.TemplateResponse(
        request,
        "console/alert_card.html",
        {
            "a": a,
            "csrf": v.csrf,
            "can_act": v.can_act,
            "is_admin": v.principal.role == "admin",
            "next_url": next_url,
        },
    )


@router.get("/console/alerts/card/{event_id}")
def alert_card(request: Request, event_id: str, v: ViewerDep, session: DbSession, f: FiltersDep) -> Response:
    """One alert as the feed shows it; 204 when it does not match the page's filters."""
    if not is_id(event_id):
        raise NotFound(N_("not found"))
    row = session.exec(alert_query(v, f).where(AlertRow.event_id == event_id)).first()
    if row is None:
        exists = session.get(AlertRow, event_id)
        if exists is None or not v.principal.may_see(exists.ward):
            raise NotFound(N_("not found"))
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


@router.post("/console/alerts/{event_id}/pin")
def alert_pin(
    event_id: str,
    v: ViewerDep,
    session: DbSession,
    reason: Annotated[str, Form()] = "",
    pin: Annotated[str, Form()] = "1",
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
) -> Response:
    """Pin as evidence (kept until unpinned) or unpin, by an admin, with a reason; audited."""
    check_csrf(v, csrf_token)
    if pin == "1":
        retention.pin(session, v.principal, event_id, reason)
    else:
        retention.unpin(session, v.principal, event_id, reason)
    session.commit()
    return RedirectResponse(safe_next(next or "/console/alerts") + f"#{event_id}", 303)

"""The console's HTML routes: login, fleet health, device page, alert feed, reports, zone editor.

Pages are rendered on the server (Jinja2) with a little vanilla JS from cloud/static. Reads are
scoped by the same rules as the JSON API (cloud.auth: a ward officer sees only their ward);
changes go through the same service functions the API uses, so a form can do nothing the API
would refuse.

CSRF: cookie sessions come from cloud.auth. Forms echo the session's CSRF token in a hidden
field (fetch calls send it in the X-CSRF-Token header, as the API wants); the login form, which
has no session yet, is protected by a double-submit cookie of its own.
"""

import hashlib
import hmac
import json
import logging
import os
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ValidationError
from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from cloud import audit, auth
from cloud.api import alerts as alerts_api
from cloud.api import config as config_api
from cloud.api import devices as devices_api
from cloud.api.devices import get_device
from cloud.auth import CSRF_HEADER, SESSION_COOKIE, DbSession, Principal
from cloud.console import svg, views
from cloud.models import (
    AlertRow,
    AuditLog,
    Camera,
    DesiredConfigRow,
    Device,
    HealthLatest,
    HealthSample,
    MediaObject,
    User,
    table,
)
from cloud.settings import Settings
from matthan_wire.codec import describe
from matthan_wire.config import CATEGORY_OF, SiteConfig
from matthan_wire.ids import QUERY_TEXT, is_id
from matthan_wire.timeutil import bounded_utc, format_ts, utc_now

log = logging.getLogger("matthan.cloud.console")

HERE = Path(__file__).resolve().parent
STATIC = HERE.parent / "static"
TEMPLATES = HERE.parent / "templates"
LOGIN_CSRF_COOKIE = "matthan_login_csrf"
FEED_PAGE = 20  # a screenful; older alerts are one click away
HEALTH_HOURS = 24

templates = Jinja2Templates(directory=str(TEMPLATES))


class ConsoleRoute(APIRoute):
    """A refusal on a page is a page (with the way back), not a JSON body; fetch calls keep JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def render_errors(request: Request) -> Response:
            try:
                return await handler(request)
            except HTTPException as exc:
                wants_page = "text/html" in request.headers.get("accept", "")
                if exc.status_code < 400 or not wants_page or request.headers.get("x-requested-with"):
                    raise
                return _error_page(request, exc.status_code, str(exc.detail))

        return render_errors


router = APIRouter(include_in_schema=False, route_class=ConsoleRoute)


# --- time as the district reads it ---------------------------------------------------------------


def display_zone() -> tzinfo:
    """The district's clock for pages and per-day counts (MATTHAN_CONSOLE_TZ; Vietnam by default)."""
    return _zone(os.environ.get("MATTHAN_CONSOLE_TZ", "Asia/Ho_Chi_Minh"))


@lru_cache(maxsize=8)
def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("event=bad_timezone tz=%s fallback=UTC", name)  # once per name, thanks to the cache
        return ZoneInfo("UTC")


def _ago(moment: datetime | None) -> str:
    if moment is None:
        return "never"
    s = (utc_now() - moment).total_seconds()
    if s < 0:
        return "just now"
    if s < 90:
        return f"{s:.0f} s ago"
    if s < 5400:
        return f"{s / 60:.0f} min ago"
    if s < 48 * 3600:
        return f"{s / 3600:.0f} h ago"
    return f"{s / 86400:.0f} d ago"


def _local(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(display_zone()).strftime("%Y-%m-%d %H:%M:%S")


def _day(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(display_zone()).strftime("%Y-%m-%d")


def _utc(moment: datetime | None) -> str:
    return "" if moment is None else moment.isoformat(timespec="seconds")


def _static_url(name: str) -> str:
    # The file's content hash in the URL: browsers cache hard and still see a new release at once.
    path = STATIC / name
    return f"/console/static/{name}?v={_digest(path, path.stat().st_mtime_ns)}"


@lru_cache(maxsize=32)
def _digest(path: Path, _mtime_ns: int) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:10]


templates.env.filters.update(ago=_ago, local=_local, day=_day, utc=_utc)
templates.env.globals.update(static=_static_url)


# --- who is looking ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Viewer:
    principal: Principal
    csrf: str

    @property
    def can_edit_config(self) -> bool:
        return self.principal.role in ("admin", "operator")

    @property
    def can_act(self) -> bool:
        # Officers handle their own ward's alerts; the operations centre handles all of them.
        return self.principal.role in ("admin", "operator", "ward_officer")


def _to_login(request: Request) -> HTTPException:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return HTTPException(303, "log in first", {"Location": f"/console/login?next={quote(target)}"})


def _session_viewer(request: Request, session: Session) -> Viewer | None:
    """The user whose signed session cookie came with the request (cloud.auth's cookie), if any."""
    settings: Settings = request.app.state.settings
    cookie = request.cookies.get(SESSION_COOKIE)
    found = auth.read_session_cookie(settings, cookie) if cookie else None
    if found is None:
        return None
    user_id, csrf = found
    user = session.get(User, user_id)
    if user is None or user.disabled:
        return None
    return Viewer(auth.Principal("user", user.name, user.role, user.ward, "cookie", user.id), csrf)


def viewer(request: Request, session: DbSession) -> Viewer:
    """The logged-in user of a page; anyone else is sent to the login page."""
    v = _session_viewer(request, session)
    if v is None:
        raise _to_login(request)
    return v


ViewerDep = Annotated[Viewer, Depends(viewer)]


def _check_csrf(v: Viewer, sent: str | None) -> None:
    if not sent or not hmac.compare_digest(sent, v.csrf):
        raise HTTPException(403, "the form has expired (CSRF check failed); reload the page and try again")


def _safe_next(target: str | None) -> str:
    """Only a path on this site: a login link must not bounce the user to someone else's page."""
    if not target or not target.startswith("/") or target.startswith("//") or urlsplit(target).netloc:
        return "/console/fleet"
    return target


def _page(request: Request, name: str, v: Viewer | None, status: int = 200, **ctx: Any) -> HTMLResponse:
    context = {
        "user": None,
        "csrf": v.csrf if v else "",
        "tz_name": getattr(display_zone(), "key", "UTC"),
        **ctx,
    }
    if v is not None:
        p = v.principal
        context["user"] = {"username": p.name, "role": p.role, "ward": p.ward}
    return templates.TemplateResponse(request, name, context, status_code=status)


def _error_page(request: Request, status: int, message: str) -> HTMLResponse:
    titles = {400: "Please check the request", 401: "Please sign in", 403: "Not allowed", 404: "Not found"}
    with Session(request.app.state.engine) as session:
        v = _session_viewer(request, session)
    if message.strip().lower() == titles.get(status, "").lower():
        message = "There is no such page, or it is not yours to see."
    return _page(
        request,
        "console/error.html",
        v,
        status=status,
        title=titles.get(status, "Something went wrong"),
        message=message,
    )


def _wards(session: Session, v: Viewer) -> list[str]:
    scope = v.principal.ward_scope
    if scope is not None:
        return [scope]
    return sorted(set(session.exec(select(Device.ward)).all()))


def _scope(v: Viewer, requested: str | None) -> str | None:
    return auth.scope_ward(v.principal, requested or None)


# --- login ---------------------------------------------------------------------------------------


@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/console/fleet", 303)


@router.get("/console")
def console_home() -> RedirectResponse:
    return RedirectResponse("/console/fleet", 303)


@router.get("/console/static/{name}")
def static(name: str) -> FileResponse:
    path = STATIC / name
    if "/" in name or name.startswith(".") or not path.is_file():
        raise HTTPException(404, "not found")
    return FileResponse(path, headers={"Cache-Control": "public, max-age=86400"})


@router.get("/console/login")
def login_form(request: Request, next: str | None = None) -> HTMLResponse:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)
    resp = _page(
        request,
        "console/login.html",
        None,
        title="Sign in",
        next=_safe_next(next),
        error=None,
        username="",
        csrf=token,
    )
    _set_login_csrf(request, resp, token)
    return resp


def _set_login_csrf(request: Request, resp: Response, token: str) -> None:
    settings: Settings = request.app.state.settings
    resp.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=3600,
        httponly=True,
        samesite="strict",
        secure=settings.secure_cookies,
        path="/console/login",
    )


@router.post("/console/login")
def login_submit(
    request: Request,
    session: DbSession,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
) -> Response:
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    target = _safe_next(next)

    def again(error: str, status: int) -> Response:
        token = secrets.token_urlsafe(24)
        resp = _page(
            request,
            "console/login.html",
            None,
            status=status,
            title="Sign in",
            next=target,
            error=error,
            username=username,
            csrf=token,
        )
        _set_login_csrf(request, resp, token)
        return resp

    if not cookie or not hmac.compare_digest(cookie, csrf_token):
        return again("The sign-in form expired; please try again.", 403)
    try:
        user = auth.sign_in(request, session, username, password, via="console")
    except HTTPException as exc:
        if exc.status_code == 429:
            return again(f"Too many failed sign-ins: {exc.detail}.", 429)
        return again("Wrong user name or password.", 401)
    resp = RedirectResponse(target, 303)
    auth.login(resp, request.app.state.settings, user)
    resp.delete_cookie(LOGIN_CSRF_COOKIE, path="/console/login")
    audit.record(session, f"user:{user.name}", "login", target="console")
    session.commit()
    log.info("event=login user=%s role=%s", user.name, user.role)
    return resp


@router.post("/console/logout")
def logout(v: ViewerDep, session: DbSession, csrf_token: Annotated[str, Form()] = "") -> Response:
    _check_csrf(v, csrf_token)
    resp = RedirectResponse("/console/login", 303)
    auth.logout(resp)
    audit.record(session, v.principal.label(), "logout", target="console")
    session.commit()
    return resp


# --- fleet ---------------------------------------------------------------------------------------


def _device_views(session: Session, ward: str | None, revoked: bool = False) -> list[views.DeviceView]:
    """The fleet as the table shows it; revoked devices only when asked (their own page)."""
    q = select(Device)
    if not revoked:
        q = q.where(col(Device.revoked_at).is_(None))
    if ward is not None:
        q = q.where(Device.ward == ward)
    devices = session.exec(q).all()
    ids = [d.id for d in devices]
    latest = {
        h.device_id: h for h in session.exec(select(HealthLatest).where(col(HealthLatest.device_id).in_(ids)))
    }
    # Plain rows, not ORM objects: a district has 1,115 cameras and building a model per camera
    # every 5 s per open page cost more than the rest of the page (bench.console).
    cams: dict[str, list[views.CameraRow]] = {}
    c_ = table(Camera).c
    q_cams = sa_select(c_.device_id, c_.id, c_.site_name, c_.lat, c_.lon).where(c_.device_id.in_(ids))
    for c in session.execute(q_cams):
        cams.setdefault(c.device_id, []).append(c)
    # `online` is the ingest's verdict: the status will, and its sweep of devices silent too long.
    out = [views.device_view(d, latest.get(d.id), cams.get(d.id, []), d.online) for d in devices]
    views.judge(out)
    return out


def _fleet_context(
    request: Request, session: Session, v: Viewer, ward: str | None, state: str | None
) -> dict[str, Any]:
    scoped = _scope(v, ward)
    # The model check compares with the whole visible fleet, not the filtered page.
    everything = _device_views(session, v.principal.ward_scope)
    shown = views.trouble_first(
        d for d in everything if (scoped is None or d.ward == scoped) and views.matches_state(d, state)
    )
    points = [
        svg.MapPoint(
            c.lat, c.lon, c.id, views.map_state(d, c), f"/console/devices/{d.id}", f"({d.id}, {d.state})"
        )
        for d in shown
        for c in d.cameras
        if c.lat is not None and c.lon is not None
    ]
    settings: Settings = request.app.state.settings
    offline_after = views.human_duration(
        timedelta(seconds=settings.health_interval_s * settings.offline_factor)
    )
    cams = [(d, c) for d in shown for c in d.cameras]
    query = urlencode({k: x for k, x in (("ward", ward), ("state", state)) if x})
    return {
        "devices": shown,
        "map_svg": svg.camera_map(points),
        "summary": {
            "online": sum(d.state == "online" for d in shown),
            "offline": sum(d.state != "online" for d in shown),
            "cameras": len(cams),
            "cameras_down": sum(d.state != "online" or c.stream_up is False for d, c in cams),
            "out_of_sync": sum(not d.config_in_sync or not d.model_in_sync for d in shown),
        },
        "filters": {"ward": ward or "", "state": state or ""},
        "offline_after": offline_after,
        "query": f"?{query}" if query else "",
        "can_edit": v.can_edit_config,
        "refresh_s": 5,
    }


@router.get("/console/fleet")
def fleet(
    request: Request, v: ViewerDep, session: DbSession, ward: str | None = None, state: str | None = None
) -> HTMLResponse:
    ctx = _fleet_context(request, session, v, ward, state)
    return _page(
        request, "console/fleet.html", v, title="Fleet health", nav="fleet", wards=_wards(session, v), **ctx
    )


@router.get("/console/fleet/part")
def fleet_part(
    request: Request, v: ViewerDep, session: DbSession, ward: str | None = None, state: str | None = None
) -> HTMLResponse:
    ctx = _fleet_context(request, session, v, ward, state)
    return templates.TemplateResponse(request, "console/fleet_part.html", ctx)


# --- one device ----------------------------------------------------------------------------------


def _device_or_404(session: Session, v: Viewer, device_id: str) -> Device:
    return get_device(session, v.principal, device_id)


def _charts(session: Session, device: Device, settings: Settings, hours: int) -> tuple[list[str], int]:
    since = utc_now() - timedelta(hours=hours)
    rows = session.exec(
        select(HealthSample)
        .where(HealthSample.device_id == device.id, col(HealthSample.at) >= since)
        .order_by(col(HealthSample.at))
    ).all()
    # A chart 560 px wide shows no more than ~600 points; thin evenly rather than truncate.
    step = -(-len(rows) // 600)
    # A silence longer than the offline threshold is drawn as a gap, not a straight line over it.
    gap = timedelta(
        seconds=(device.health_interval_s or settings.health_interval_s) * settings.offline_factor
    )

    def series(name: str, pick: Any, colour: str = "#2563eb") -> svg.Series:
        pts: list[tuple[datetime, float | None]] = []
        prev: datetime | None = None
        for r in rows:
            if prev is not None and r.at - prev > gap:
                pts.append((prev + gap / 2, None))
            pts.append((r.at, pick(r)))
            prev = r.at
        if step > 1:  # thinned after the gaps are found, and keeping the points that end a run
            pts = [
                p
                for i, p in enumerate(pts)
                if i % step == 0
                or p[1] is None
                or i + 1 == len(pts)
                or pts[i + 1][1] is None
                or pts[i - 1][1] is None
            ]
        return svg.Series(name, pts, colour)

    zone = display_zone()

    def chart(title: str, unit: str, series_: list[svg.Series]) -> str:
        return svg.line_chart(title, unit, series_, zone=zone)

    charts = [
        chart("CPU", "%", [series("cpu", lambda r: r.cpu_pct)]),
        chart("CPU temperature", "°C", [series("temp", lambda r: r.temp_c, "#dc2626")]),
        chart("Disk free", "MB", [series("disk", lambda r: r.disk_free_mb, "#059669")]),
        chart("Memory", "MB", [series("mem", lambda r: r.mem_mb, "#7c3aed")]),
        chart(
            "Backlog",
            "",
            [
                series("outbox", lambda r: float(r.outbox_depth), "#d97706"),
                series("uploads", lambda r: float(r.upload_backlog), "#0891b2"),
            ],
        ),
        chart(
            "Cameras streaming",
            "",
            [
                series("up", lambda r: float(r.cameras_up), "#15803d"),
                series("total", lambda r: float(r.cameras_total), "#9ca3af"),
            ],
        ),
    ]
    return charts, len(rows)


@router.get("/console/devices/{device_id}")
def device_page(
    request: Request,
    device_id: str,
    v: ViewerDep,
    session: DbSession,
    hours: Annotated[int, Query(ge=1, le=24 * 14)] = HEALTH_HOURS,
    confirm: Annotated[str | None, Query(pattern="^(sent|unsent)$")] = None,
    camera: Annotated[str | None, Query(max_length=63)] = None,
) -> HTMLResponse:
    device = _device_or_404(session, v, device_id)
    # Judged among the visible fleet: "model in sync" compares with what the others run.
    everything = _device_views(session, v.principal.ward_scope, revoked=device.revoked_at is not None)
    view = next(d for d in everything if d.id == device.id)
    charts, samples = _charts(session, device, request.app.state.settings, hours)
    recent = session.exec(
        select(AlertRow)
        .where(AlertRow.device_id == device.id)
        .order_by(col(AlertRow.started_at).desc())
        .limit(10)
    ).all()
    return _page(
        request,
        "console/device.html",
        v,
        title=f"Device {device.id}",
        nav="fleet",
        d=view,
        charts=charts,
        samples=samples,
        hours=hours,
        alerts=recent,
        can_edit=v.can_edit_config,
        confirm=confirm,
        confirm_camera=camera,
    )


def _optional_float(text: str, what: str) -> float | None:
    if not text.strip():
        return None
    try:
        return float(text.replace(",", "."))
    except ValueError:
        raise HTTPException(
            400, f"{what}: {text!r} is not a number (decimal degrees, e.g. 10.7764)"
        ) from None


@router.post("/console/devices/{device_id}/cameras/{camera_id}/place")
def camera_place(
    device_id: str,
    camera_id: str,
    v: ViewerDep,
    session: DbSession,
    site_name: Annotated[str, Form()] = "",
    lat: Annotated[str, Form()] = "",
    lon: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> RedirectResponse:
    """A camera's name and map position, through the API's own handler (validation, audit)."""
    _check_csrf(v, csrf_token)
    if not v.can_edit_config:
        raise HTTPException(403, "camera positions are set by the operations centre")
    try:
        body = devices_api.CameraIn(
            site_name=site_name.strip() or None,
            lat=_optional_float(lat, "latitude"),
            lon=_optional_float(lon, "longitude"),
        )
    except ValidationError as exc:
        raise HTTPException(400, describe(exc)) from None
    if (body.lat is None) != (body.lon is None):
        raise HTTPException(400, "give both latitude and longitude, or neither")
    devices_api.put_camera(device_id, camera_id, body, v.principal, session)
    return RedirectResponse(f"/console/devices/{device_id}#cam-{camera_id}", 303)


@router.post("/console/devices/{device_id}/cameras/{camera_id}/confirm-view")
def camera_confirm_view(
    request: Request,
    device_id: str,
    camera_id: str,
    v: ViewerDep,
    session: DbSession,
    csrf_token: Annotated[str, Form()] = "",
) -> RedirectResponse:
    """An operator accepts a tampered (moved) camera's new view, through the API's own handler."""
    _check_csrf(v, csrf_token)
    if not v.can_edit_config:
        raise HTTPException(403, "a camera's new view is confirmed by the operations centre")
    if not is_id(camera_id):
        raise HTTPException(404, f"no camera {camera_id!r}")
    sent = devices_api.confirm_view(device_id, camera_id, request, v.principal, session)
    done = "sent" if sent.published else "unsent"
    return RedirectResponse(
        f"/console/devices/{device_id}?confirm={done}&camera={camera_id}#cam-{camera_id}", 303
    )


# --- alerts --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertFilters:
    ward: str | None = None
    category: str | None = None
    type: str | None = None
    rule: str | None = None
    state: str | None = None
    device: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    @property
    def since_local(self) -> str:
        return self.since.astimezone(display_zone()).strftime("%Y-%m-%dT%H:%M") if self.since else ""

    @property
    def until_local(self) -> str:
        return self.until.astimezone(display_zone()).strftime("%Y-%m-%dT%H:%M") if self.until else ""


def _local_input(text: str | None, what: str) -> datetime | None:
    """A <input type=datetime-local> value, in the district's time zone."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text[:64])
    except ValueError:
        raise HTTPException(
            400, f"{what}: {text[:64]!r} is not a date and time like 2026-11-24T08:30"
        ) from None
    try:
        return bounded_utc(moment.replace(tzinfo=display_zone()) if moment.tzinfo is None else moment)
    except ValueError as exc:
        raise HTTPException(422, f"{what}: {exc}") from None


def alert_filters(
    ward: Annotated[str | None, Query(max_length=63, pattern=QUERY_TEXT)] = None,
    category: Annotated[str | None, Query(max_length=32, pattern=QUERY_TEXT)] = None,
    type: Annotated[str | None, Query(max_length=32, pattern=QUERY_TEXT)] = None,
    rule: Annotated[str | None, Query(max_length=128, pattern=QUERY_TEXT)] = None,
    state: Annotated[str | None, Query(max_length=32, pattern=QUERY_TEXT)] = None,
    device: Annotated[str | None, Query(max_length=63, pattern=QUERY_TEXT)] = None,
    since: Annotated[str | None, Query(max_length=64, pattern=QUERY_TEXT)] = None,
    until: Annotated[str | None, Query(max_length=64, pattern=QUERY_TEXT)] = None,
) -> AlertFilters:
    return AlertFilters(
        ward=ward or None,
        category=category or None,
        type=type or None,
        rule=rule or None,
        state=state or None,
        device=device or None,
        since=_local_input(since, "from"),
        until=_local_input(until, "to"),
    )


FiltersDep = Annotated[AlertFilters, Depends(alert_filters)]


def _alert_query(v: Viewer, f: AlertFilters) -> Any:
    states = list(views.OPEN_STATES) if f.state == "open" else [f.state] if f.state else None
    return alerts_api.alert_query(
        ward=_scope(v, f.ward), device=f.device, rule=f.rule, category=f.category, type=f.type,
        states=states, since=f.since, until=f.until,
    )  # fmt: skip


def _alert_views(session: Session, rows: list[AlertRow]) -> list[views.AlertView]:
    media = alerts_api._complete_media(session, [r.event_id for r in rows])
    return [views.alert_view(r, media.get(r.event_id, set())) for r in rows]


def _stats(session: Session, v: Viewer, ward: str | None, days: int) -> views.Stats:
    since = utc_now() - timedelta(days=days)
    rows = session.exec(_alert_query(v, AlertFilters(ward=ward, since=since))).all()
    return views.stats(list(rows), days, display_zone())


@router.get("/console/alerts")
def alerts_page(
    request: Request,
    v: ViewerDep,
    session: DbSession,
    f: FiltersDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = FEED_PAGE,
) -> HTMLResponse:
    rendered_at = utc_now()
    q = _alert_query(v, f).order_by(col(AlertRow.started_at).desc(), col(AlertRow.event_id))
    rows = session.exec(q.limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    more_url = None
    if more:
        keep = [(k, val) for k, val in request.query_params.multi_items() if k != "limit"]
        more_url = "/console/alerts?" + urlencode([*keep, ("limit", str(limit + FEED_PAGE))])
    scope = v.principal.ward_scope or f.ward
    # From the moment this page was read, so an alert landing before the stream connects is not lost.
    params = {"since": format_ts(rendered_at), **({"ward": scope} if scope else {})}
    stream = f"/api/v1/alerts/stream?{urlencode(params)}"
    return _page(
        request,
        "console/alerts.html",
        v,
        title="Alerts",
        nav="alerts",
        alerts=_alert_views(session, list(rows)),
        filters=f,
        wards=_wards(session, v),
        rule_types=sorted(CATEGORY_OF),
        stats=_stats(session, v, f.ward, 7),
        stream_url=stream,
        more_url=more_url,
        page_size=FEED_PAGE,
        can_act=v.can_act,
        next_url=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
    )


def _card(request: Request, v: Viewer, session: Session, row: AlertRow, next_url: str) -> HTMLResponse:
    a = _alert_views(session, [row])[0]
    return templates.TemplateResponse(
        request,
        "console/alert_card.html",
        {"a": a, "csrf": v.csrf, "can_act": v.can_act, "next_url": next_url},
    )


@router.get("/console/alerts/card/{event_id}")
def alert_card(request: Request, event_id: str, v: ViewerDep, session: DbSession, f: FiltersDep) -> Response:
    """One alert as the feed shows it; 204 when it does not match the page's filters."""
    if not is_id(event_id):
        raise HTTPException(404, "not found")
    row = session.exec(_alert_query(v, f).where(AlertRow.event_id == event_id)).first()
    if row is None:
        exists = session.get(AlertRow, event_id)
        if exists is None or not v.principal.may_see(exists.ward):
            raise HTTPException(404, "not found")
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
    _check_csrf(v, csrf_token)
    if not v.can_act:
        raise HTTPException(403, "your role may not act on alerts")
    row = apply_alert_action(request, session, v.principal, event_id, action, note.strip() or None)
    if request.headers.get("x-requested-with") == "fetch":
        return _card(request, v, session, row, _safe_next(next))
    return RedirectResponse(_safe_next(next or "/console/alerts") + f"#{event_id}", 303)


@router.get("/console/reports")
def reports(
    request: Request,
    v: ViewerDep,
    session: DbSession,
    ward: Annotated[str | None, Query(max_length=63, pattern=QUERY_TEXT)] = None,
    days: Annotated[int, Query(ge=1, le=366)] = 30,
) -> HTMLResponse:
    stats = _stats(session, v, ward or None, days)
    return _page(
        request,
        "console/reports.html",
        v,
        title="Report",
        nav="reports",
        stats=stats,
        filters={"ward": ward or ""},
        wards=_wards(session, v),
    )


@router.get("/console/audit")
def audit_page(
    request: Request, v: ViewerDep, session: DbSession, limit: Annotated[int, Query(ge=1, le=1000)] = 200
) -> HTMLResponse:
    if v.principal.role != "admin":
        raise HTTPException(403, "the audit log is for administrators")
    rows = session.exec(select(AuditLog).order_by(col(AuditLog.at).desc()).limit(limit)).all()
    total = session.exec(select(func.count()).select_from(AuditLog)).one()
    return _page(request, "console/audit.html", v, title="Audit log", nav="audit", rows=rows, total=total)


# --- zone editor ---------------------------------------------------------------------------------


def _sync(device: Device) -> dict[str, Any]:
    return {
        "desired_version": device.desired_version,
        "reported_version": device.reported_version,
        "status": device.reported_status,
        "error": device.reported_error,
        "rejected_version": _rejected_version(device),
        "reported_at": device.reported_at,
    }


def _rejected_version(device: Device) -> int | None:
    # The row keeps the running version; a rejection is always about the newest desired one.
    return device.desired_version if device.reported_status == "rejected" else None


@router.get("/console/devices/{device_id}/config-state")
def config_state(request: Request, device_id: str, v: ViewerDep, session: DbSession) -> HTMLResponse:
    device = _device_or_404(session, v, device_id)
    return templates.TemplateResponse(request, "console/sync_part.html", {"sync": _sync(device)})


@router.get("/console/devices/{device_id}/cameras/{camera_id}/zones")
def zone_editor(
    request: Request, device_id: str, camera_id: str, v: ViewerDep, session: DbSession
) -> HTMLResponse:
    device = _device_or_404(session, v, device_id)
    if not v.can_edit_config:
        raise HTTPException(403, "zones are edited by the operations centre")
    camera = _camera_config(current_site_config(session, device), device_id, camera_id)
    snap = session.exec(
        select(AlertRow.event_id, AlertRow.started_at)
        .join(MediaObject, col(MediaObject.event_id) == col(AlertRow.event_id))
        .where(
            AlertRow.device_id == device.id,
            AlertRow.camera_id == camera_id,
            MediaObject.kind == "snapshot",
            col(MediaObject.complete).is_(True),
        )
        .order_by(col(AlertRow.started_at).desc())
        .limit(1)
    ).first()
    return _page(
        request,
        "console/zones.html",
        v,
        title=f"Zones {camera_id}",
        nav="fleet",
        device_id=device.id,
        camera_id=camera_id,
        sync=_sync(device),
        # Only what the editor edits: the stream URL (with its credentials) stays on the server.
        camera_json=_script_json(
            {"id": camera_id, "zones": camera.get("zones", []), "lines": camera.get("lines", [])}
        ),
        snapshot_url=f"/api/v1/media/{snap[0]}/snapshot" if snap else None,
        snapshot_at=snap[1] if snap else None,
    )


def _camera_config(site: dict[str, Any] | None, device_id: str, camera_id: str) -> dict[str, Any]:
    for cam in (site or {}).get("cameras", []):
        if cam.get("id") == camera_id:
            return dict(cam)
    raise HTTPException(
        404,
        f"{device_id} has no desired config with a camera {camera_id} yet (it runs its local file). "
        f"Send a first one with PUT /api/v1/devices/{device_id}/config, then draw zones here.",
    )


def _script_json(data: Any) -> str:
    # Inside <script>, "</" would end the element; the escaped form is the same JSON.
    return json.dumps(data).replace("</", "<\\/")


class ZonesIn(BaseModel):
    """The camera's zones and lines as drawn; the rest of the config is the server's newest."""

    zones: list[Any]
    lines: list[Any]
    base_version: int | None = None  # the desired version the editor started from


@router.post("/console/devices/{device_id}/cameras/{camera_id}/zones")
def zone_save(
    request: Request, device_id: str, camera_id: str, body: ZonesIn, v: ViewerDep, session: DbSession
) -> JSONResponse:
    _check_csrf(v, request.headers.get(CSRF_HEADER))
    device = _device_or_404(session, v, device_id)
    if not v.can_edit_config:
        raise HTTPException(403, "zones are edited by the operations centre")
    if body.base_version is not None and device.desired_version not in (None, body.base_version):
        raise HTTPException(
            409,
            f"someone saved version {device.desired_version} while you edited version {body.base_version}; "
            "reload to see it",
        )
    site = current_site_config(session, device)
    camera = _camera_config(site, device_id, camera_id)
    assert site is not None  # _camera_config found the camera in it
    camera.update(zones=body.zones, lines=body.lines)
    site["cameras"] = [camera if c.get("id") == camera_id else c for c in site["cameras"]]
    version = save_desired_config(request, session, v.principal, device, site)
    return JSONResponse({"version": version})


def apply_alert_action(
    request: Request, session: Session, principal: Principal, event_id: str, action: str, note: str | None
) -> AlertRow:
    """The API's own action handler: the same lifecycle rules, audit entry, MQTT alert-state, SSE wake-up."""
    try:
        body = alerts_api.ActionIn.model_validate({"action": action, "note": note})
    except ValidationError as exc:
        raise HTTPException(400, describe(exc)) from None
    alerts_api.act(event_id, body, request, principal, session)
    row = session.get(AlertRow, event_id)
    assert row is not None  # act() raised 404 otherwise
    return row


def current_site_config(session: Session, device: Device) -> dict[str, Any] | None:
    """The device's newest desired config (what the editor starts from), or None if it has none."""
    if device.desired_version is None:
        return None
    row = session.get(DesiredConfigRow, (device.id, device.desired_version))
    return dict(row.body) if row is not None else None


def save_desired_config(
    request: Request, session: Session, principal: Principal, device: Device, config: dict[str, Any]
) -> int:
    """Validate with the device's own SiteConfig model, then store and publish exactly as the API does."""
    try:
        site = SiteConfig.model_validate(config)
    except ValidationError as exc:
        raise HTTPException(422, describe(exc, limit=5)) from None
    state = config_api.put_config(device.id, site, request, principal, session)
    log.info("event=zones_saved device=%s version=%s by=%s", device.id, state.desired_version, principal.name)
    return int(state.desired_version or 0)


__all__ = ["router"]

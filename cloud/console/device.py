"""One device's page: its state and cameras, health charts over time, its latest alerts, and
setting a camera's name and map position."""

from datetime import datetime, timedelta, tzinfo
from typing import Annotated, Any

from fastapi import Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError
from sqlmodel import Session, col, select

from cloud.auth import DbSession
from cloud.console import svg
from cloud.console.fleet import device_views
from cloud.console.pages import ViewerDep, check_csrf, lang_of, page, page_router, zone_of
from cloud.errors import CloudError, Forbidden, NotFound
from cloud.models import AlertRow, Device, HealthSample
from cloud.services import devices
from cloud.settings import Settings
from matthan.i18n import N_, Msg, translate
from matthan_wire.codec import describe
from matthan_wire.ids import is_id
from matthan_wire.timeutil import utc_now

router = page_router()
HEALTH_HOURS = 24


def _charts(
    session: Session, device: Device, settings: Settings, hours: int, zone: tzinfo, lang: str = "en"
) -> tuple[list[str], int]:
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
        return svg.Series(translate(lang, name), pts, colour)

    def chart(title: str, unit: str, series_: list[svg.Series]) -> str:
        return svg.line_chart(translate(lang, title), unit, series_, zone=zone)

    charts = [
        chart(N_("CPU"), "%", [series(N_("cpu"), lambda r: r.cpu_pct)]),
        chart(N_("CPU temperature"), "°C", [series(N_("temp"), lambda r: r.temp_c, "#dc2626")]),
        chart(N_("Disk free"), "MB", [series(N_("disk"), lambda r: r.disk_free_mb, "#059669")]),
        chart(N_("Memory"), "MB", [series(N_("mem"), lambda r: r.mem_mb, "#7c3aed")]),
        chart(
            N_("Backlog"),
            "",
            [
                series(N_("outbox"), lambda r: float(r.outbox_depth), "#d97706"),
                series(N_("uploads"), lambda r: float(r.upload_backlog), "#0891b2"),
            ],
        ),
        chart(
            N_("Cameras streaming"),
            "",
            [
                series(N_("up"), lambda r: float(r.cameras_up), "#15803d"),
                series(N_("total"), lambda r: float(r.cameras_total), "#9ca3af"),
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
    device = devices.get_device(session, v.principal, device_id)
    # Judged among the visible fleet: "model in sync" compares with what the others run.
    everything = device_views(session, v.principal.ward_scope, revoked=device.revoked_at is not None)
    view = next(d for d in everything if d.id == device.id)
    charts, samples = _charts(
        session, device, request.app.state.settings, hours, zone_of(request), lang_of(request)
    )
    recent = session.exec(
        select(AlertRow)
        .where(AlertRow.device_id == device.id)
        .order_by(col(AlertRow.started_at).desc())
        .limit(10)
    ).all()
    return page(
        request,
        "console/device.html",
        v,
        title=Msg("Device %(device)s", device=device.id),
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
        raise CloudError(
            Msg("%(what)s: %(text)r is not a number (decimal degrees, e.g. 10.7764)", what=what, text=text)
        ) from None


@router.post("/console/devices/{device_id}/cameras/{camera_id}/place")
def camera_place(
    device_id: str,
    camera_id: str,
    v: ViewerDep,
    session: DbSession,
    site_name: Annotated[str, Form()] = "",
    address: Annotated[str, Form()] = "",
    lat: Annotated[str, Form()] = "",
    lon: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> RedirectResponse:
    """A camera's name and map position, through the same service as the API (validation, audit)."""
    check_csrf(v, csrf_token)
    if not v.can_edit_config:
        raise Forbidden(N_("camera positions are set by the operations centre"))
    try:
        body = devices.CameraIn(
            site_name=site_name.strip() or None,
            address=address.strip() or None,
            lat=_optional_float(lat, Msg("latitude")),
            lon=_optional_float(lon, Msg("longitude")),
        )
    except ValidationError as exc:
        raise CloudError(describe(exc)) from None
    if (body.lat is None) != (body.lon is None):
        raise CloudError(N_("give both latitude and longitude, or neither"))
    devices.set_camera(session, v.principal, device_id, camera_id, body)
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
    """An operator accepts a tampered (moved) camera's new view, through the same service as the API."""
    check_csrf(v, csrf_token)
    if not v.can_edit_config:
        raise Forbidden(N_("a camera's new view is confirmed by the operations centre"))
    if not is_id(camera_id):
        raise NotFound(Msg("no camera %(camera)s", camera=camera_id[:64]))
    sent = devices.confirm_view(session, v.principal, device_id, camera_id, request.app.state.mqtt)
    done = "sent" if sent.published else "unsent"
    return RedirectResponse(
        f"/console/devices/{device_id}?confirm={done}&camera={camera_id}#cam-{camera_id}", 303
    )

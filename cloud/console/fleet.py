"""The fleet health page: every device worst first, its cameras on the map, refreshed every 5 s."""

from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from cloud.auth import DbSession
from cloud.console import views
from cloud.console.alerts import map_config
from cloud.console.pages import Viewer, ViewerDep, lang_of, page, page_router, scope, templates, ward_choices
from cloud.models import Camera, Device, HealthLatest, table
from cloud.settings import Settings
from matthan import vocabulary
from matthan.i18n import N_

router = page_router()


def device_views(session: Session, ward: str | None, revoked: bool = False) -> list[views.DeviceView]:
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
    q_cams = sa_select(c_.device_id, c_.id, c_.site_name, c_.address, c_.lat, c_.lon).where(
        c_.device_id.in_(ids)
    )
    for c in session.execute(q_cams):
        cams.setdefault(c.device_id, []).append(c)
    # `online` is the ingest's verdict: the status will, and its sweep of devices silent too long.
    out = [views.device_view(d, latest.get(d.id), cams.get(d.id, []), d.online) for d in devices]
    views.judge(out)
    return out


def _fleet_context(
    request: Request, session: Session, v: Viewer, ward: str | None, state: str | None
) -> dict[str, Any]:
    scoped = scope(v, ward)
    lang = lang_of(request)
    # The model check compares with the whole visible fleet, not the filtered page.
    everything = device_views(session, v.principal.ward_scope)
    shown = views.trouble_first(
        d for d in everything if (scoped is None or d.ward == scoped) and views.matches_state(d, state)
    )
    # The totals count the ward's whole fleet: a state filter narrows the table, never the tiles.
    in_ward = [d for d in everything if scoped is None or d.ward == scoped]
    markers = [
        {
            "lat": c.lat, "lon": c.lon, "state": views.map_state(d, c), "url": f"/console/devices/{d.id}",
            "label": f"{c.name or c.id} · {d.id} ({vocabulary.name(lang, d.state)})",
        }
        for d in shown
        for c in d.cameras
        if c.lat is not None and c.lon is not None
    ]  # fmt: skip
    settings: Settings = request.app.state.settings
    offline_after = views.human_duration(
        timedelta(seconds=settings.health_interval_s * settings.offline_factor)
    )
    cams = [(d, c) for d in in_ward for c in d.cameras]
    query = urlencode({k: x for k, x in (("ward", ward), ("state", state)) if x})
    return {
        "devices": shown,
        "map": map_config(request, markers),
        "summary": {
            "devices": len(in_ward),
            "shown": len(shown),
            "online": sum(d.state == "online" for d in in_ward),
            "offline": sum(d.state == "offline" for d in in_ward),
            # Enrolled or imported but never heard from: a visit to the pole, not an outage.
            "never": sum(d.state == "never" for d in in_ward),
            "cameras": len(cams),
            "cameras_down": sum(d.state == "offline" or c.stream_up is False for d, c in cams),
            "out_of_sync": sum(not d.config_in_sync or not d.model_in_sync for d in in_ward),
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
    return page(
        request,
        "console/fleet.html",
        v,
        title=N_("Fleet health"),
        nav="fleet",
        wards=ward_choices(session, v),
        **ctx,
    )


@router.get("/console/fleet/part")
def fleet_part(
    request: Request, v: ViewerDep, session: DbSession, ward: str | None = None, state: str | None = None
) -> HTMLResponse:
    ctx = _fleet_context(request, session, v, ward, state)
    return templates.TemplateResponse(request, "console/fleet_part.html", ctx)

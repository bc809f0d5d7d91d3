"""The zone editor: draw a camera's zones and lines over its latest snapshot, saved as the device's
next desired config through the same service as the API; and the config-sync badge it polls."""

import json
import logging
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ValidationError
from sqlmodel import col, select

from cloud.auth import CSRF_HEADER, DbSession
from cloud.console.pages import ViewerDep, check_csrf, page, page_router, templates
from cloud.errors import Conflict, Forbidden, Invalid, NotFound
from cloud.models import AlertRow, Device, MediaObject
from cloud.services import config, devices
from matthan.i18n import N_, Msg
from matthan_wire.codec import describe
from matthan_wire.config import SiteConfig

log = logging.getLogger("matthan.cloud.console")
router = page_router()


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
    device = devices.get_device(session, v.principal, device_id)
    return templates.TemplateResponse(request, "console/sync_part.html", {"sync": _sync(device)})


@router.get("/console/devices/{device_id}/cameras/{camera_id}/zones")
def zone_editor(
    request: Request, device_id: str, camera_id: str, v: ViewerDep, session: DbSession
) -> HTMLResponse:
    device = devices.get_device(session, v.principal, device_id)
    if not v.can_edit_config:
        raise Forbidden(N_("zones are edited by the operations centre"))
    camera = _camera_config(config.current_site_config(session, device), device_id, camera_id)
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
    return page(
        request,
        "console/zones.html",
        v,
        title=Msg("Zones %(camera)s", camera=camera_id),
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
    raise NotFound(
        f"{device_id} has no desired config with a camera {camera_id} yet (it runs its local file). "
        f"Send a first one with PUT /api/v1/devices/{device_id}/config, then draw zones here."
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
    check_csrf(v, request.headers.get(CSRF_HEADER))
    device = devices.get_device(session, v.principal, device_id)
    if not v.can_edit_config:
        raise Forbidden(N_("zones are edited by the operations centre"))
    if body.base_version is not None and device.desired_version not in (None, body.base_version):
        raise Conflict(
            f"someone saved version {device.desired_version} while you edited version {body.base_version}; "
            "reload to see it"
        )
    site = config.current_site_config(session, device)
    camera = _camera_config(site, device_id, camera_id)
    assert site is not None  # _camera_config found the camera in it
    camera.update(zones=body.zones, lines=body.lines)
    site["cameras"] = [camera if c.get("id") == camera_id else c for c in site["cameras"]]
    try:
        checked = SiteConfig.model_validate(site)
    except ValidationError as exc:
        raise Invalid(describe(exc, limit=5)) from None
    state = config.set_config(session, v.principal, device, checked, request.app.state.mqtt)
    log.info(
        "event=zones_saved device=%s version=%s by=%s", device.id, state.desired_version, v.principal.name
    )
    return JSONResponse({"version": state.desired_version or 0})

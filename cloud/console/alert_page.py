"""One page per alert, at a stable address (/console/alerts/{event_id}) that the ward station prints:
the evidence snapshot (click to zoom), the clip with the zone drawn over it, the site on a map, the
device's and camera's health at the time, every step of its life with who, when and the note, and
its escalation: the levels reached and who was notified on which channel, with each message's fate.
A ward officer reaches only their own ward's alerts (another ward's is "not found")."""

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from cloud.attention.escalation import history as escalation_history
from cloud.auth import DbSession
from cloud.console.alerts import alert_marker, map_config
from cloud.console.pages import ViewerDep, lang_of, page, page_router
from cloud.models import Device
from cloud.services import alerts
from cloud.services.config import current_site_config
from matthan import vocabulary
from matthan.i18n import N_

router = page_router()


def place_shape(config: dict[str, Any] | None, camera_id: str, place: str | None) -> dict[str, Any] | None:
    """The zone's polygon or the line's points (normalised to the frame) from the desired config."""
    if config is None or place is None:
        return None
    for cam in config.get("cameras", []):
        if cam.get("id") != camera_id:
            continue
        for zone in cam.get("zones", []):
            if zone.get("name") == place:
                return {"kind": "zone", "points": zone["polygon"], "title": zone.get("title") or place}
        for line in cam.get("lines", []):
            if line.get("name") == place:
                return {"kind": "line", "points": line["points"], "title": line.get("title") or place}
    return None


def svg_points(points: list[list[float]]) -> str:
    return " ".join(f"{x:.4f},{y:.4f}" for x, y in points)


@router.get("/console/alerts/{event_id}")
def alert_page(request: Request, event_id: str, v: ViewerDep, session: DbSession) -> HTMLResponse:
    detail = alerts.alert_detail(session, v.principal, event_id)
    row = alerts.get_alert(session, v.principal, event_id)
    device = session.get(Device, row.device_id)
    shape = place_shape(current_site_config(session, device) if device else None, row.camera_id, row.zone)
    marker = alert_marker(detail)
    escalation, sent = escalation_history(session, event_id)
    rule_text = detail.rule_title or vocabulary.name(lang_of(request), detail.type, vocabulary.RULE_TYPES)
    return page(
        request,
        "console/alert.html",
        v,
        title=f"{rule_text} · {detail.site_name or detail.device_id}",
        nav="alerts",
        a=detail,
        rule_text=rule_text,
        state_words={**vocabulary.ALERT_STATES, "received": N_("received by the cloud")},  # |tr in the page
        steps=alerts.history(session, row),
        escalation=escalation,  # levels reached, and who was notified on which channel
        sent=sent,
        health=alerts.health_at(session, row),
        shape=shape,
        shape_points=svg_points(shape["points"]) if shape else "",
        map=map_config(request, [marker]) if marker else None,
        can_act=v.can_act,
        is_admin=v.principal.role == "admin",
        next_url=f"/console/alerts/{event_id}",
    )

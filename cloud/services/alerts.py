"""Alerts for the console and stations: the alert read model, list with filters and paging, detail
with snapshot and clip links, lifecycle actions (published to the ward's alert-state topic), what
changed since a moment (the live stream), and false-alarm counts per rule and camera (quality)."""

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import case, func, or_
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from cloud import audit, lifecycle
from cloud.auth import Principal, get_in_ward, scope_ward
from cloud.errors import Conflict, Invalid
from cloud.models import AlertRow, AuditLog, HealthLatest, HealthSample, MediaObject
from cloud.mqtt import MqttLink
from cloud.notify import Notifier
from matthan.i18n import Msg
from matthan_wire.ids import QUERY_TEXT, Id
from matthan_wire.timeutil import BoundedDateTime, utc_now


class MediaLink(BaseModel):
    kind: str
    url: str
    size: int
    sha256: str
    complete: bool
    offset: int


class AlertOut(BaseModel):
    event_id: str
    device_id: str
    camera_id: str
    ward: str
    zone: str | None
    rule: str
    type: str
    category: str
    labels: list[str]
    object_count: int
    score: float
    bbox: list[float] | None
    started_at: datetime
    ended_at: datetime | None
    seq: int
    state: str
    state_by: str | None
    state_at: datetime | None
    note: str | None
    received_at: datetime
    delivered_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    updated_at: datetime
    site: dict[str, Any] | None = None
    site_name: str | None = None
    zone_title: str | None = None
    rule_title: str | None = None
    snapshot_url: str | None = None
    clip_url: str | None = None


class AlertDetail(AlertOut):
    clip: dict[str, Any] | None
    media: list[MediaLink]


class AlertPage(BaseModel):
    items: list[AlertOut]
    total: int
    limit: int
    offset: int


def _media_url(event_id: str, kind: str) -> str:
    return f"/api/v1/media/{event_id}/{kind}"


def alert_out(a: AlertRow, complete: set[str] | None = None) -> AlertOut:
    done = complete or set()
    return AlertOut(
        **a.model_dump(exclude={"snapshot_topic", "clip"}),
        snapshot_url=_media_url(a.event_id, "snapshot") if "snapshot" in done else None,
        clip_url=_media_url(a.event_id, "clip") if "clip" in done else None,
    )


def complete_media(session: Session, event_ids: list[str]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    if not event_ids:
        return found
    q = select(MediaObject.event_id, MediaObject.kind).where(
        col(MediaObject.event_id).in_(event_ids), MediaObject.complete
    )
    for event_id, kind in session.exec(q).all():
        found.setdefault(event_id, set()).add(kind)
    return found


def alert_query(
    *,
    ward: str | None,
    device: str | None = None,
    camera: str | None = None,
    rule: str | None = None,
    category: str | None = None,
    type: str | None = None,
    states: Sequence[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    site: str | None = None,
    text: str | None = None,
) -> Any:
    """Alerts matching the filters; `ward` must already be scoped to the principal (scope_ward).
    `text` is found in the site, the rule and zone (ids and display names), the device, camera or
    event id.

    The one place alert filters become SQL, for the API and the console alike."""
    q = select(AlertRow)
    for column, value in (
        (AlertRow.ward, ward),
        (AlertRow.device_id, device),
        (AlertRow.camera_id, camera),
        (AlertRow.rule, rule),
        (AlertRow.category, category),
        (AlertRow.type, type),
        (AlertRow.site_name, site),
    ):
        if value is not None:
            q = q.where(column == value)
    if text:
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        searched = (
            AlertRow.site_name, AlertRow.rule, AlertRow.rule_title, AlertRow.zone, AlertRow.zone_title,
            AlertRow.device_id, AlertRow.camera_id, AlertRow.event_id, AlertRow.type,
        )  # fmt: skip
        q = q.where(or_(*(col(c).ilike(pattern, escape="\\") for c in searched)))
    if states:
        q = q.where(col(AlertRow.state).in_(states))
    if since is not None:
        q = q.where(col(AlertRow.started_at) >= since)
    if until is not None:
        q = q.where(col(AlertRow.started_at) < until)
    return q


class AlertQuery(BaseModel):
    """The filters of the alert list (the API's query parameters)."""

    ward: Id | None = None
    device: Id | None = None
    camera: Id | None = None
    rule: str | None = Field(None, max_length=128, pattern=QUERY_TEXT)
    category: Literal["security_order", "urban_order"] | None = None
    state: list[Literal["new", "delivered", "acknowledged", "resolved", "false_alarm"]] | None = None
    # Bounded like the wire's times (2000..2100 UTC): 9999-12-31T23:59:59-05:00 has no UTC value.
    since: BoundedDateTime | None = Field(None, description="started at or after (ISO-8601 with offset)")
    until: BoundedDateTime | None = Field(None, description="started before")


def list_alerts(
    session: Session, principal: Principal, f: AlertQuery, limit: int = 50, offset: int = 0
) -> AlertPage:
    """Newest first, paged; `ward` is checked against the principal's scope."""
    ward = scope_ward(principal, f.ward)
    for name, moment in (("since", f.since), ("until", f.until)):
        if moment is not None and moment.tzinfo is None:
            raise Invalid(Msg("%(name)s: give a UTC offset, e.g. 2026-11-24T08:00:00Z", name=name))
    q = alert_query(
        ward=ward, device=f.device, camera=f.camera, rule=f.rule, category=f.category, states=f.state,
        since=f.since, until=f.until,
    )  # fmt: skip
    total = session.exec(select(func.count()).select_from(q.subquery())).one()
    rows = session.exec(
        q.order_by(col(AlertRow.started_at).desc(), col(AlertRow.event_id)).offset(offset).limit(limit)
    ).all()
    return AlertPage(items=alert_outs(session, list(rows)), total=int(total), limit=limit, offset=offset)


def alert_outs(session: Session, rows: list[AlertRow]) -> list[AlertOut]:
    media = complete_media(session, [a.event_id for a in rows])
    return [alert_out(a, media.get(a.event_id)) for a in rows]


class QualityRow(BaseModel):
    device_id: str
    camera_id: str
    rule: str
    alerts: int
    false_alarms: int
    false_alarm_rate: float


def quality(session: Session, principal: Principal, ward: str | None, days: float) -> list[QualityRow]:
    ward = scope_ward(principal, ward)
    fa = func.sum(case((col(AlertRow.state) == "false_alarm", 1), else_=0))
    q = (
        sa_select(col(AlertRow.device_id), col(AlertRow.camera_id), col(AlertRow.rule), func.count(), fa)
        .where(col(AlertRow.started_at) >= utc_now() - timedelta(days=days))
        .group_by(AlertRow.device_id, AlertRow.camera_id, AlertRow.rule)
    )
    if ward is not None:
        q = q.where(col(AlertRow.ward) == ward)
    out = [
        QualityRow(
            device_id=d,
            camera_id=c,
            rule=r,
            alerts=int(n),
            false_alarms=int(f or 0),
            false_alarm_rate=round(int(f or 0) / int(n), 4),
        )
        for d, c, r, n, f in session.execute(q).all()
    ]
    return sorted(out, key=lambda x: (-x.false_alarms, x.device_id, x.camera_id, x.rule))


def changed_since(engine: Any, ward: str | None, after: datetime) -> list[tuple[AlertRow, set[str]]]:
    with Session(engine) as s:
        q = select(AlertRow).where(col(AlertRow.updated_at) > after)
        if ward is not None:
            q = q.where(AlertRow.ward == ward)
        rows = list(s.exec(q.order_by(col(AlertRow.updated_at)).limit(500)).all())
        media = complete_media(s, [a.event_id for a in rows])
        return [(a, media.get(a.event_id, set())) for a in rows]


def alert_detail(session: Session, principal: Principal, event_id: str) -> AlertDetail:
    a = get_alert(session, principal, event_id)
    media = session.exec(select(MediaObject).where(MediaObject.event_id == event_id)).all()
    done = {m.kind for m in media if m.complete}
    return AlertDetail(
        **alert_out(a, done).model_dump(),
        clip=a.clip,
        media=[
            MediaLink(
                kind=m.kind,
                url=_media_url(event_id, m.kind),
                size=m.size,
                sha256=m.sha256,
                complete=m.complete,
                offset=m.offset,
            )
            for m in media
        ],
    )


class ActionIn(BaseModel):
    action: Literal["deliver", "acknowledge", "resolve", "false_alarm"]
    note: str | None = Field(default=None, max_length=2000)


def act(
    session: Session,
    principal: Principal,
    event_id: str,
    body: ActionIn,
    link: MqttLink | None,
    notifier: Notifier | None,
) -> AlertRow:
    """Apply a lifecycle action (the same rules as the MQTT alert-action path): audited, committed,
    published on the ward's alert-state topic, live pages woken. Doing it again changes nothing."""
    a = get_alert(session, principal, event_id)
    try:
        changed = lifecycle.apply(a, body.action, principal.name, utc_now(), body.note)
    except lifecycle.TransitionError as exc:
        raise Conflict(exc.args[0]) from None
    if changed:
        session.add(a)
        audit.record(session, principal.label(), f"alert.{body.action}", event_id, note=body.note)
        session.commit()
        lifecycle.publish_state(link, a)
        if notifier is not None:
            notifier.notify()
    return a


def get_alert(session: Session, principal: Principal, event_id: str) -> AlertRow:
    """The alert row, if `principal` may see it (another ward's alert is 'not found')."""
    return get_in_ward(session, principal, AlertRow, event_id, Msg("no alert %(event)s", event=event_id))


class Step(BaseModel):
    """One step of an alert's life, as its page lists it."""

    at: datetime
    what: str  # received | delivered | acknowledged | resolved | false_alarm
    by: str | None = None
    note: str | None = None
    via: str | None = None


_STEP_OF = {f"alert.{action}": state for action, state in lifecycle.ACTIONS.items()}


def history(session: Session, a: AlertRow) -> list[Step]:
    """Received by the cloud, then every lifecycle action from the audit log (API, console, MQTT)."""
    steps = [Step(at=a.received_at, what="received", by=f"{a.device_id}/{a.camera_id}")]
    q = select(AuditLog).where(AuditLog.target == a.event_id, col(AuditLog.action).in_(list(_STEP_OF)))
    for row in session.exec(q.order_by(col(AuditLog.at), col(AuditLog.id))).all():
        detail = row.detail or {}
        note = detail.get("note")
        steps.append(
            Step(
                at=row.at, what=_STEP_OF[row.action], by=row.who,
                note=note if isinstance(note, str) else None, via=str(detail.get("via") or "console / API"),
            )
        )  # fmt: skip
    return steps


class HealthThen(BaseModel):
    """The device's last figures at or before the alert's start (none older than an hour), and the
    camera's state in the device's latest report (per-camera figures are not kept as history)."""

    sample_at: datetime | None = None
    cpu_pct: float | None = None
    temp_c: float | None = None
    disk_free_mb: float | None = None
    outbox_depth: int | None = None
    cameras_up: int | None = None
    cameras_total: int | None = None
    camera_at: datetime | None = None
    camera: dict[str, Any] | None = None


def health_at(session: Session, a: AlertRow) -> HealthThen:
    q = (
        select(HealthSample)
        .where(HealthSample.device_id == a.device_id, col(HealthSample.at) <= a.started_at)
        .order_by(col(HealthSample.at).desc())
        .limit(1)
    )
    sample = session.exec(q).first()
    out = HealthThen()
    if sample is not None and a.started_at - sample.at < timedelta(hours=1):
        out = HealthThen(
            sample_at=sample.at,
            cpu_pct=sample.cpu_pct,
            temp_c=sample.temp_c,
            disk_free_mb=sample.disk_free_mb,
            outbox_depth=sample.outbox_depth,
            cameras_up=sample.cameras_up,
            cameras_total=sample.cameras_total,
        )
    latest = session.get(HealthLatest, a.device_id)
    if latest is not None:
        for cam in latest.body.get("cameras", []):
            if isinstance(cam, dict) and cam.get("id") == a.camera_id:
                out.camera, out.camera_at = cam, latest.at
    return out

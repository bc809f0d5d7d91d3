"""Alerts for the console and stations: list with filters and paging, detail with snapshot and
clip links, lifecycle actions (published to the ward's alert-state topic), a live SSE stream, and
false-alarm counts per rule and per camera (alert quality)."""

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import case, func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from cloud import audit, lifecycle
from cloud.auth import AnyUser, DbSession, Principal, optional_principal, require_ward, scope_ward
from cloud.ingest import publish_state
from cloud.models import AlertRow, MediaObject
from matthan_wire.ids import INT32_MAX, QUERY_TEXT, Id, is_id
from matthan_wire.timeutil import BoundedDateTime, utc_now

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])


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


def _complete_media(session: Session, event_ids: list[str]) -> dict[str, set[str]]:
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
) -> Any:
    """Alerts matching the filters; `ward` must already be scoped to the principal (scope_ward).

    The one place alert filters become SQL, for the API and the console alike."""
    q = select(AlertRow)
    for column, value in (
        (AlertRow.ward, ward),
        (AlertRow.device_id, device),
        (AlertRow.camera_id, camera),
        (AlertRow.rule, rule),
        (AlertRow.category, category),
        (AlertRow.type, type),
    ):
        if value is not None:
            q = q.where(column == value)
    if states:
        q = q.where(col(AlertRow.state).in_(states))
    if since is not None:
        q = q.where(col(AlertRow.started_at) >= since)
    if until is not None:
        q = q.where(col(AlertRow.started_at) < until)
    return q


@router.get("", summary="Alerts, newest first, filtered by ward, rule, category, state, time; paged")
def list_alerts(
    principal: AnyUser,
    session: DbSession,
    ward: Id | None = None,
    device: Id | None = None,
    camera: Id | None = None,
    rule: str | None = Query(None, max_length=128, pattern=QUERY_TEXT),
    category: Literal["security_order", "urban_order"] | None = None,
    state: list[Literal["new", "delivered", "acknowledged", "resolved", "false_alarm"]] | None = Query(None),
    # Bounded like the wire's times (2000..2100 UTC): 9999-12-31T23:59:59-05:00 has no UTC value.
    since: BoundedDateTime | None = Query(None, description="started at or after (ISO-8601 with offset)"),
    until: BoundedDateTime | None = Query(None, description="started before"),
    limit: int = Query(50, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=INT32_MAX),
) -> AlertPage:
    ward = scope_ward(principal, ward)
    q = alert_query(
        ward=ward, device=device, camera=camera, rule=rule, category=category, states=state,
        since=since, until=until,
    )  # fmt: skip
    total = session.exec(select(func.count()).select_from(q.subquery())).one()
    rows = session.exec(
        q.order_by(col(AlertRow.started_at).desc(), col(AlertRow.event_id)).offset(offset).limit(limit)
    ).all()
    media = _complete_media(session, [a.event_id for a in rows])
    return AlertPage(
        items=[alert_out(a, media.get(a.event_id)) for a in rows],
        total=int(total),
        limit=limit,
        offset=offset,
    )


class QualityRow(BaseModel):
    device_id: str
    camera_id: str
    rule: str
    alerts: int
    false_alarms: int
    false_alarm_rate: float


@router.get("/quality", summary="False alarms per rule and camera (alert quality)")
def quality(
    principal: AnyUser, session: DbSession, ward: Id | None = None, days: float = Query(30, gt=0, le=3650)
) -> list[QualityRow]:
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


@router.get(
    "/stream",
    summary="Server-sent events: every new alert and every state change (event: alert)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream(
    request: Request,
    ward: Id | None = None,
    since: BoundedDateTime | None = Query(None, description="also send alerts changed after this (UTC)"),
) -> StreamingResponse:
    # Resolved here (not as a dependency) so the database session closes before the stream starts.
    with Session(request.app.state.engine) as session:
        principal = optional_principal(request, session)
    if principal is None or not principal.is_user:
        raise HTTPException(401, "log in to follow alerts")
    ward = scope_ward(principal, ward)
    cursor = since or utc_now()
    return StreamingResponse(
        _events(request, principal, ward, cursor),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _events(
    request: Request, principal: Principal, ward: str | None, cursor: datetime
) -> AsyncIterator[str]:
    """Follow alert.updated_at. Woken by the in-process ingest; polls every 2 s for other writers
    (a separate `matthan cloud ingest`). A 2 s overlap catches rows committed out of time order,
    and what was already sent at the same version is not sent twice."""
    sent: dict[str, datetime] = {}
    notifier = request.app.state.notifier
    yield "retry: 2000\n\n"
    while not await request.is_disconnected():
        rows = await asyncio.to_thread(
            _changed, request.app.state.engine, ward, cursor - timedelta(seconds=2)
        )
        for a, kinds in rows:
            if sent.get(a.event_id) == a.updated_at:
                continue
            sent[a.event_id] = a.updated_at
            cursor = max(cursor, a.updated_at)
            data = alert_out(a, kinds).model_dump_json()
            yield f"id: {a.updated_at.isoformat()}\nevent: alert\ndata: {data}\n\n"
        if len(sent) > 5000:
            horizon = cursor - timedelta(seconds=5)
            sent = {k: v for k, v in sent.items() if v >= horizon}
        if not await notifier.wait(2.0):
            yield ": keep-alive\n\n"


def _changed(engine: Any, ward: str | None, after: datetime) -> list[tuple[AlertRow, set[str]]]:
    with Session(engine) as s:
        q = select(AlertRow).where(col(AlertRow.updated_at) > after)
        if ward is not None:
            q = q.where(AlertRow.ward == ward)
        rows = list(s.exec(q.order_by(col(AlertRow.updated_at)).limit(500)).all())
        media = _complete_media(s, [a.event_id for a in rows])
        return [(a, media.get(a.event_id, set())) for a in rows]


@router.get("/{event_id}", summary="One alert, with its snapshot and clip links")
def alert_detail(event_id: str, principal: AnyUser, session: DbSession) -> AlertDetail:
    a = _get(session, principal, event_id)
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


@router.post(
    "/{event_id}/actions",
    summary="deliver / acknowledge / resolve / false_alarm; published on the ward's alert-state topic",
    responses={409: {"description": "the alert's state does not allow this action"}},
)
def act(event_id: str, body: ActionIn, request: Request, principal: AnyUser, session: DbSession) -> AlertOut:
    a = _get(session, principal, event_id)
    try:
        changed = lifecycle.apply(a, body.action, principal.name, utc_now(), body.note)
    except lifecycle.TransitionError as exc:
        raise HTTPException(409, str(exc)) from None
    if changed:
        session.add(a)
        audit.record(session, principal.label(), f"alert.{body.action}", event_id, note=body.note)
        session.commit()
        publish_state(request.app.state.mqtt, a)
        request.app.state.notifier.notify()
    media = _complete_media(session, [event_id])
    return alert_out(a, media.get(event_id))


def _get(session: Session, principal: Principal, event_id: str) -> AlertRow:
    # Not an id is not an alert; and PostgreSQL refuses a NUL in a key with an error, not a miss.
    a = session.get(AlertRow, event_id) if is_id(event_id) else None
    if a is None:
        raise HTTPException(404, f"no alert {event_id}")
    require_ward(principal, a.ward)
    return a

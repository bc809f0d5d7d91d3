"""Alerts over HTTP: list with filters and paging, detail, lifecycle actions, a live SSE stream and
false-alarm counts (alert quality). The rules and the read model are in cloud/services/alerts.py."""

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from sqlmodel import Session

from cloud.api.deps import LiveUpdates, Mqtt
from cloud.auth import AnyUser, DbSession, Principal, optional_principal, scope_ward
from cloud.services import alerts
from cloud.services.alerts import ActionIn, AlertDetail, AlertOut, AlertPage, AlertQuery, QualityRow
from matthan.i18n import Msg
from matthan_wire.ids import INT32_MAX, Id
from matthan_wire.timeutil import BoundedDateTime, utc_now

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])


@router.get("", summary="Alerts, newest first, filtered by ward, rule, category, state, time; paged")
def list_alerts(
    principal: AnyUser,
    session: DbSession,
    filters: Annotated[AlertQuery, Query()],
    limit: int = Query(50, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=INT32_MAX),
) -> AlertPage:
    return alerts.list_alerts(session, principal, filters, limit, offset)


@router.get("/quality", summary="False alarms per rule and camera (alert quality)")
def quality(
    principal: AnyUser, session: DbSession, ward: Id | None = None, days: float = Query(30, gt=0, le=3650)
) -> list[QualityRow]:
    return alerts.quality(session, principal, ward, days)


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
        raise HTTPException(401, Msg("log in to follow alerts"))
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
            alerts.changed_since, request.app.state.engine, ward, cursor - timedelta(seconds=2)
        )
        for a, kinds in rows:
            if sent.get(a.event_id) == a.updated_at:
                continue
            sent[a.event_id] = a.updated_at
            cursor = max(cursor, a.updated_at)
            data = alerts.alert_out(a, kinds).model_dump_json()
            yield f"id: {a.updated_at.isoformat()}\nevent: alert\ndata: {data}\n\n"
        if len(sent) > 5000:
            horizon = cursor - timedelta(seconds=5)
            sent = {k: v for k, v in sent.items() if v >= horizon}
        if not await notifier.wait(2.0):
            yield ": keep-alive\n\n"


@router.get("/{event_id}", summary="One alert, with its snapshot and clip links")
def alert_detail(event_id: str, principal: AnyUser, session: DbSession) -> AlertDetail:
    return alerts.alert_detail(session, principal, event_id)


@router.post(
    "/{event_id}/actions",
    summary="deliver / acknowledge / resolve / false_alarm; published on the ward's alert-state topic",
    responses={409: {"description": "the alert's state does not allow this action"}},
)
def act(
    event_id: str, body: ActionIn, principal: AnyUser, session: DbSession, link: Mqtt, notifier: LiveUpdates
) -> AlertOut:
    row = alerts.act(session, principal, event_id, body, link, notifier)
    return alerts.alert_outs(session, [row])[0]

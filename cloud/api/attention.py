"""Escalation policies, notification endpoints and the notification queue over HTTP (admins)."""

from typing import Literal

from fastapi import APIRouter, Query

from cloud.api.deps import EndpointSealer
from cloud.attention import admin
from cloud.attention.admin import EndpointIn, EndpointOut, NotificationOut, PolicyOut
from cloud.attention.escalation import PolicyIn
from cloud.auth import Admin, DbSession
from matthan_wire.timeutil import utc_now

router = APIRouter(prefix="/api/v1", tags=["escalation"])


@router.get("/notify/endpoints", summary="Notification endpoints (secrets hidden), with queue counts")
def list_endpoints(principal: Admin, session: DbSession) -> list[EndpointOut]:
    return admin.list_endpoints(session)


@router.post("/notify/endpoints", status_code=201, summary="Add a webhook, e-mail or gateway endpoint")
def add_endpoint(
    body: EndpointIn, principal: Admin, session: DbSession, sealer: EndpointSealer
) -> EndpointOut:
    e = admin.save_endpoint(session, principal.label(), body, utc_now(), sealer=sealer)
    session.commit()
    return admin.endpoint_out(e)


@router.put("/notify/endpoints/{endpoint_id}", summary="Change an endpoint ('***' keeps a stored secret)")
def put_endpoint(
    endpoint_id: int, body: EndpointIn, principal: Admin, session: DbSession, sealer: EndpointSealer
) -> EndpointOut:
    e = admin.save_endpoint(session, principal.label(), body, utc_now(), endpoint_id, sealer=sealer)
    session.commit()
    return admin.endpoint_out(e)


@router.get("/escalation/policies", summary="Escalation policies per ward ('*' = every ward) and category")
def list_policies(principal: Admin, session: DbSession) -> list[PolicyOut]:
    return admin.list_policies(session)


@router.put("/escalation/policies", summary="Set the policy of a ward and category (replaces its levels)")
def put_policy(body: PolicyIn, principal: Admin, session: DbSession) -> PolicyOut:
    out = admin.set_policy(session, principal.label(), body, utc_now())
    session.commit()
    return out


@router.delete("/escalation/policies/{policy_id}", status_code=204, summary="Remove a policy")
def delete_policy(policy_id: int, principal: Admin, session: DbSession) -> None:
    admin.delete_policy(session, principal.label(), policy_id)
    session.commit()


@router.get("/notify/notifications", summary="The notification queue, newest first")
def list_notifications(
    principal: Admin,
    session: DbSession,
    status: Literal["pending", "sent", "failed"] | None = None,
    limit: int = Query(200, ge=1, le=2000),
) -> list[NotificationOut]:
    return admin.notifications(session, status, limit)


@router.post(
    "/notify/notifications/{notification_id}/retry", status_code=204, summary="Send a failed one again"
)
def retry(notification_id: int, principal: Admin, session: DbSession) -> None:
    admin.retry(session, principal.label(), notification_id, utc_now())
    session.commit()

"""Escalation policies and notification endpoints, as administrators edit them (the API and the
console's editor page both call these): validated, audited, committed by the caller."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import func
from sqlmodel import Session, col, select

from cloud import audit
from cloud.attention import channels, queue
from cloud.attention.escalation import Level, PolicyIn, save_policy
from cloud.attention.sealing import Sealer, SealError, map_secrets
from cloud.errors import Conflict, Invalid, NotFound
from cloud.models import EscalationPolicy, Notification, NotifyEndpoint
from matthan.i18n import Msg
from matthan_wire.codec import describe


class EndpointIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    kind: Literal["webhook", "email", "gateway"]
    config: dict[str, Any]
    enabled: bool = True


class EndpointOut(BaseModel):
    id: int
    name: str
    kind: str
    config: dict[str, Any]  # secrets shown as "***"
    enabled: bool
    updated_at: datetime
    pending: int = 0
    failed: int = 0


class PolicyOut(BaseModel):
    id: int
    ward: str
    category: str
    levels: list[Level]
    updated_by: str | None
    updated_at: datetime


class NotificationOut(BaseModel):
    id: int
    endpoint_id: int
    endpoint: str | None
    event_id: str
    reason: str
    kind: str
    status: str
    attempts: int
    next_at: datetime
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


def _redact(config: dict[str, Any]) -> dict[str, Any]:
    return map_secrets(config, lambda _: "***")


def endpoint_out(e: NotifyEndpoint, counts: dict[tuple[int, str], int] | None = None) -> EndpointOut:
    assert e.id is not None
    counts = counts or {}
    return EndpointOut(
        id=e.id,
        name=e.name,
        kind=e.kind,
        config=_redact(e.config),
        enabled=e.enabled,
        updated_at=e.updated_at,
        pending=counts.get((e.id, "pending"), 0),
        failed=counts.get((e.id, "failed"), 0),
    )


def list_endpoints(session: Session) -> list[EndpointOut]:
    counts = {
        (int(e), str(st)): int(n)
        for e, st, n in session.exec(
            select(Notification.endpoint_id, Notification.status, func.count()).group_by(
                col(Notification.endpoint_id), col(Notification.status)
            )
        ).all()
    }
    rows = session.exec(select(NotifyEndpoint).order_by(NotifyEndpoint.name)).all()
    return [endpoint_out(e, counts) for e in rows]


def save_endpoint(
    session: Session,
    who: str,
    body: EndpointIn,
    now: datetime,
    endpoint_id: int | None = None,
    *,
    sealer: Sealer,
) -> NotifyEndpoint:
    """Validated as typed, stored with its secrets sealed (when the cloud has an endpoint key)."""
    e = NotifyEndpoint(name=body.name, kind=body.kind, created_at=now)
    if endpoint_id is not None:
        found = session.get(NotifyEndpoint, endpoint_id)
        if found is None:
            raise NotFound(Msg("no endpoint %(id)s", id=endpoint_id))
        e = found
    config = dict(body.config)
    # "***" (what the page showed) keeps the stored secret: editing a URL must not need the secret.
    for k, v in list(config.items()):
        if v == "***" and k in e.config:
            config[k] = e.config[k]
    if isinstance(config.get("headers"), dict) and isinstance(e.config.get("headers"), dict):
        old = e.config["headers"]
        config["headers"] = {h: (old.get(h, x) if x == "***" else x) for h, x in config["headers"].items()}
    try:
        channels.parse_config(body.kind, sealer.open(config))
    except ValidationError as exc:
        raise Invalid(Msg("%(kind)s endpoint: %(problem)s", kind=body.kind, problem=describe(exc))) from None
    except SealError as exc:
        raise Invalid(exc.args[0]) from None
    clash = session.exec(select(NotifyEndpoint).where(NotifyEndpoint.name == body.name)).first()
    if clash is not None and clash.id != e.id:
        raise Conflict(Msg("an endpoint named %(name)r exists already", name=body.name))
    e.name, e.kind, e.enabled, e.updated_at = body.name, body.kind, body.enabled, now
    e.config = sealer.seal(config)
    session.add(e)
    session.flush()
    audit.record(
        session,
        who,
        "notify.endpoint.set",
        f"endpoint/{e.id}",
        name=e.name,
        kind=e.kind,
        config=_redact(config),
    )
    return e


def list_policies(session: Session) -> list[PolicyOut]:
    rows = session.exec(
        select(EscalationPolicy).order_by(EscalationPolicy.ward, EscalationPolicy.category)
    ).all()
    return [
        PolicyOut(
            id=p.id or 0,
            ward=p.ward,
            category=p.category,
            levels=[Level.model_validate(x) for x in p.levels],
            updated_by=p.updated_by,
            updated_at=p.updated_at,
        )  # fmt: skip
        for p in rows
    ]


def set_policy(session: Session, who: str, body: PolicyIn, now: datetime) -> PolicyOut:
    try:
        p = save_policy(session, who, body, now)
    except ValueError as exc:
        raise Invalid(exc.args[0]) from None
    session.flush()
    return next(x for x in list_policies(session) if x.id == p.id)


def delete_policy(session: Session, who: str, policy_id: int) -> None:
    p = session.get(EscalationPolicy, policy_id)
    if p is None:
        raise NotFound(Msg("no policy %(id)s", id=policy_id))
    session.delete(p)
    audit.record(session, who, "escalation.policy.delete", f"{p.ward}/{p.category}")


def notifications(session: Session, status: str | None, limit: int) -> list[NotificationOut]:
    q = select(Notification, NotifyEndpoint.name).join(
        NotifyEndpoint, col(NotifyEndpoint.id) == col(Notification.endpoint_id), isouter=True
    )
    if status:
        q = q.where(Notification.status == status)
    rows = session.exec(q.order_by(col(Notification.id).desc()).limit(limit)).all()
    return [
        NotificationOut(**n.model_dump(exclude={"message", "claimed_by", "claimed_until"}), endpoint=name)
        for n, name in rows
    ]


def retry(session: Session, who: str, notification_id: int, now: datetime) -> None:
    row = queue.retry_now(session, notification_id, now)
    if row is None:
        raise NotFound(Msg("no notification %(id)s", id=notification_id))
    audit.record(session, who, "notify.retry", row.event_id, notification=notification_id)

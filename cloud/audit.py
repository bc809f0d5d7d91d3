"""The audit log: who did what to which thing, written in the same transaction as the change."""

from typing import Any

from sqlmodel import Session

from cloud.models import AuditLog
from matthan_wire.timeutil import utc_now


def record(session: Session, who: str, action: str, target: str | None = None, **detail: Any) -> None:
    session.add(AuditLog(at=utc_now(), who=who, action=action, target=target, detail=detail or None))

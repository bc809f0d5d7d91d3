"""The audit log: who did what to which thing, written in the same transaction as the change and
chained to the entry before it (cloud/custody.py)."""

from typing import Any

from sqlmodel import Session

from cloud import custody
from matthan_wire.timeutil import utc_now


def record(session: Session, who: str, action: str, target: str | None = None, **detail: Any) -> None:
    custody.append(session, utc_now(), who, action, target, detail or None)

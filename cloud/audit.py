"""The audit log: who did what to which thing, written in the same transaction as the change and
chained to the entry before it (cloud/custody.py)."""

from typing import Any

from sqlmodel import Session

from cloud import custody
from matthan_wire.timeutil import utc_now


def record(session: Session, who: str, action: str, target: str | None = None, **detail: Any) -> None:
    custody.append(session, utc_now(), who, action, target, detail or None)


def login_failed(session: Session, tried: str, client: str | None, via: str) -> str:
    """A refused sign-in, with the name tried and where it came from (a guessing attack shows as
    many names from one address, or one name from many). Returns the cleaned name for the log."""
    name = "".join(c if c.isprintable() else "?" for c in tried.strip()[:64])
    record(session, f"user:{name}", "login_failed", target=via, user=name, client=client or "unknown")
    return name

"""Rows the attention tests start from: an alert as the ingest writes it, endpoints, a policy, and
the worker with a clock the test moves (an offset file, read by every process that shares it)."""

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, select

from cloud.attention import admin
from cloud.attention.escalation import PolicyIn
from cloud.attention.sealing import Sealer
from cloud.models import AlertRow, AuditLog, Camera, Escalation, MediaObject, Notification
from matthan_wire.timeutil import utc_now

JPEG = b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF" + bytes(300) + b"\xff\xd9"


class TestClock:
    """Writes the offset file (seconds) that cloud.attention.clock.OffsetFileClock reads."""

    __test__ = False

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0.0
        path.write_text("0")

    def advance(self, minutes: float) -> None:
        self.offset += minutes * 60
        self.path.write_text(str(self.offset))

    def now(self) -> datetime:
        return utc_now() + timedelta(seconds=self.offset)


def add_alert(
    engine: Engine, event_id: str, ward: str = "w1", *, received: datetime | None = None, **kw: Any
) -> None:
    at = received or utc_now()
    with Session(engine) as s:
        s.add(
            AlertRow(
                event_id=event_id,
                device_id=kw.pop("device_id", "pi-1"),
                camera_id="cam-1",
                ward=ward,
                rule="plaza.crowd",
                type=kw.pop("type", "crowd"),
                category=kw.pop("category", "security_order"),
                labels=["person"],
                object_count=7,
                score=0.8,
                started_at=at - timedelta(seconds=3),
                received_at=at,
                updated_at=at,
                **kw,
            )
        )
        if s.get(Camera, ("pi-1", "cam-1")) is None:
            s.add(Camera(device_id="pi-1", id="cam-1", site_name="Chợ Bến Thành, cổng Nam"))
        s.commit()


def add_snapshot(engine: Engine, store_root: Path, event_id: str) -> None:
    key = f"pi-1/{event_id}.jpg"
    (store_root / "pi-1").mkdir(parents=True, exist_ok=True)
    (store_root / key).write_bytes(JPEG)
    with Session(engine) as s:
        s.add(
            MediaObject(
                event_id=event_id,
                kind="snapshot",
                device_id="pi-1",
                size=len(JPEG),
                sha256="0" * 64,
                offset=len(JPEG),
                complete=True,
                key=key,
            )
        )
        s.commit()


def add_endpoint(
    engine: Engine, name: str, kind: str, config: dict[str, Any], sealer: Sealer | None = None
) -> int:
    with Session(engine) as s:
        body = admin.EndpointIn.model_validate({"name": name, "kind": kind, "config": config})
        e = admin.save_endpoint(s, "admin", body, utc_now(), sealer=sealer or Sealer())
        s.commit()
        assert e.id is not None
        return e.id


def set_policy(engine: Engine, ward: str, category: str, levels: list[tuple[float, list[int]]]) -> None:
    body = PolicyIn.model_validate(
        {
            "ward": ward,
            "category": category,
            "levels": [
                {"after_min": m, "name": f"level {i + 1}", "endpoints": e} for i, (m, e) in enumerate(levels)
            ],
        }
    )
    with Session(engine) as s:
        admin.set_policy(s, "admin", body, utc_now())
        s.commit()


def escalation(engine: Engine, event_id: str) -> Escalation | None:
    with Session(engine) as s:
        return s.get(Escalation, event_id)


def escalate_audits(engine: Engine, event_id: str) -> list[AuditLog]:
    with Session(engine) as s:
        return list(
            s.exec(
                select(AuditLog).where(AuditLog.action == "alert.escalate", AuditLog.target == event_id)
            ).all()
        )


def notifications(engine: Engine) -> list[Notification]:
    with Session(engine) as s:
        return list(s.exec(select(Notification).order_by(Notification.id)).all())  # type: ignore[arg-type]

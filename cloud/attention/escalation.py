"""Escalation of unacknowledged alerts. A policy per ward and category says, level by level, how many
minutes after the alert arrived which endpoints are told; an alert still unacknowledged at a level's
time escalates to it; an acknowledged (or resolved, or false) alert stops escalating, and so does
an outage that ended because the device is back.

All state is in the database (`escalation`: the levels done and when the next is due), so a restart
loses nothing. A step is a compare-and-set (`UPDATE … WHERE level = <the level read>`) committed
together with its queued notifications and its audit record: when several cloud processes tick at
once, exactly one of them takes each step, and a process killed mid-step took it entirely or not
at all."""

import logging
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints, model_validator
from sqlalchemy import Engine, delete, update
from sqlmodel import Session, col, select

from cloud import audit
from cloud.attention import messages, queue
from cloud.attention.clock import Clock
from cloud.db import insert_ignore
from cloud.models import AlertRow, Escalation, EscalationPolicy, MediaObject, NotifyEndpoint, table
from matthan.i18n import Msg

log = logging.getLogger("matthan.cloud.escalation")

CATEGORIES = ("security_order", "urban_order", "outage")
OUTAGE_TYPES = ("device_offline", "camera_offline")
UNACKNOWLEDGED = ("new", "delivered")
SYSTEM = "system:escalation"


class Level(BaseModel):
    after_min: float = Field(ge=0, le=7 * 24 * 60)  # minutes after the alert arrived
    name: str = Field(default="", max_length=100)  # "ward duty officer"
    endpoints: list[int] = Field(default_factory=list, max_length=20)


class PolicyIn(BaseModel):
    ward: Annotated[str, StringConstraints(pattern=r"^(\*|[a-z0-9](?:[a-z0-9-]{0,62}))$")]
    category: Literal["security_order", "urban_order", "outage"]
    levels: list[Level] = Field(min_length=1, max_length=6)

    @model_validator(mode="after")
    def _increasing(self) -> "PolicyIn":
        times = [lv.after_min for lv in self.levels]
        if times != sorted(times) or len(set(times)) != len(times):
            raise ValueError(Msg("levels must come later one after another (after_min strictly increasing)"))
        return self


def policy_category(alert: AlertRow) -> str:
    return "outage" if alert.type in OUTAGE_TYPES else alert.category


def policy_for(session: Session, ward: str, category: str) -> EscalationPolicy | None:
    """The ward's own policy for the category, else the district's ('*')."""
    for w in (ward, "*"):
        p = session.exec(
            select(EscalationPolicy).where(EscalationPolicy.ward == w, EscalationPolicy.category == category)
        ).first()
        if p is not None:
            return p
    return None


class Escalator:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        *,
        public_url: str,
        tz_name: str,
        max_age_h: float,
        language: str,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.public_url = public_url
        self.tz_name = tz_name
        self.lang = messages.notification_language(language)  # the language of every notification
        self.max_age = timedelta(hours=max_age_h)
        self.steps = 0  # escalation steps this process took

    def tick(self) -> int:
        """Start escalations of new alerts, take every step that is due; the steps taken."""
        self.start_new()
        now = self.clock.now()
        with Session(self.engine) as s:
            due = s.exec(
                select(Escalation.event_id, Escalation.level)
                .where(Escalation.state == "active", col(Escalation.next_at) <= now)
                .order_by(col(Escalation.next_at))
                .limit(200)
            ).all()
        taken = 0
        for event_id, level in due:
            try:
                taken += self.step(event_id, level)
            except Exception:  # one bad alert or policy must not stop the others
                log.exception("event=%s escalation step failed", event_id)
        return taken

    def start_new(self) -> int:
        now = self.clock.now()
        with Session(self.engine) as s:
            known = select(Escalation.event_id)
            rows = s.exec(
                select(AlertRow)
                .where(
                    col(AlertRow.state).in_(UNACKNOWLEDGED),
                    # updated_at >= received_at always, and it is indexed: the old rows stay unread.
                    col(AlertRow.updated_at) >= now - self.max_age,
                    col(AlertRow.received_at) >= now - self.max_age,
                    col(AlertRow.event_id).not_in(known),
                )
                .limit(500)
            ).all()
            if not rows:
                return 0
            new = []
            for a in rows:
                policy = policy_for(s, a.ward, policy_category(a))
                levels = [Level.model_validate(lv) for lv in policy.levels] if policy else []
                new.append({
                    "event_id": a.event_id,
                    "policy_id": policy.id if policy else None,
                    "level": 0,
                    "next_at": a.received_at + timedelta(minutes=levels[0].after_min) if levels else None,
                    "state": "active" if levels else "none",
                    "created_at": now,
                    "updated_at": now,
                })  # fmt: skip
            insert_ignore(s, table(Escalation), new, ["event_id"])
            s.commit()
            return len(new)

    def step(self, event_id: str, level: int) -> int:
        now = self.clock.now()
        with Session(self.engine) as s:
            esc = s.get(Escalation, event_id)
            alert = s.get(AlertRow, event_id)
            if esc is None or esc.level != level or esc.state != "active":
                return 0
            c = table(Escalation).c
            cas = update(table(Escalation)).where(
                c.event_id == event_id, c.level == level, c.state == "active"
            )
            stop = self._stop_reason(alert)
            policy = s.get(EscalationPolicy, esc.policy_id) if esc.policy_id is not None else None
            if stop is None and policy is None:
                stop = "policy removed"
            if stop is not None:
                s.execute(cas.values(state="stopped", stopped_reason=stop, next_at=None, updated_at=now))
                s.commit()
                log.info("event=%s escalation stopped at level=%d (%s)", event_id, level, stop)
                return 0
            assert alert is not None and policy is not None
            levels = [Level.model_validate(lv) for lv in policy.levels]
            if level >= len(levels):
                s.execute(cas.values(state="done", next_at=None, updated_at=now))
                s.commit()
                return 0
            this = levels[level]
            following = levels[level + 1] if level + 1 < len(levels) else None
            result = s.execute(
                cas.values(
                    level=level + 1,
                    next_at=alert.received_at + timedelta(minutes=following.after_min) if following else None,
                    state="active" if following else "done",
                    updated_at=now,
                )
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                s.rollback()  # another process took this step
                return 0
            snap = s.get(MediaObject, (event_id, "snapshot"))
            message = messages.build(
                s, alert, public_url=self.public_url, tz_name=self.tz_name, lang=self.lang, level=level + 1,
                level_name=this.name,
                snapshot_key=snap.key if snap is not None and snap.complete else None,
            )  # fmt: skip
            told: list[dict[str, Any]] = []
            for endpoint_id in this.endpoints:
                endpoint = s.get(NotifyEndpoint, endpoint_id)
                if endpoint is None or not endpoint.enabled:
                    continue
                queue.enqueue(s, endpoint, f"level-{level + 1}", message, now)
                told.append({"endpoint": endpoint.id, "name": endpoint.name, "kind": endpoint.kind})
            audit.record(
                s, SYSTEM, "alert.escalate", event_id,
                level=level + 1, level_name=this.name, after_min=this.after_min, notified=told,
            )  # fmt: skip
            s.commit()
        self.steps += 1
        log.info(
            "event=%s escalated level=%d name=%r notified=%s",
            event_id, level + 1, this.name, ",".join(f"{t['name']}:{t['kind']}" for t in told) or "nobody",
        )  # fmt: skip
        return 1

    @staticmethod
    def _stop_reason(alert: AlertRow | None) -> str | None:
        if alert is None:
            return "alert gone"
        if alert.state not in UNACKNOWLEDGED:
            return alert.state
        if alert.type in OUTAGE_TYPES and alert.ended_at is not None:
            return "ended"
        return None


# --- policies and endpoints (the admin API and the console editor call these) --------------------


def save_policy(session: Session, who: str, body: PolicyIn, now: datetime) -> EscalationPolicy:
    known = {e.id for e in session.exec(select(NotifyEndpoint)).all()}
    missing = sorted({i for lv in body.levels for i in lv.endpoints} - known)
    if missing:
        raise ValueError(Msg("no endpoint with id %(ids)s", ids=", ".join(map(str, missing))))
    p = session.exec(
        select(EscalationPolicy).where(
            EscalationPolicy.ward == body.ward, EscalationPolicy.category == body.category
        )
    ).first() or EscalationPolicy(ward=body.ward, category=body.category)
    p.levels = [lv.model_dump() for lv in body.levels]
    p.updated_by, p.updated_at = who, now
    session.add(p)
    # Alerts that found no policy are looked at again: a policy added now covers them too.
    session.execute(delete(table(Escalation)).where(table(Escalation).c.state == "none"))
    audit.record(session, who, "escalation.policy.set", f"{body.ward}/{body.category}", levels=p.levels)
    return p


def history(session: Session, event_id: str) -> tuple[Escalation | None, list[Any]]:
    """An alert's escalation state and its notifications (who, which channel, what became of it)."""
    from cloud.models import Notification

    esc = session.get(Escalation, event_id)
    rows = session.exec(
        select(Notification, NotifyEndpoint)
        .join(NotifyEndpoint, col(NotifyEndpoint.id) == col(Notification.endpoint_id), isouter=True)
        .where(Notification.event_id == event_id)
        .order_by(col(Notification.id))
    ).all()
    return esc, list(rows)

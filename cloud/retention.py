"""Retention by purpose: an alert's clip, snapshot and personal data are deleted once the purpose
they were kept for is served, and never while the alert is pinned as evidence.

The purpose is served when the alert's outcome is decided: a false alarm after
`retention_false_alarm_days` (7), a resolved alert after `retention_resolved_days` (90), counted
from the decision (`state_at`); per category and outcome through `retention_days_by_category`.
Undecided alerts are kept. Pinned alerts (an admin, with a reason) are kept until an admin unpins
them, with a reason; retention notes once, in the audit log, that it kept a pinned alert past its
period.

What goes: every media object of the event in the clip store (local folder or S3) and its rows;
in the alert row, the fields that describe people (box, free-text note, the snapshot and clip
references). What stays: that an alert of this rule happened at this camera and time, and a
`retention_purge` row with what was deleted. Every deletion is counted and in the audit log.

`RetentionJob` runs as a thread of the cloud's composition root, on a clock the caller passes
(tests pass their own and call `run_once`).
"""

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from cloud import audit
from cloud.auth import Principal
from cloud.clipstore import ClipStore
from cloud.errors import Conflict, Forbidden, Invalid, NotFound
from cloud.models import AlertPin, AlertRow, MediaObject, RetentionPurge
from cloud.settings import Settings
from matthan.i18n import N_, Msg
from matthan.worker_thread import WorkerThread
from matthan_wire.timeutil import utc_now

log = logging.getLogger("matthan.cloud.retention")
WHO = "system:retention"
DECIDED = ("false_alarm", "resolved")


# -- pins -------------------------------------------------------------------------------------------


def _admin(principal: Principal) -> None:
    if principal.role != "admin":
        raise Forbidden(N_("only an admin may pin or unpin evidence"))


def _reason(reason: str) -> str:
    reason = reason.strip()
    if not reason or len(reason) > 2000:
        raise Invalid(N_("a reason is required (at most 2000 characters)"))
    return reason


def pin(session: Session, principal: Principal, event_id: str, reason: str) -> AlertPin:
    _admin(principal)
    reason = _reason(reason)
    if session.get(AlertRow, event_id) is None:
        raise NotFound(Msg("no alert %(event)s", event=event_id))
    if session.get(RetentionPurge, event_id) is not None:
        raise Conflict(Msg("alert %(event)s: its media were already deleted by retention", event=event_id))
    row = session.get(AlertPin, event_id)
    if row is None:
        row = AlertPin(event_id=event_id, pinned_by=principal.label(), pinned_at=utc_now(), reason=reason)
        session.add(row)
        audit.record(session, principal.label(), "evidence.pin", event_id, reason=reason)
    return row


def unpin(session: Session, principal: Principal, event_id: str, reason: str) -> None:
    _admin(principal)
    reason = _reason(reason)
    row = session.get(AlertPin, event_id)
    if row is None:
        raise NotFound(Msg("alert %(event)s is not pinned", event=event_id))
    session.delete(row)
    audit.record(
        session, principal.label(), "evidence.unpin", event_id, reason=reason, pinned_by=row.pinned_by
    )


# -- the job ----------------------------------------------------------------------------------------


@dataclass
class RetentionRun:
    purged: list[str] = field(default_factory=list)
    kept_pinned: list[str] = field(default_factory=list)
    files: int = 0
    bytes: int = 0
    errors: int = 0


@dataclass
class RetentionTotals:
    runs: int = 0
    purged: int = 0
    files: int = 0
    bytes: int = 0
    errors: int = 0
    last_run: datetime | None = None


class RetentionJob(WorkerThread):
    def __init__(
        self,
        engine: Engine,
        store: ClipStore,
        settings: Settings,
        clock: Callable[[], datetime] = utc_now,
        batch: int = 500,
    ) -> None:
        self.engine, self.store, self.settings = engine, store, settings
        self.clock = clock
        self.batch = batch
        self.totals = RetentionTotals()
        self._lock = threading.Lock()  # run_once from a test or the CLI never overlaps the thread's
        super().__init__("retention", self._step, stop_timeout_s=10.0)

    def _step(self) -> None:
        if self.stopping.wait(self.settings.retention_interval_s):
            return
        try:
            self.run_once()
        except Exception:  # the database may be away for a while; the next run tries again
            self.totals.errors += 1
            log.exception("retention run failed")

    def _due(self, alert: AlertRow, now: datetime) -> str | None:
        """The rule that makes this alert's media due for deletion now ("false_alarm 7d"), or None."""
        if alert.state not in DECIDED or alert.state_at is None:
            return None
        days = self.settings.retention_days(alert.category, alert.state)
        if days is None or alert.state_at + timedelta(days=days) > now:
            return None
        return f"{alert.category}/{alert.state} {days:g}d"

    def run_once(self) -> RetentionRun:
        with self._lock:
            return self._run_once()

    def _run_once(self) -> RetentionRun:
        now = self.clock()
        run = RetentionRun()
        shortest = min(
            [self.settings.retention_false_alarm_days, self.settings.retention_resolved_days,
             *self.settings.retention_days_by_category.values()]
        )  # fmt: skip
        with Session(self.engine, expire_on_commit=False) as s:
            purged = select(RetentionPurge.event_id)
            candidates = s.exec(
                select(AlertRow)
                .where(col(AlertRow.state).in_(DECIDED))
                .where(col(AlertRow.state_at) <= now - timedelta(days=shortest))
                .where(col(AlertRow.event_id).not_in(purged))
                .order_by(col(AlertRow.state_at))
                .limit(self.batch)
            ).all()
        for alert in candidates:
            rule = self._due(alert, now)
            if rule is None:
                continue
            try:
                self._one(alert.event_id, rule, now, run)
            except Exception as exc:  # one alert's failure (store away, a race) must not stop the rest
                run.errors += 1
                log.error("retention failed event=%s error=%s", alert.event_id, exc)
        t = self.totals
        t.runs, t.purged, t.files, t.bytes = (
            t.runs + 1,
            t.purged + len(run.purged),
            t.files + run.files,
            t.bytes + run.bytes,
        )
        t.errors += run.errors
        t.last_run = now
        if run.purged or run.kept_pinned or run.errors:
            log.info(
                "retention run purged=%d files=%d bytes=%d kept_pinned=%d errors=%d",
                len(run.purged), run.files, run.bytes, len(run.kept_pinned), run.errors,
            )  # fmt: skip
        return run

    def _one(self, event_id: str, rule: str, now: datetime, run: RetentionRun) -> None:
        with Session(self.engine, expire_on_commit=False) as s:
            pinned = s.get(AlertPin, event_id)
            if pinned is not None:
                if pinned.kept_since is None:
                    pinned.kept_since = now
                    s.add(pinned)
                    audit.record(s, WHO, "retention.keep", event_id, rule=rule, pinned_by=pinned.pinned_by)
                    s.commit()
                    run.kept_pinned.append(event_id)
                return
            media = s.exec(select(MediaObject).where(MediaObject.event_id == event_id)).all()
            files = size = 0
            for m in media:
                # The object first: a crash after this leaves a row the next run deletes again.
                if self.store.delete(m.key):
                    files += 1
                    size += m.size if m.complete else 0
                s.delete(m)
            alert = s.get(AlertRow, event_id)
            if alert is not None:
                alert.bbox, alert.note, alert.snapshot_topic, alert.clip = None, None, None, None
                alert.updated_at = now
                s.add(alert)
            s.add(RetentionPurge(event_id=event_id, purged_at=now, rule=rule[:64], files=files, bytes=size))
            audit.record(
                s, WHO, "retention.delete", event_id, rule=rule, files=files, bytes=size,
                kinds=sorted(m.kind for m in media),
            )  # fmt: skip
            try:
                s.commit()
            except IntegrityError:  # another cloud process purged it meanwhile
                s.rollback()
                return
        run.purged.append(event_id)
        run.files += files
        run.bytes += size
        log.info("retention deleted event=%s rule=%s files=%d bytes=%d", event_id, rule, files, size)

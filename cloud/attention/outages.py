"""Device outages as alerts. The ingest already keeps `device.online` (the Last Will, an explicit
offline status, or silence past offline_factor × the health interval); this turns a device that
stays offline past the debounce into an alert of type device_offline (category outage, escalated by
the outage policy) and ends that alert when the device is back.

Debounce: an `outage` row starts when a device is first seen offline; a new status from the device
(it reconnected in between: its status time changed) restarts the wait; only a device offline for
the whole debounce opens an alert. The row's primary key is the device, so however a device flaps
and however many cloud processes look, there is at most one open outage alert per device; opening
it is a compare-and-set on the row (`… WHERE event_id IS NULL`).

A camera whose stream stays lost is reported by its device as a camera_offline alert (debounced on
the device, ended when frames return): it arrives as an alert and is escalated with the outage
policy as well (escalation.OUTAGE_TYPES)."""

import logging
import uuid
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, update
from sqlmodel import Session, col, select

from cloud import audit
from cloud.attention.clock import Clock
from cloud.db import insert_ignore
from cloud.models import AlertRow, Device, Outage, table

log = logging.getLogger("matthan.cloud.outages")
SYSTEM = "system:outages"
RULE = "device.offline"


class OutageWatch:
    def __init__(self, engine: Engine, clock: Clock, debounce_s: float, max_age_h: float = 24.0) -> None:
        self.engine = engine
        self.clock = clock
        self.debounce = timedelta(seconds=debounce_s)
        # A device last heard of longer ago than this is a known dead box, not news: when the
        # cloud is first deployed (or restarted after days), it opens no outage for it.
        self.max_age = timedelta(hours=max_age_h)
        self.opened = 0
        self.ended = 0
        self.ticks = 0

    def tick(self) -> bool:
        """One look at every device; True when an outage alert opened or ended."""
        now = self.clock.now()
        changed = False
        self.ticks += 1
        with Session(self.engine) as s:
            devices = {
                d.id: d
                for d in s.exec(
                    select(Device).where(col(Device.revoked_at).is_(None), col(Device.last_seen).is_not(None))
                ).all()
            }
            outages = {o.device_id: o for o in s.exec(select(Outage)).all()}
        for device_id, d in devices.items():
            o = outages.get(device_id)
            if not d.online and o is None:
                if d.last_seen is not None and now - d.last_seen <= self.max_age:
                    self._suspect(d, now)
            elif not d.online and o is not None and o.event_id is None:
                if o.status_at != d.status_at:
                    self._restart(o, d)
                elif now - o.since >= self.debounce:
                    changed |= self._open(o, d)
            elif d.online and o is not None:
                changed |= self._end(o, d)
        for device_id, o in outages.items():
            if device_id not in devices:  # revoked or removed: nothing to watch any more
                changed |= self._end(o, None)
        return changed

    def _suspect(self, d: Device, now: datetime) -> None:
        with Session(self.engine) as s:
            row = {"device_id": d.id, "since": now, "status_at": d.status_at, "event_id": None}
            insert_ignore(s, table(Outage), [row], ["device_id"])
            s.commit()

    def _restart(self, o: Outage, d: Device) -> None:
        c = table(Outage).c
        with Session(self.engine) as s:
            s.execute(
                update(table(Outage))
                .where(c.device_id == o.device_id, c.event_id.is_(None), c.since == o.since)
                .values(since=self.clock.now(), status_at=d.status_at)
            )
            s.commit()

    def _open(self, o: Outage, d: Device) -> bool:
        now = self.clock.now()
        event_id = f"outage-{uuid.uuid4().hex[:20]}"
        c = table(Outage).c
        with Session(self.engine) as s:
            result = s.execute(
                update(table(Outage))
                .where(c.device_id == o.device_id, c.event_id.is_(None), c.since == o.since)
                .values(event_id=event_id)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                s.rollback()  # another process opened it, or the device came back
                return False
            s.add(
                AlertRow(
                    event_id=event_id,
                    device_id=d.id,
                    camera_id="-",
                    ward=d.ward,
                    rule=RULE,
                    type="device_offline",
                    category="outage",
                    started_at=o.since,
                    received_at=now,
                    updated_at=now,
                )
            )
            audit.record(s, SYSTEM, "outage.open", event_id, device=d.id, since=o.since.isoformat())
            s.commit()
        self.opened += 1
        log.warning(
            "device=%s ward=%s event=%s outage opened (offline since %s)", d.id, d.ward, event_id, o.since
        )
        return True

    def _end(self, o: Outage, d: Device | None) -> bool:
        now = self.clock.now()
        c = table(Outage).c
        with Session(self.engine) as s:
            gone = s.execute(delete(table(Outage)).where(c.device_id == o.device_id, c.since == o.since))
            if gone.rowcount != 1 or o.event_id is None:  # type: ignore[attr-defined]
                s.commit()  # a blip within the debounce: forgotten, no alert
                return False
            alert = s.get(AlertRow, o.event_id)
            if alert is not None and alert.ended_at is None:
                alert.ended_at, alert.updated_at = now, now
                s.add(alert)
            audit.record(s, SYSTEM, "outage.end", o.event_id, device=o.device_id, back=d is not None)
            s.commit()
        self.ended += 1
        log.info("device=%s event=%s outage ended (device back)", o.device_id, o.event_id)
        return True

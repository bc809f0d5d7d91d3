"""One database transaction per ingest batch: where each kind of device message goes in the
database (alert rows, media rows, health samples and latest health, device state, lifecycle
actions), with the bulk statements PostgreSQL gets instead of a statement per row. The rows
themselves are built by cloud/ingest_rows.py. Called by the ingest writer (cloud/ingest.py), which
owns retries, receipts and the quarantine.
"""

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import or_, update
from sqlmodel import Session, col, select

from cloud import audit, ingest_rows, lifecycle
from cloud.clipstore import CONTENT_TYPES, ClipStore, media_key
from cloud.db import dialect_insert, insert_ignore, upsert
from cloud.models import AlertRow, Device, HealthLatest, HealthSample, MediaObject, table
from matthan_wire import Alert, AlertAction, ReportedConfig, Status
from matthan_wire.timeutil import utc_now

log = logging.getLogger("matthan.cloud.ingest")


@dataclass
class Batch:
    starts: dict[str, Alert] = field(default_factory=dict)
    ends: dict[str, Alert] = field(default_factory=dict)
    snapshots: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # event id → (device, jpeg)
    # health_sample rows (ingest_rows.SAMPLE_COLUMNS), and per device the newest health of the batch:
    # (at, body, agent version); the body is the validated payload's own JSON text on PostgreSQL.
    # No Health model outlives its parse: a batch of them kept thousands of objects alive
    # across garbage collections, which then cost more than the validation.
    samples: list[tuple[Any, ...]] = field(default_factory=list)
    latest: dict[str, tuple[datetime, Any, str | None]] = field(default_factory=dict)
    statuses: list[tuple[str, Status, bool]] = field(default_factory=list)  # device, status, retained
    reported: dict[str, ReportedConfig] = field(default_factory=dict)
    actions: list[tuple[str, AlertAction]] = field(default_factory=list)  # ward, action
    seen: dict[str, datetime] = field(default_factory=dict)  # device → cloud time it spoke live
    wards: dict[str, str] = field(default_factory=dict)  # device → ward (from the topic)
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    oldest: float = 0.0

    def empty(self) -> bool:
        return not (
            self.starts
            or self.ends
            or self.snapshots
            or self.samples
            or self.statuses
            or self.reported
            or self.actions
            or self.seen
        )


@dataclass
class Committed:
    receipts: dict[str, dict[str, list[str]]]  # device → {"event_ids"|"ends"|"snapshots": ids}
    states: list[AlertRow]
    alerts_changed: bool
    wards: dict[str, str]  # device → ward learned in this transaction (cached once committed)
    agents: dict[str, str | None]  # device → agent version written in this transaction
    # (kind, source, reason) found while writing (an action on an unknown alert): counted only
    # once the transaction commits, so a retried batch does not count them again.
    rejects: list[tuple[str, str, str]] = field(default_factory=list)


class PoisonBatch(Exception):
    """The database refused the data itself (not its own health): retrying it would never end."""


class BatchWriter:
    """Writes a parsed batch in the caller's transaction. `ward_of` and `agents` mirror what the
    database holds; the caller updates them only after the commit (Committed.wards, .agents)."""

    def __init__(self, store: ClipStore, pg: bool) -> None:
        self.store = store
        self._pg = pg
        self.ward_of: dict[str, str] = {}  # device → ward, as the database has it
        self.agents: dict[str, str | None] = {}  # device → agent version in the database

    def write(self, s: Session, b: Batch) -> Committed:
        now = utc_now()
        receipts: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        wards = self._ensure_devices(s, b)

        sites = ingest_rows.registry_sites(s, [*b.starts.values(), *b.ends.values()])
        if b.starts and self._pg:
            # One statement over column arrays: executemany's per-row Python cost (a statement
            # per alert in the pipeline) was most of what the writer spent on alerts.
            with _pg_cursor(s) as cur:
                cur.execute(
                    ingest_rows.PG_ALERT_STARTS, ingest_rows.alert_columns(b.starts.values(), now, sites)
                )
        elif b.starts:
            rows = [ingest_rows.alert_row(a, now, sites) for a in b.starts.values()]
            insert_ignore(s, table(AlertRow), rows, ["event_id"])
        for a in b.starts.values():
            receipts[a.device_id]["event_ids"].append(a.event_id)
        if b.ends:
            upsert(
                s,
                table(AlertRow),
                [ingest_rows.alert_row(a, now, sites) for a in b.ends.values()],
                ["event_id"],
                ["ended_at", "clip", "updated_at"],
                where="alert.ended_at IS NULL",
            )
            for a in b.ends.values():
                receipts[a.device_id]["ends"].append(a.event_id)
        if b.snapshots:
            rows = []
            for event_id, (device, jpeg) in b.snapshots.items():
                key = media_key(device, event_id, "snapshot")
                existing = s.get(MediaObject, (event_id, "snapshot"))
                if existing is None or not existing.complete:
                    self.store.put_bytes(jpeg, key, CONTENT_TYPES["snapshot"])
                rows.append(ingest_rows.snapshot_row(device, event_id, key, jpeg, now))
                receipts[device]["snapshots"].append(event_id)
            insert_ignore(s, table(MediaObject), rows, ["event_id", "kind"])
        agents = self._write_health(s, b) if b.samples else {}
        if b.seen:
            # Every device of a batch was heard at the same moment (parse time): one statement.
            heard = max(b.seen.values())
            if self._pg:
                # One array parameter: an IN list of a thousand parameters cost SQLAlchemy and
                # psycopg more to render and parse, every batch, than the update itself.
                with _pg_cursor(s) as cur:
                    cur.execute(_PG_SEEN, (heard, list(b.seen)))
            else:
                c = table(Device).c
                s.execute(
                    update(table(Device)).where(c.id.in_(list(b.seen))).values(last_seen=heard, online=True)
                )
        for device, status, retained in b.statuses:
            # Arrival order, not the payload's time: a will carries the time it was set at
            # connect, before the "online" it overrides. A retained status is the broker's
            # current word on the device; it does not prove the device is alive now.
            values: dict[str, Any] = {"online": status.state == "online", "status_at": status.at}
            if status.state == "online" and not retained:
                values["last_seen"] = now
            s.execute(update(table(Device)).where(table(Device).c.id == device).values(**values))
        for device, rep in b.reported.items():
            c = table(Device).c
            s.execute(
                update(table(Device))
                .where(c.id == device, or_(c.reported_at.is_(None), c.reported_at <= rep.at))
                .values(
                    reported_version=rep.version,
                    reported_status=rep.status,
                    reported_error=(rep.error or "")[:2000] or None,
                    reported_at=rep.at,
                )
            )
        states: list[AlertRow] = []
        rejects: list[tuple[str, str, str]] = []
        for ward, action in b.actions:
            alert = s.get(AlertRow, action.event_id)
            if alert is None or alert.ward != ward:
                rejects.append(("alert-action", ward, f"no alert {action.event_id} in ward {ward}"))
                continue
            try:
                changed = lifecycle.apply(alert, action.action, f"{ward}:{action.by}", now, action.note)
            except lifecycle.TransitionError as exc:
                rejects.append(("alert-action", ward, str(exc)))
                continue
            if changed:
                who = f"{ward}:{action.by}"
                audit.record(s, who, f"alert.{action.action}", action.event_id, via="mqtt", note=action.note)
                s.add(alert)
                states.append(alert)
        return Committed(
            receipts={d: dict(r) for d, r in receipts.items()},
            states=states,
            alerts_changed=bool(b.starts or b.ends or states),
            wards=wards,
            agents=agents,
            rejects=rejects,
        )

    def _ensure_devices(self, s: Session, b: Batch) -> dict[str, str]:
        """Wards of the batch's devices not cached yet; creates the rows of unknown devices. The
        cache is updated only after the commit, so a rolled-back batch cannot leave a device
        cached but missing from the table."""
        unknown = [d for d in b.wards if d not in self.ward_of]
        learned: dict[str, str] = {}
        if not unknown:
            return learned
        for device, ward in s.exec(select(Device.id, Device.ward).where(col(Device.id).in_(unknown))).all():
            learned[device] = ward
        new = [d for d in unknown if d not in learned]
        if new:
            # The broker let it publish under {ward}/{device}, so its certificate is ours; it may
            # have been provisioned offline. It shows up in the fleet, unenrolled for uploads.
            rows = [{"id": d, "ward": b.wards[d], "created_at": utc_now(), "online": False} for d in new]
            insert_ignore(s, table(Device), rows, ["id"])
            for d in new:
                log.info("device=%s ward=%s first seen (not enrolled over HTTP)", d, b.wards[d])
                learned[d] = b.wards[d]
        return learned

    def _write_health(self, s: Session, b: Batch) -> dict[str, str | None]:
        if self._pg:
            # One statement over arrays: executemany sent a statement per device (most of a
            # batch's devices at fleet scale) and psycopg's per-row Python cost dominated.
            latest = b.latest
            with _pg_cursor(s) as cur:
                cur.execute(
                    _PG_HEALTH_LATEST,
                    ([*latest], [v[0] for v in latest.values()], [v[1] for v in latest.values()]),
                )
        else:
            upsert(
                s,
                table(HealthLatest),
                [{"device_id": d, "at": at, "body": body} for d, (at, body, _) in b.latest.items()],
                ["device_id"],
                ["at", "body"],
                where="health_latest.at < excluded.at",
            )
        conn = s.connection()
        if conn.dialect.name == "postgresql":
            # The bulk of all traffic: COPY is several times faster than a multi-row INSERT here
            # (docs/lessons.md: 175k rows/s against 90k), and runs in the same transaction.
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            with cursor.copy(
                f"COPY health_sample ({', '.join(ingest_rows.SAMPLE_COLUMNS)}) FROM STDIN"
            ) as copy:
                for row in b.samples:
                    copy.write_row(row)
            cursor.close()
        else:
            s.execute(
                dialect_insert(s, table(HealthSample)),
                [dict(zip(ingest_rows.SAMPLE_COLUMNS, r, strict=True)) for r in b.samples],
            )
        changed: dict[str, str | None] = {
            d: version for d, (_, _, version) in b.latest.items() if version and self.agents.get(d) != version
        }
        for d, version in changed.items():
            # Only on a change: an UPDATE per device per batch would double the writes at scale.
            s.execute(update(table(Device)).where(table(Device).c.id == d).values(agent_version=version))
        return changed


# Devices of the batch coalesced per device (ON CONFLICT cannot touch a row twice in one statement).
_PG_HEALTH_LATEST = (
    "INSERT INTO health_latest (device_id, at, body)"
    " SELECT * FROM unnest(%b::text[], %b::timestamptz[], %b::text[]::json[])"
    " ON CONFLICT (device_id) DO UPDATE SET at = EXCLUDED.at, body = EXCLUDED.body"
    " WHERE health_latest.at < EXCLUDED.at"
)
_PG_SEEN = "UPDATE device SET last_seen = %s, online = true WHERE id = ANY(%b::text[])"


def _pg_cursor(s: Session) -> Any:
    """A psycopg cursor in the session's transaction (the bulk paths bypass SQLAlchemy)."""
    return s.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]

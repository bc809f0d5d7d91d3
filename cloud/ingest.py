"""MQTT ingest: device messages in, one database transaction per batch, receipts out.

    paho thread ── on_message (enqueue only) ──▶ bounded queue ──▶ writer thread
                                                                  ├ validate (matthan_wire.decode)
                                                                  ├ one transaction per batch
                                                                  └ after commit: receipts,
                                                                    alert-state, SSE wake-up

Nothing is receipted before its commit; a database error retries the same batch with backoff (the
devices keep their outboxes meanwhile). A full queue (by count or by bytes) drops the message and
counts it: paho has acked it already, but the device gets no receipt and sends it again, so
dropping loses nothing, while blocking paho's thread would stall every keepalive. A malformed
payload is rejected, counted by kind and logged once per source. Duplicates (same event_id) change
nothing but are receipted again, because the device evidently missed the first receipt.

The writer survives any exception from one message or batch: a batch that fails for a reason other
than the database's health is split and each message written alone, so the one at fault is
rejected, counted once, logged and kept in the quarantine folder, and the others are stored. If the
thread dies anyway, `alive` turns false and /healthz answers 503 naming it.
"""

import contextlib
import gc
import hashlib
import json
import logging
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, or_, update
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError
from sqlmodel import Session, col, delete, select

from cloud import audit, lifecycle
from cloud.clipstore import CONTENT_TYPES, ClipStore, media_key
from cloud.db import dialect_insert, insert_ignore, upsert
from cloud.metrics import Metrics
from cloud.models import AlertRow, Device, HealthLatest, HealthSample, MediaObject, table
from cloud.mqtt import MqttLink
from cloud.notify import Notifier
from cloud.quarantine import Quarantine
from cloud.settings import Settings
from matthan.backoff import Backoff
from matthan_wire import (
    Alert,
    AlertAction,
    Health,
    Kind,
    Receipt,
    ReportedConfig,
    Status,
    Topic,
    WireError,
    decode,
    encode,
    parse_topic,
)
from matthan_wire.codec import MAX_PAYLOAD_BYTES
from matthan_wire.timeutil import utc_now
from matthan_wire.topics import device_filter, device_topic, ward_filter, ward_topic

log = logging.getLogger("matthan.cloud.ingest")

SHARED_KINDS = (Kind.ALERT, Kind.EVENT, Kind.SNAPSHOT, Kind.HEALTH)
# Retained topics: MQTT 5 sends no retained messages to shared subscriptions, so every worker
# subscribes to these plainly (they are few, and applying them twice is harmless).
RETAINED_KINDS = (Kind.STATUS, Kind.CONFIG_REPORTED)
SYS_DROPPED = ("$SYS/broker/load/publish/dropped/#", "$SYS/broker/publish/messages/dropped")
RECEIPT_CHUNK = 5000
_LOGGED_SOURCES_MAX = 10_000
_TOPIC_CACHE_MAX = 200_000

# The bulk paths talk to psycopg directly (cloud.db.upsert), so its own exceptions arrive unwrapped.
try:
    import psycopg

    _DRIVER_DATA_ERRORS: tuple[type[Exception], ...] = (psycopg.DataError, psycopg.IntegrityError)
    _DRIVER_ERRORS: tuple[type[Exception], ...] = (psycopg.Error,)
except ImportError:  # SQLite-only installation
    _DRIVER_DATA_ERRORS, _DRIVER_ERRORS = (), ()
_DATA_ERRORS: tuple[type[Exception], ...] = (DataError, IntegrityError, *_DRIVER_DATA_ERRORS)
_DB_ERRORS: tuple[type[Exception], ...] = (SQLAlchemyError, *_DRIVER_ERRORS)


@dataclass(slots=True)
class Inbound:
    topic: str
    payload: bytes
    retained: bool
    received: float  # time.time() when paho handed it over


class Inbox:
    """The bounded FIFO between paho's thread and the writer. deque.append and popleft are atomic
    under the GIL, so a message costs the paho thread no lock: queue.Queue took a lock and notified
    a condition on every put, and the writer paid the same again on every get. The event is only
    set when the writer may be asleep (it clears it before it sleeps)."""

    def __init__(self, maxsize: int, max_bytes: int | None = None) -> None:
        self.maxsize = maxsize
        self.max_bytes = max_bytes
        # Payload bytes queued: added by paho's thread, taken off by the writer. `+=` on an int
        # attribute is not atomic, so each side keeps its own running total and the difference is
        # the queue's size (each total is written by one thread only).
        self._bytes_in = 0
        self._bytes_out = 0
        self._items: deque[Inbound] = deque()
        self._ready = threading.Event()

    @property
    def nbytes(self) -> int:
        return self._bytes_in - self._bytes_out

    def put(self, item: Inbound) -> bool:
        """False when full by count or by bytes (the caller counts the drop)."""
        items = self._items
        if len(items) >= self.maxsize:
            return False
        size = len(item.payload) + len(item.topic)
        if self.max_bytes is not None and self._bytes_in - self._bytes_out + size > self.max_bytes:
            return False
        self._bytes_in += size
        items.append(item)
        if not self._ready.is_set():
            self._ready.set()
        return True

    def qsize(self) -> int:
        return len(self._items)

    def _wait(self, timeout: float) -> None:
        self._ready.clear()
        if not self._items:  # anything appended after the clear has set the event again
            self._ready.wait(timeout)

    def take(self, max_items: int, first_wait: float, batch_wait: float) -> list[Inbound]:
        """Up to max_items: waits first_wait for the first, then batch_wait at most for the rest."""
        items = self._items
        if not items:
            self._wait(first_wait)
            if not items:
                return []
        out: list[Inbound] = []
        pop = items.popleft
        deadline = time.monotonic() + batch_wait
        while True:
            start = len(out)
            with contextlib.suppress(IndexError):
                for _ in range(min(max_items - len(out), len(items))):
                    out.append(pop())
            self._bytes_out += sum(len(i.payload) + len(i.topic) for i in out[start:])
            if len(out) >= max_items:
                return out
            left = deadline - time.monotonic()
            if left <= 0:
                return out
            self._wait(left)


@dataclass
class Batch:
    starts: dict[str, Alert] = field(default_factory=dict)
    ends: dict[str, Alert] = field(default_factory=dict)
    snapshots: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # event id → (device, jpeg)
    # health_sample rows (SAMPLE_COLUMNS), and per device the newest health of the batch:
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


class IngestWorker:
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        link: MqttLink,
        store: ClipStore,
        metrics: Metrics,
        notifier: Notifier | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.link = link
        self.store = store
        self.metrics = metrics
        self.notifier = notifier
        self.queue = Inbox(settings.queue_max, settings.queue_max_bytes)
        self.quarantine = Quarantine(settings.quarantine_dir, settings.quarantine_max)
        self._pg = engine.dialect.name == "postgresql"
        self._stop = threading.Event()
        self._accepting = True
        self._thread: threading.Thread | None = None
        self._logged: set[tuple[str, str]] = set()
        self._started_at = utc_now()
        self._last_sweep = 0.0
        self._last_purge = 0.0
        self._ward_of: dict[str, str] = {}  # device → ward, as the database has it
        self._topics: dict[str, Topic] = {}
        self._agents: dict[str, str | None] = {}  # device → agent version in the database
        self.last_commit_lag: list[float] = []  # receive→commit seconds of the last batch (bench)
        self.committed_total = 0
        self.rejected_total = 0  # every message refused, whatever the reason (each counted once)
        group = settings.share_group
        for kind in SHARED_KINDS:
            f = device_filter(kind)
            link.subscribe(f"$share/{group}/{f}" if group else f, 1)
        f = ward_filter(Kind.ALERT_ACTION)
        link.subscribe(f"$share/{group}/{f}" if group else f, 1)
        for kind in RETAINED_KINDS:
            link.subscribe(device_filter(kind), 1)
        for sys_topic in SYS_DROPPED:
            link.subscribe(sys_topic, 0)
        link.on_message(self.on_message)

    # --- paho thread ---

    def on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        if topic.startswith("$SYS/"):
            with contextlib.suppress(ValueError):  # $SYS also carries text; only figures count
                self.metrics.broker_dropped.labels(topic).set(float(payload))
            return
        if not self._accepting:
            return  # shutting down: no receipt, so the device sends it again
        if not self.queue.put(Inbound(topic, payload, retained, time.time())):
            self.metrics.dropped.inc()

    # --- life ---

    def start(self) -> None:
        # What exists now (modules, engine, metadata) lives as long as the process: out of the
        # collector's sight, a full collection no longer walks it again every few batches
        # (with it in sight, garbage collection took about 40% of the writer's CPU).
        gc.collect()
        gc.freeze()
        self._thread = threading.Thread(target=self._run, name="ingest-writer", daemon=True)
        self._thread.start()
        self.metrics.writer_up.set(1)

    @property
    def alive(self) -> bool:
        """False once the writer thread has ended without being asked to (health goes red)."""
        return self._thread is not None and (self._thread.is_alive() or self._stop.is_set())

    def dead_workers(self) -> list[str]:
        return [] if self.alive or self._thread is None else [self._thread.name]

    def stop(self, timeout: float = 10.0) -> None:
        """Stop taking messages, write what is queued (bounded by timeout), then end the thread."""
        self._accepting = False
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            while True:
                try:
                    batch_in = self._take()
                    if batch_in:
                        self._process(batch_in)
                    elif self._stop.is_set():
                        return
                    self._housekeeping()
                except Exception:  # _process accounts for every message itself; this is the last net
                    self.metrics.worker_errors.inc()
                    log.exception("ingest writer step failed; carrying on")
        finally:
            self.metrics.writer_up.set(0)
            if not self._stop.is_set():
                log.critical("ingest writer thread ended unexpectedly; /healthz reports it")

    def _take(self) -> list[Inbound]:
        items = self.queue.take(self.settings.batch_max, 0.2, self.settings.batch_wait_s)
        if items:
            self.metrics.queue_depth.set(self.queue.qsize())
        return items

    # --- validation ---

    def parse(self, items: list[Inbound], valid: list[Inbound] | None = None) -> Batch:
        """The batch of what is valid; each invalid message is rejected (counted once) here, and
        the valid ones are appended to `valid`, so a batch split later parses only those again."""
        batch = Batch(oldest=min(i.received for i in items))
        now = utc_now()
        for item in items:
            topic = self._topics.get(item.topic)
            if topic is None:
                try:
                    topic = parse_topic(item.topic)
                except WireError as exc:
                    self._reject("topic", item.topic[:120], str(exc))
                    continue
                # A fleet has a few topics per device; parsing each message again cost more
                # than the insert. Bounded, so a flood of odd snapshot topics cannot grow it.
                if len(self._topics) < _TOPIC_CACHE_MAX and topic.kind is not Kind.SNAPSHOT:
                    self._topics[item.topic] = topic
            source = f"{topic.ward}/{topic.device}" if topic.device else topic.ward
            try:
                self._accept(batch, topic.kind, topic.ward, topic.device, topic.event_id, item, now)
            except WireError as exc:
                self._reject(topic.kind.value, source, str(exc))
                continue
            except Exception as exc:  # a bug meeting an odd message: that message only
                self._fail(item, "internal", f"internal error {exc.__class__.__name__}: {str(exc)[:300]}")
                continue
            batch.counts[topic.kind.value] += 1
            if valid is not None:
                valid.append(item)
        return batch

    def _accept(
        self,
        b: Batch,
        kind: Kind,
        ward: str,
        device: str | None,
        event_id: str | None,
        item: Inbound,
        now: datetime,
    ) -> None:
        if kind is Kind.ALERT_ACTION:
            b.actions.append((ward, decode(AlertAction, item.payload)))
            return
        if device is None or kind not in (*SHARED_KINDS, *RETAINED_KINDS):
            raise WireError(f"the cloud does not take {kind.value} messages")
        known = self._ward_of.get(device) or b.wards.get(device)
        if known is not None and known != ward:
            raise WireError(f"device {device} belongs to ward {known}, not {ward}")
        if kind in (Kind.ALERT, Kind.EVENT):
            alert = decode(Alert, item.payload)
            if (alert.device_id, alert.ward) != (device, ward):
                raise WireError(f"payload names {alert.ward}/{alert.device_id}, topic {ward}/{device}")
            if (alert.phase == "start") != (kind is Kind.ALERT):
                raise WireError(f"a {alert.phase} on the {kind.value} topic")
            (b.starts if kind is Kind.ALERT else b.ends)[alert.event_id] = alert
        elif kind is Kind.SNAPSHOT:
            data = item.payload
            if len(data) > MAX_PAYLOAD_BYTES * 4 or not (data[:3] == b"\xff\xd8\xff" and len(data) > 100):
                raise WireError(f"snapshot {event_id}: not a JPEG of a sensible size ({len(data)} bytes)")
            assert event_id is not None
            b.snapshots[event_id] = (device, data)
        elif kind is Kind.HEALTH:
            health = decode(Health, item.payload)
            if (health.device_id, health.ward) != (device, ward):
                raise WireError(f"payload names {health.ward}/{health.device_id}, topic {ward}/{device}")
            b.samples.append(_sample_row(health))
            newest = b.latest.get(device)
            if newest is None or health.at > newest[0]:
                # PostgreSQL takes the validated payload's own JSON text (psycopg sends a str
                # untyped, so the json column parses it): dumping the model again cost more
                # than the row.
                body = item.payload.decode() if self._pg else health.model_dump(mode="json")
                b.latest[device] = (health.at, body, health.agent_version)
        elif kind is Kind.STATUS:
            b.statuses.append((device, decode(Status, item.payload), item.retained))
        elif kind is Kind.CONFIG_REPORTED:
            if not item.payload:  # a cleared retained message
                return
            b.reported[device] = decode(ReportedConfig, item.payload)
        b.wards[device] = ward
        if not item.retained:
            b.seen[device] = now

    def _reject(self, kind: str, source: str, reason: str) -> None:
        self.rejected_total += 1
        self.metrics.rejected.labels(kind).inc()
        key = (source, kind)
        if key not in self._logged:
            if len(self._logged) < _LOGGED_SOURCES_MAX:
                self._logged.add(key)
            log.warning(
                "rejected kind=%s source=%s reason=%s (further ones from it are only counted)",
                kind,
                source,
                reason[:300],
            )

    def _fail(self, item: Inbound, kind: str, reason: str) -> None:
        """A message that could not be stored for a reason other than its shape: rejected (counted
        once, one log line naming device and event), and kept in the quarantine folder."""
        self.rejected_total += 1
        self.metrics.rejected.labels(kind).inc()
        self.metrics.quarantined.labels(kind).inc()
        kept = self.quarantine.keep(item.topic, item.payload, reason, kind)
        log.error(
            "quarantined kind=%s topic=%s event=%s reason=%s file=%s",
            kind,
            item.topic[:120],
            _event_id(item.payload),
            reason.splitlines()[0][:300] if reason else "-",
            kept or "(not kept: folder full or unwritable)",
        )

    # --- writing ---

    def _process(self, items: list[Inbound]) -> None:
        valid: list[Inbound] = []
        batch = self.parse(items, valid)
        if batch.empty():
            return
        try:
            committed = self._commit_with_retry(batch)
        except PoisonBatch as exc:
            reason, kind = f"refused by the database: {exc}", "database"
        except Exception as exc:  # our own bug, or a value the driver cannot bind
            reason, kind = f"internal error {exc.__class__.__name__}: {str(exc)[:300]}", "internal"
            if len(valid) == 1:
                log.warning("batch write failed: %s", reason, exc_info=True)
        else:
            if committed is not None:
                self._committed(items, batch, committed)
            return
        if len(valid) > 1:
            # Find the bad message: the others must not share its fate on every resend. Only the
            # valid ones go again; the invalid ones were counted by the first parse.
            for item in valid:
                self._process([item])
        elif valid:
            self._fail(valid[0], kind, reason)

    def _committed(self, items: list[Inbound], batch: Batch, committed: Committed) -> None:
        self._ward_of.update(committed.wards)
        self._agents.update(committed.agents)
        for kind, source, reason in committed.rejects:
            self._reject(kind, source, reason)
        done = time.time()
        self.last_commit_lag = [done - i.received for i in items]
        self.committed_total += len(items)
        for kind, n in batch.counts.items():
            self.metrics.ingested.labels(kind).inc(n)
        try:
            self._after_commit(committed)
        except Exception:  # stored already: without its receipt the device resends, which is harmless
            self.metrics.worker_errors.inc()
            log.exception("after-commit step failed (receipts, states); devices will resend")

    def _commit_with_retry(self, batch: Batch) -> Committed | None:
        backoff = Backoff(initial=0.2, maximum=10.0)
        while True:
            started = time.perf_counter()
            try:
                with Session(self.engine, expire_on_commit=False) as session:
                    committed = self.write(session, batch)
                    session.commit()
                self.metrics.db_seconds.observe(time.perf_counter() - started)
                self.metrics.batches.inc()
                return committed
            except _DATA_ERRORS as exc:
                raise PoisonBatch(str(getattr(exc, "orig", None) or exc).splitlines()[0][:300]) from None
            except _DB_ERRORS as exc:
                self.metrics.db_retries.inc()
                delay = backoff.next()
                log.warning(
                    "database write failed (%s); retrying the batch in %.1fs",
                    str(getattr(exc, "orig", None) or exc).splitlines()[0][:200],
                    delay,
                )
                if self._stop.wait(delay) and backoff.attempts > 3:
                    log.error("stopping with an uncommitted batch; devices will send it again")
                    return None

    def write(self, s: Session, b: Batch) -> Committed:
        now = utc_now()
        receipts: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        wards = self._ensure_devices(s, b)

        if b.starts and self._pg:
            # One statement over column arrays: executemany's per-row Python cost (a statement
            # per alert in the pipeline) was most of what the writer spent on alerts.
            with _pg_cursor(s) as cur:
                cur.execute(_PG_ALERT_STARTS, _alert_columns(b.starts.values(), now))
        elif b.starts:
            insert_ignore(s, table(AlertRow), [_alert_row(a, now) for a in b.starts.values()], ["event_id"])
        for a in b.starts.values():
            receipts[a.device_id]["event_ids"].append(a.event_id)
        if b.ends:
            upsert(
                s,
                table(AlertRow),
                [_alert_row(a, now) for a in b.ends.values()],
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
                rows.append(_snapshot_row(device, event_id, key, jpeg, now))
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
                audit.record(s, f"{ward}:{action.by}", f"alert.{action.action}", action.event_id, via="mqtt")
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
        unknown = [d for d in b.wards if d not in self._ward_of]
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
            with cursor.copy(f"COPY health_sample ({', '.join(SAMPLE_COLUMNS)}) FROM STDIN") as copy:
                for row in b.samples:
                    copy.write_row(row)
            cursor.close()
        else:
            s.execute(
                dialect_insert(s, table(HealthSample)),
                [dict(zip(SAMPLE_COLUMNS, r, strict=True)) for r in b.samples],
            )
        changed: dict[str, str | None] = {
            d: version
            for d, (_, _, version) in b.latest.items()
            if version and self._agents.get(d) != version
        }
        for d, version in changed.items():
            # Only on a change: an UPDATE per device per batch would double the writes at scale.
            s.execute(update(table(Device)).where(table(Device).c.id == d).values(agent_version=version))
        return changed

    def _after_commit(self, c: Committed) -> None:
        at = utc_now()
        for device, lists in c.receipts.items():
            ward = self._ward_of.get(device)
            if ward is None:
                continue
            topic = device_topic(Kind.RECEIPT, ward, device)
            starts, ends, snaps = (
                lists.get("event_ids", []),
                lists.get("ends", []),
                lists.get("snapshots", []),
            )
            for i in range(0, max(len(starts), len(ends), len(snaps)), RECEIPT_CHUNK):
                receipt = Receipt(
                    event_ids=starts[i : i + RECEIPT_CHUNK],
                    ends=ends[i : i + RECEIPT_CHUNK],
                    snapshots=snaps[i : i + RECEIPT_CHUNK],
                    at=at,
                )
                self.link.publish(topic, encode(receipt), qos=1)
                self.metrics.receipts.inc()
        for alert in c.states:
            publish_state(self.link, alert)
        if c.alerts_changed and self.notifier is not None:
            self.notifier.notify()

    # --- device state and retention ---

    def _housekeeping(self) -> None:
        now = time.monotonic()
        sweep_every = min(5.0, self.settings.health_interval_s / 2)
        if now - self._last_sweep >= sweep_every:
            self._last_sweep = now
            try:
                self.sweep_offline()
            except SQLAlchemyError as exc:
                log.warning("offline sweep failed: %s", str(exc).splitlines()[0][:200])
        if now - self._last_purge >= 600:
            self._last_purge = now
            try:
                self.purge_health()
            except SQLAlchemyError as exc:
                log.warning("health purge failed: %s", str(exc).splitlines()[0][:200])

    def sweep_offline(self) -> list[str]:
        """Devices silent for offline_factor × their health interval are offline."""
        now = utc_now()
        gone: list[str] = []
        with Session(self.engine) as s:
            rows = s.exec(
                select(Device.id, Device.last_seen, Device.health_interval_s).where(Device.online)
            ).all()
            for device, last_seen, interval in rows:
                # Silence is counted from when we could first have heard it (our own start).
                since = max(last_seen or self._started_at, self._started_at)
                limit = self.settings.offline_factor * (interval or self.settings.health_interval_s)
                if (now - since).total_seconds() > limit:
                    gone.append(device)
            if gone:
                c = table(Device).c
                s.execute(
                    update(table(Device)).where(c.id.in_(gone), c.online.is_(True)).values(online=False)
                )
                s.commit()
                for device in gone:
                    log.info(
                        "device=%s offline (silent past %.0f × health interval)",
                        device,
                        self.settings.offline_factor,
                    )
        return gone

    def purge_health(self) -> int:
        cutoff = utc_now() - timedelta(days=self.settings.health_retention_days)
        with Session(self.engine) as s:
            result = s.exec(delete(HealthSample).where(col(HealthSample.at) < cutoff))
            s.commit()
            return int(result.rowcount or 0)


# Devices of the batch coalesced per device (ON CONFLICT cannot touch a row twice in one statement).
_PG_HEALTH_LATEST = (
    "INSERT INTO health_latest (device_id, at, body)"
    " SELECT * FROM unnest(%b::text[], %b::timestamptz[], %b::text[]::json[])"
    " ON CONFLICT (device_id) DO UPDATE SET at = EXCLUDED.at, body = EXCLUDED.body"
    " WHERE health_latest.at < EXCLUDED.at"
)
_PG_SEEN = "UPDATE device SET last_seen = %s, online = true WHERE id = ANY(%b::text[])"


# (column, PostgreSQL array type) of a new alert, in _alert_columns' order; JSON travels as text.
_ALERT_START_COLUMNS = (
    ("event_id", "text[]"),
    ("device_id", "text[]"),
    ("camera_id", "text[]"),
    ("ward", "text[]"),
    ("zone", "text[]"),
    ("rule", "text[]"),
    ("type", "text[]"),
    ("category", "text[]"),
    ("labels", "text[]::json[]"),
    ("object_count", "int[]"),
    ("score", "float8[]"),
    ("bbox", "text[]::json[]"),
    ("started_at", "timestamptz[]"),
    ("ended_at", "timestamptz[]"),
    ("seq", "int[]"),
    ("snapshot_topic", "text[]"),
    ("clip", "text[]::json[]"),
)
_ALERT_START_NAMES = ", ".join(f'"{c}"' for c, _ in _ALERT_START_COLUMNS)
_ALERT_START_ARRAYS = ", ".join(f"%b::{t}" for _, t in _ALERT_START_COLUMNS)
_PG_ALERT_STARTS = (
    f"INSERT INTO alert ({_ALERT_START_NAMES}, state, received_at, updated_at)"
    f" SELECT *, 'new', %b, %b FROM unnest({_ALERT_START_ARRAYS})"
    " ON CONFLICT (event_id) DO NOTHING"
)


def _alert_columns(alerts: Iterable[Alert], now: datetime) -> list[Any]:
    """The parameters of _PG_ALERT_STARTS: the time, then one list per column (as _alert_row)."""
    cols: list[list[Any]] = [[] for _ in _ALERT_START_COLUMNS]
    (
        event_id,
        device_id,
        camera_id,
        ward,
        zone,
        rule,
        type_,
        category,
        labels,
        object_count,
        score,
        bbox,
        started_at,
        ended_at,
        seq,
        snapshot_topic,
        clip,
    ) = cols
    dumps = json.dumps
    for a in alerts:
        event_id.append(a.event_id)
        device_id.append(a.device_id)
        camera_id.append(a.camera_id)
        ward.append(a.ward)
        zone.append(a.zone)
        rule.append(a.rule)
        type_.append(a.type)
        category.append(a.category)
        labels.append(dumps(list(a.labels)))
        object_count.append(a.object_count)
        score.append(a.score)
        bbox.append(dumps(list(a.bbox)) if a.bbox is not None else None)
        started_at.append(a.started_at)
        ended_at.append(a.ended_at)
        seq.append(a.seq)
        snapshot_topic.append(a.snapshot[:300] if a.snapshot else None)
        clip.append(dumps(a.clip.model_dump(mode="json")) if a.clip else None)
    return [now, now, *cols]


def _event_id(payload: bytes) -> str:
    """The event id of a payload, for one log line; '-' when there is none to read."""
    try:
        data = json.loads(payload[:MAX_PAYLOAD_BYTES])
        value = data.get("event_id") if isinstance(data, dict) else None
    except (ValueError, RecursionError):
        return "-"
    return value[:63] if isinstance(value, str) else "-"


def _pg_cursor(s: Session) -> Any:
    """A psycopg cursor in the session's transaction (the bulk paths bypass SQLAlchemy)."""
    return s.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]


def publish_state(link: MqttLink | None, alert: AlertRow) -> None:
    if link is None:
        return
    link.publish(ward_topic(Kind.ALERT_STATE, alert.ward), encode(lifecycle.state_message(alert)), qos=1)


def _alert_row(a: Alert, now: datetime) -> dict[str, Any]:
    return {
        "event_id": a.event_id,
        "device_id": a.device_id,
        "camera_id": a.camera_id,
        "ward": a.ward,
        "zone": a.zone,
        "rule": a.rule,
        "type": a.type,
        "category": a.category,
        "labels": list(a.labels),
        "object_count": a.object_count,
        "score": a.score,
        "bbox": list(a.bbox) if a.bbox is not None else None,
        "started_at": a.started_at,
        "ended_at": a.ended_at,
        "seq": a.seq,
        "snapshot_topic": a.snapshot[:300] if a.snapshot else None,
        "clip": a.clip.model_dump(mode="json") if a.clip else None,
        "state": "new",
        "received_at": now,
        "updated_at": now,
    }


def _snapshot_row(device: str, event_id: str, key: str, jpeg: bytes, now: datetime) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "kind": "snapshot",
        "device_id": device,
        "size": len(jpeg),
        "sha256": hashlib.sha256(jpeg).hexdigest(),
        "offset": len(jpeg),
        "complete": True,
        "key": key,
        "created_at": now,
        "completed_at": now,
    }


SAMPLE_COLUMNS = (
    "device_id",
    "at",
    "cpu_pct",
    "mem_mb",
    "disk_free_mb",
    "temp_c",
    "outbox_depth",
    "upload_backlog",
    "cameras_up",
    "cameras_total",
)


def _sample_row(h: Health) -> tuple[Any, ...]:
    """A health_sample row, in SAMPLE_COLUMNS order."""
    cameras = h.cameras
    return (
        h.device_id,
        h.at,
        h.cpu_pct,
        h.mem_mb,
        h.disk_free_mb,
        h.temp_c,
        h.outbox_depth,
        h.upload_backlog,
        sum(1 for c in cameras if c.stream_up),
        len(cameras),
    )

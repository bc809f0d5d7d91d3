"""MQTT ingest: device messages in, one database transaction per batch (cloud/ingest_write.py),
receipts out.

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
import json
import logging
import threading
import time
from datetime import datetime, timedelta

from sqlalchemy import Engine, update
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError
from sqlmodel import Session, col, delete, select

from cloud import lifecycle
from cloud.clipstore import ClipStore
from cloud.inbox import Inbound, Inbox
from cloud.ingest_write import Batch, BatchWriter, Committed, PoisonBatch, sample_row
from cloud.metrics import Metrics
from cloud.models import Device, HealthSample, table
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
from matthan_wire.topics import device_filter, device_topic, ward_filter

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
        self.writer = BatchWriter(store, self._pg)
        self._stop = threading.Event()
        self._accepting = True
        self._thread: threading.Thread | None = None
        self._logged: set[tuple[str, str]] = set()
        self._started_at = utc_now()
        self._last_sweep = 0.0
        self._last_purge = 0.0
        self._topics: dict[str, Topic] = {}
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
        known = self.writer.ward_of.get(device) or b.wards.get(device)
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
            b.samples.append(sample_row(health))
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
        self.writer.ward_of.update(committed.wards)
        self.writer.agents.update(committed.agents)
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
                    committed = self.writer.write(session, batch)
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

    def _after_commit(self, c: Committed) -> None:
        at = utc_now()
        for device, lists in c.receipts.items():
            ward = self.writer.ward_of.get(device)
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
            lifecycle.publish_state(self.link, alert)
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


def _event_id(payload: bytes) -> str:
    """The event id of a payload, for one log line; '-' when there is none to read."""
    try:
        data = json.loads(payload[:MAX_PAYLOAD_BYTES])
        value = data.get("event_id") if isinstance(data, dict) else None
    except (ValueError, RecursionError):
        return "-"
    return value[:63] if isinstance(value, str) else "-"

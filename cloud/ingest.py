"""MQTT ingest: device messages in, one database transaction per batch (cloud/ingest_write.py),
receipts out.

    paho thread ── on_message (enqueue only) ──▶ bounded queue ──▶ writer thread
                                                                  ├ validate (cloud/ingest_parse.py)
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
rejected, counted once, logged and kept in the quarantine folder (cloud/ingest_rejects.py), and the
others are stored. If the thread dies anyway, `alive` turns false and /healthz answers 503 naming it.
"""

import contextlib
import gc
import logging
import threading
import time

from sqlalchemy import Engine
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError
from sqlmodel import Session

from cloud import lifecycle
from cloud.clipstore import ClipStore
from cloud.inbox import Inbound, Inbox
from cloud.ingest_parse import RETAINED_KINDS, SHARED_KINDS, BatchParser
from cloud.ingest_rejects import Rejections
from cloud.ingest_upkeep import DeviceUpkeep
from cloud.ingest_write import Batch, BatchWriter, Committed, PoisonBatch
from cloud.metrics import Metrics
from cloud.mqtt import MqttLink
from cloud.notify import Notifier
from cloud.quarantine import Quarantine
from cloud.settings import Settings
from matthan.backoff import Backoff
from matthan_wire import Kind, Receipt, encode
from matthan_wire.timeutil import utc_now
from matthan_wire.topics import device_filter, device_topic, ward_filter

log = logging.getLogger("matthan.cloud.ingest")

SYS_DROPPED = ("$SYS/broker/load/publish/dropped/#", "$SYS/broker/publish/messages/dropped")
RECEIPT_CHUNK = 5000

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
        self.rejections = Rejections(metrics, Quarantine(settings.quarantine_dir, settings.quarantine_max))
        pg = engine.dialect.name == "postgresql"
        self.writer = BatchWriter(store, pg)
        self.parser = BatchParser(self.rejections, self.writer.ward_of, pg)
        self._stop = threading.Event()
        self._accepting = True
        self._thread: threading.Thread | None = None
        self.upkeep = DeviceUpkeep(settings, engine)
        self.last_commit_lag: list[float] = []  # receive→commit seconds of the last batch (bench)
        self.committed_total = 0
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
    def rejected_total(self) -> int:
        """Every message refused, whatever the reason (each counted once)."""
        return self.rejections.total

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
                    self.upkeep.run_due()
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

    # --- writing ---

    def _process(self, items: list[Inbound]) -> None:
        valid: list[Inbound] = []
        batch = self.parser.parse(items, valid)
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
            self.rejections.fail(valid[0], kind, reason)

    def _committed(self, items: list[Inbound], batch: Batch, committed: Committed) -> None:
        self.writer.ward_of.update(committed.wards)
        self.writer.agents.update(committed.agents)
        for kind, source, reason in committed.rejects:
            self.rejections.reject(kind, source, reason)
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

"""The device's durable outbox: alerts, event ends and snapshots stay on disk until the cloud's receipt.

A broker PUBACK is not enough to forget a message (LESSONS.md: Mosquitto acknowledges QoS 1 before it
is on its disk, and drops QoS 1 past its queue limits), so a message is committed here before it is
published and deleted only when a `Receipt` names it. The store is SQLite in WAL mode behind one
connection and a lock: writers are camera threads (one short transaction per event) and the publisher.

The same table keeps the device's monotonic `seq` counter (reserved in blocks so that a restart never
reuses a number) and the counters health reports: alerts_total, alerts_acked_total, dropped_total.
"""

import contextlib
import itertools
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from device.errors import DeviceError
from matthan_wire import Receipt, WireError, decode
from matthan_wire.config import OutboxConfig

log = logging.getLogger("matthan.device.outbox")

# Numbers handed out per reservation: one commit per block instead of one per alert.
SEQ_BLOCK = 1000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- publishing order; AUTOINCREMENT never reuses an id
    event_id TEXT NOT NULL,
    kind TEXT NOT NULL,                    -- alert | event | snapshot
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    created REAL NOT NULL,                 -- unix time, for the age bound
    UNIQUE (event_id, kind)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class MessageKind(StrEnum):
    ALERT = "alert"  # an alert start, on the alert topic; receipted by Receipt.event_ids
    EVENT = "event"  # an alert end, on the event topic; receipted by Receipt.ends
    SNAPSHOT = "snapshot"  # JPEG on snapshot/{event_id}; receipted by Receipt.snapshots


@dataclass(frozen=True)
class Message:
    id: int
    event_id: str
    kind: MessageKind
    topic: str
    payload: bytes


@dataclass(frozen=True)
class NewMessage:
    event_id: str
    kind: MessageKind
    topic: str
    payload: bytes


@dataclass(frozen=True)
class Acked:
    ids: list[int]
    alerts: int
    ends: int
    snapshots: int


@dataclass(frozen=True)
class OutboxStats:
    depth: int
    alerts_total: int
    alerts_acked_total: int
    dropped_total: int


class Outbox:
    def __init__(
        self, path: Path | str, limits: OutboxConfig | None = None, max_bytes: int | None = None
    ) -> None:
        """`max_bytes` bounds the payload bytes held (snapshots are tens of KB each; a device's
        disk is small); past it, like past max_messages, the oldest snapshots go first, then the
        oldest of the rest, every one counted."""
        self.path = Path(path)
        self.limits = limits or OutboxConfig()
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode survives a process crash; FULL also survives a power cut, which a
            # device on a street pole must expect.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise DeviceError(f"outbox {self.path}: cannot open ({exc})") from None
        self._seq_next = self._meta("seq_reserved")
        self._seq_reserved = self._seq_next
        self._depth = 0
        self._bytes = 0
        self._recount()

    def _recount(self) -> None:
        row = self._db.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM messages").fetchone()
        self._depth, self._bytes = int(row[0]), int(row[1])

    # ---- the seq counter -------------------------------------------------------------------------

    def next_seq(self) -> int:
        """The device's next monotonic seq; survives restarts (gaps after a restart are expected)."""
        with self._lock:
            if self._seq_next >= self._seq_reserved:
                self._seq_reserved = self._seq_next + SEQ_BLOCK
                self._set_meta({"seq_reserved": self._seq_reserved})
            seq = self._seq_next
            self._seq_next += 1
            return seq

    # ---- writing ---------------------------------------------------------------------------------

    def put(self, messages: Sequence[NewMessage]) -> list[int]:
        """Commit messages (one transaction) and return their ids; a (event_id, kind) already held is
        kept as it is. Past the bounds the oldest are dropped (snapshots first) and counted."""
        now = time.time()
        ids: list[int] = []
        with self._lock, self._transaction(durable=True):
            dropped = self._make_room(len(messages), sum(len(m.payload) for m in messages))
            new_alerts = 0
            for m in messages:
                cur = self._db.execute(
                    "INSERT OR IGNORE INTO messages (event_id, kind, topic, payload, created) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (m.event_id, m.kind.value, m.topic, m.payload, now),
                )
                if cur.rowcount:
                    ids.append(int(cur.lastrowid or 0))
                    self._depth += 1
                    self._bytes += len(m.payload)
                    new_alerts += m.kind is MessageKind.ALERT
            self._bump({"alerts_total": new_alerts, "dropped_total": dropped})
        return ids

    def _make_room(self, incoming: int, incoming_bytes: int) -> int:
        """Inside put's transaction: drop what must go for the new messages to fit."""
        dropped: list[tuple[str, str, int]] = []
        while True:
            over_n = self._depth + incoming - self.limits.max_messages
            over_b = self._bytes + incoming_bytes - self.max_bytes if self.max_bytes is not None else 0
            if (over_n <= 0 and over_b <= 0) or self._depth == 0:
                break
            # Snapshots first: they are the bulk of the bytes and an alert without its picture
            # still sends an officer; then the oldest of the rest.
            victims: list[int] = []
            freed = 0
            for vid, size in self._db.execute(
                "SELECT id, LENGTH(payload) FROM messages ORDER BY kind = 'snapshot' DESC, id LIMIT ?",
                (max(over_n, 0) + 1000,),
            ):
                if len(victims) >= over_n and freed >= over_b:
                    break
                victims.append(int(vid))
                freed += int(size)
            for chunk in _chunks(victims, 500):
                marks = ",".join("?" * len(chunk))
                gone = self._db.execute(
                    f"DELETE FROM messages WHERE id IN ({marks}) RETURNING event_id, kind, LENGTH(payload)",
                    chunk,
                ).fetchall()
                self._forget(gone)
                dropped.extend(gone)
        if dropped:
            log.warning(
                "outbox full (max_messages=%d max_bytes=%s): dropped %d unreceipted message(s) "
                "(%d snapshots), first event=%s kind=%s",
                self.limits.max_messages,
                self.max_bytes,
                len(dropped),
                sum(1 for d in dropped if d[1] == MessageKind.SNAPSHOT.value),
                dropped[0][0],
                dropped[0][1],
            )
        return len(dropped)

    def _forget(self, gone: list[tuple[str, str, int]]) -> None:
        self._depth -= len(gone)
        self._bytes -= sum(int(g[2]) for g in gone)

    def prune(self, now: float | None = None) -> int:
        """Drop messages older than max_age_h; counted, and logged with the oldest event id."""
        cutoff = (now if now is not None else time.time()) - self.limits.max_age_h * 3600
        with self._lock, self._transaction(durable=False):
            gone = self._db.execute(
                "DELETE FROM messages WHERE created < ? RETURNING event_id, kind, LENGTH(payload)", (cutoff,)
            ).fetchall()
            self._forget(gone)
            self._bump({"dropped_total": len(gone)})
        if gone:
            log.warning(
                "outbox: dropped %d message(s) older than %.0f h without receipt, e.g. event=%s kind=%s",
                len(gone),
                self.limits.max_age_h,
                gone[0][0],
                gone[0][1],
            )
        return len(gone)

    def ack(self, receipt: Receipt) -> Acked:
        """Forget what the cloud has committed. Unknown ids (duplicates, already acked) are no-ops."""
        ids: list[int] = []
        counts: dict[MessageKind, int] = {}
        with self._lock, self._transaction(durable=False):
            for kind, event_ids in (
                (MessageKind.ALERT, receipt.event_ids),
                (MessageKind.EVENT, receipt.ends),
                (MessageKind.SNAPSHOT, receipt.snapshots),
            ):
                gone: list[int] = []
                for chunk in _chunks(event_ids, 500):
                    marks = ",".join("?" * len(chunk))
                    rows = self._db.execute(
                        f"DELETE FROM messages WHERE kind = ? AND event_id IN ({marks}) "
                        "RETURNING id, LENGTH(payload)",
                        (kind.value, *chunk),
                    ).fetchall()
                    gone.extend(int(r[0]) for r in rows)
                    self._bytes -= sum(int(r[1]) for r in rows)
                counts[kind] = len(gone)
                ids.extend(gone)
            self._depth -= len(ids)
            self._bump({"alerts_acked_total": counts[MessageKind.ALERT]})
        return Acked(
            ids=ids,
            alerts=counts[MessageKind.ALERT],
            ends=counts[MessageKind.EVENT],
            snapshots=counts[MessageKind.SNAPSHOT],
        )

    @contextlib.contextmanager
    def _transaction(self, durable: bool) -> Iterator[None]:
        """One write transaction (the caller holds the lock); rolled back, counts re-read, on error.

        Only puts wait for the disk (synchronous=FULL: a message is on disk before it is published).
        Deletions need not: one lost in a power cut only means a message is sent (or dropped) again,
        and the next put's fsync makes it durable anyway, the WAL being written in order. This keeps
        an fsync per receipt off the publisher's thread.
        """
        if not durable:
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            self._recount()
            raise
        finally:
            if not durable:
                self._db.execute("PRAGMA synchronous=FULL")

    # ---- reading ---------------------------------------------------------------------------------

    def after(self, last_id: int, limit: int) -> list[Message]:
        """Messages with an id above last_id, in publishing order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, event_id, kind, topic, payload FROM messages WHERE id > ? ORDER BY id LIMIT ?",
                (last_id, limit),
            ).fetchall()
        return [_message(r) for r in rows]

    def get(self, ids: Iterable[int]) -> list[Message]:
        """The messages still held among ids, in publishing order."""
        out: list[Message] = []
        with self._lock:
            for chunk in _chunks(list(ids), 500):
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT id, event_id, kind, topic, payload FROM messages WHERE id IN ({marks})",
                    chunk,
                ).fetchall()
                out.extend(_message(r) for r in rows)
        return sorted(out, key=lambda m: m.id)

    def depth(self) -> int:
        with self._lock:
            return self._depth

    def bytes_held(self) -> int:
        with self._lock:
            return self._bytes

    def stats(self) -> OutboxStats:
        with self._lock:
            return OutboxStats(
                depth=self._depth,
                alerts_total=self._meta("alerts_total"),
                alerts_acked_total=self._meta("alerts_acked_total"),
                dropped_total=self._meta("dropped_total"),
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ---- meta ------------------------------------------------------------------------------------

    def _meta(self, key: str) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    def _set_meta(self, values: dict[str, int]) -> None:
        self._db.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            list(values.items()),
        )

    def _bump(self, deltas: dict[str, int]) -> None:
        self._db.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = value + ?",
            [(k, d, d) for k, d in deltas.items() if d],
        )


def _message(row: tuple[int, str, str, str, bytes]) -> Message:
    return Message(id=row[0], event_id=row[1], kind=MessageKind(row[2]), topic=row[3], payload=bytes(row[4]))


def _chunks(items: Sequence[str] | list[int], size: int) -> Iterable[list]:  # type: ignore[type-arg]
    for i in range(0, len(items), size):
        yield list(items[i : i + size])


class Link(Protocol):
    """What the publisher needs of an MQTT link (matthan.mqtt.MqttLink)."""

    @property
    def connected(self) -> bool: ...

    @property
    def epoch(self) -> int: ...

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int | None: ...


@dataclass
class PublisherCounters:
    published: int = 0
    republished: int = 0
    pubacks: int = 0
    refused: int = 0
    receipts: int = 0
    bad_receipts: int = 0


class OutboxPublisher:
    """Drains the outbox through the link: in order, a bounded window in flight, resend until receipted.

    One thread. It publishes messages it has not yet sent on this connection in id order while fewer
    than `window` await their PUBACK; a message sent more than `resend_after_s` ago without a receipt
    is sent again; a new connection (or a restart) forgets what was sent, so everything still held is
    replayed in order. PUBACKs and receipts arrive from paho's thread through `on_published` and
    `on_receipt`, which only enqueue.
    """

    def __init__(
        self,
        outbox: Outbox,
        link: Link,
        *,
        window: int = 100,
        resend_after_s: float | None = None,
        prune_every_s: float = 60.0,
    ) -> None:
        self.outbox = outbox
        self.link = link
        self.window = window
        self.resend_after_s = resend_after_s if resend_after_s is not None else outbox.limits.resend_after_s
        self.prune_every_s = prune_every_s
        self.counters = PublisherCounters()
        # (what, mid, ok, payload): "wake", "puback" (mid, ok) or "receipt" (payload).
        self._events: queue.SimpleQueue[tuple[str, int, bool, bytes]] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Per connection: id -> when sent (insertion order = send order), mid -> id awaiting PUBACK.
        self._sent: dict[int, float] = {}
        self._inflight: dict[int, int] = {}
        self._cursor = 0
        self._epoch = -1

    # ---- inputs (any thread) ---------------------------------------------------------------------

    def wake(self) -> None:
        """A new message is in the outbox."""
        self._events.put(("wake", 0, True, b""))

    def on_published(self, mid: int, ok: bool) -> None:
        self._events.put(("puback", mid, ok, b""))

    def on_receipt(self, payload: bytes) -> None:
        self._events.put(("receipt", 0, True, payload))

    # ---- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="outbox-publisher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._events.put(("wake", 0, True, b""))
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def in_flight(self) -> int:
        return len(self._inflight)

    # ---- the loop --------------------------------------------------------------------------------

    def _run(self) -> None:
        next_prune = time.monotonic()
        while not self._stop.is_set():
            try:
                self._drain_events(timeout=0.05)
                now = time.monotonic()
                if now >= next_prune:
                    self.outbox.prune()
                    next_prune = now + self.prune_every_s
                self._send()
            except Exception:  # a bad row or a closed database must not end delivery silently
                log.exception("outbox publisher error; retrying")
                self._stop.wait(1.0)

    def _drain_events(self, timeout: float) -> None:
        try:
            item = self._events.get(timeout=timeout)
        except queue.Empty:
            return
        receipts: list[bytes] = []
        while True:
            what, mid, ok, data = item
            if what == "puback":
                if self._inflight.pop(mid, None) is not None:
                    self.counters.pubacks += 1
                    self.counters.refused += not ok
            elif what == "receipt":
                receipts.append(data)
            try:
                item = self._events.get_nowait()
            except queue.Empty:
                break
        for payload in receipts:
            self._apply_receipt(payload)

    def _apply_receipt(self, payload: bytes) -> None:
        try:
            receipt = decode(Receipt, payload)
        except WireError as exc:
            self.counters.bad_receipts += 1
            log.warning("receipt rejected: %s", exc)
            return
        acked = self.outbox.ack(receipt)
        self.counters.receipts += 1
        for i in acked.ids:
            self._sent.pop(i, None)
        log.debug(
            "receipt alerts=%d ends=%d snapshots=%d depth=%d",
            acked.alerts,
            acked.ends,
            acked.snapshots,
            self.outbox.depth(),
        )

    def _send(self) -> None:
        if not self.link.connected:
            return
        if self.link.epoch != self._epoch:
            # A new connection: the broker may have lost anything it acknowledged (SIGKILL after
            # PUBACK), so everything not receipted goes again, oldest first.
            self._epoch = self.link.epoch
            self._sent.clear()
            self._inflight.clear()
            self._cursor = 0
        now = time.monotonic()
        # Resends first: they are older than anything new.
        # _sent is in send order, so the due ones are a prefix.
        due = list(
            itertools.islice(
                itertools.takewhile(lambda i: now - self._sent[i] >= self.resend_after_s, self._sent),
                self._room(),
            )
        )
        if due:
            for m in self.outbox.get(due):
                if not self._publish(m, now):
                    return
                self.counters.republished += 1
            for i in due:  # rows gone meanwhile (receipted or dropped) need no resend
                if i in self._sent and now - self._sent[i] >= self.resend_after_s:
                    del self._sent[i]
        while self._room() > 0:
            batch = self.outbox.after(self._cursor, self._room())
            if not batch:
                break
            for m in batch:
                if not self._publish(m, now):
                    return
                self.counters.published += 1
                self._cursor = m.id

    def _room(self) -> int:
        return max(0, self.window - len(self._inflight))

    def _publish(self, m: Message, now: float) -> bool:
        mid = self.link.publish(m.topic, m.payload, qos=1)
        if mid is None:
            return False
        self._inflight[mid] = m.id
        self._sent.pop(m.id, None)
        self._sent[m.id] = now
        return True

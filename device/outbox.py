"""The device's durable outbox: alerts, event ends and snapshots stay on disk until the cloud's receipt.

A broker PUBACK is not enough to forget a message (docs/lessons.md: Mosquitto acknowledges QoS 1 before it
is on its disk, and drops QoS 1 past its queue limits), so a message is committed here before it is
published and deleted only when a `Receipt` names it. The store is SQLite in WAL mode behind one
connection and a lock: writers are camera threads (one short transaction per event) and the publisher.

The same table keeps the device's monotonic `seq` counter (reserved in blocks so that a restart never
reuses a number) and the counters health reports: alerts_total, alerts_acked_total, dropped_total.

Each message carries its own resend schedule in its row (`sends`, `step`, `next_at`): the publisher
keeps no per-message state beyond the messages awaiting a PUBACK, so a backlog of 100,000 costs disk,
not memory. The schedule is the `ResendPolicy` (docs/architecture.md, "Resends during a cloud outage").
"""

import contextlib
import logging
import queue
import random
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from device.errors import DeviceError
from matthan_wire import Receipt, WireError, decode
from matthan_wire.config import OutboxConfig

log = logging.getLogger("matthan.device.outbox")

# After the first receipt that ends a silence, the backlog is replayed this much later: the cloud
# works through what its persistent session kept at the broker (thousands of messages a second) and
# receipts it meanwhile, which leaves only what the broker dropped to replay.
REPLAY_GRACE_S = 5.0

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

# The resend schedule, added to outboxes made before it (ALTER TABLE keeps their rows): copies sent
# so far, the backoff step (reset when the cloud is back), and when the next copy is due (unix time;
# 0 = never sent, due at once).
_SCHEDULE_COLUMNS = {
    "sends": "INTEGER NOT NULL DEFAULT 0",
    "step": "INTEGER NOT NULL DEFAULT 0",
    "next_at": "REAL NOT NULL DEFAULT 0",
}
_SCHEDULE_INDEX = "CREATE INDEX IF NOT EXISTS messages_due ON messages (next_at, id)"


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
class Scheduled:
    message: Message
    sends: int  # copies sent before this one
    step: int  # backoff step before this copy


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
    oldest_age_s: int = 0  # the oldest message still without a receipt; 0 when empty
    resends_1h: int = 0  # copies sent again in the last hour (filled in by the publisher)


class Outbox:
    def __init__(
        self,
        path: Path | str,
        limits: OutboxConfig | None = None,
        max_bytes: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`max_bytes` bounds the payload bytes held (snapshots are tens of KB each; a device's
        disk is small); past it, like past max_messages, the oldest snapshots go first, then the
        oldest of the rest, every one counted. `clock` is unix time: for message ages and the
        resend schedule (a test runs an outage of minutes in seconds with its own)."""
        self.path = Path(path)
        self.limits = limits or OutboxConfig()
        self.max_bytes = max_bytes
        self.clock = clock
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode survives a process crash; FULL also survives a power cut, which a
            # device on a street pole must expect.
            self._db.execute("PRAGMA synchronous=FULL")
            # The only memory that grows with the backlog is SQLite's page cache: bounded here
            # (SQLite's default, set on purpose), whatever the backlog (bench.soak).
            self._db.execute("PRAGMA cache_size=-2048")
            self._db.executescript(_SCHEMA)
            have = {r[1] for r in self._db.execute("PRAGMA table_info(messages)")}
            for name, decl in _SCHEDULE_COLUMNS.items():
                if name not in have:
                    self._db.execute(f"ALTER TABLE messages ADD COLUMN {name} {decl}")
            self._db.execute(_SCHEDULE_INDEX)
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
        now = self.clock()
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
        cutoff = (now if now is not None else self.clock()) - self.limits.max_age_h * 3600
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

    def due(self, now: float, limit: int) -> list["Scheduled"]:
        """Up to `limit` messages whose next copy is due: never-sent ones first (new alerts go out at
        once), then by due time, then in publishing order (a replay marks all due at one time)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, event_id, kind, topic, payload, sends, step FROM messages "
                "WHERE next_at <= ? ORDER BY next_at, id LIMIT ?",
                (now, limit),
            ).fetchall()
        return [Scheduled(_message(r[:5]), sends=int(r[5]), step=int(r[6])) for r in rows]

    def next_due(self) -> float | None:
        """When the earliest copy is due (None when empty); one index lookup."""
        with self._lock:
            row = self._db.execute("SELECT MIN(next_at) FROM messages").fetchone()
        return None if row[0] is None else float(row[0])

    def scheduled(self, plan: Sequence[tuple[int, int, float]]) -> None:
        """Record copies just sent: (id, new backoff step, next due time); one transaction."""
        with self._lock, self._transaction(durable=False):
            self._db.executemany(
                "UPDATE messages SET sends = sends + 1, step = ?, next_at = ? WHERE id = ?",
                [(step, at, i) for i, step, at in plan],
            )

    def replay_all(self, now: float, reset_backoff: bool) -> int:
        """Make every held message due now (in publishing order); with `reset_backoff`, the backoff
        starts again from the first delay (the cloud is back). Returns how many were held."""
        with self._lock, self._transaction(durable=False):
            sql = "UPDATE messages SET next_at = ?" + (", step = 0" if reset_backoff else "")
            return int(self._db.execute(sql + " WHERE sends > 0", (now,)).rowcount)

    def clamp_schedule(self, latest: float) -> int:
        """Pull in copies due after `latest`: the clock went back, and they must not wait for it."""
        with self._lock, self._transaction(durable=False):
            return int(
                self._db.execute("UPDATE messages SET next_at = 0 WHERE next_at > ?", (latest,)).rowcount
            )

    def oldest_age_s(self) -> int:
        with self._lock:
            return self._oldest_age_s()

    def _oldest_age_s(self) -> int:
        row = self._db.execute("SELECT created FROM messages ORDER BY id LIMIT 1").fetchone()
        return 0 if row is None else max(0, int(self.clock() - float(row[0])))

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
                oldest_age_s=self._oldest_age_s(),
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
    published: int = 0  # first copies
    republished: int = 0  # every further copy: backoff resends, reconnect and cloud-back replays
    pubacks: int = 0
    refused: int = 0
    receipts: int = 0
    bad_receipts: int = 0
    replays: int = 0  # times the whole backlog was made due at once


class ResendPolicy:
    """When a message without a receipt is sent again: exponential backoff with jitter, capped.

    After the n-th copy the next is due `min(max_s, first_s * factor**(n-1)) * (1 + jitter * U)`, U
    uniform in [0, 1): the jitter only lengthens a delay, so the nominal delays are a hard floor and
    the bound on copies holds whatever the dice say. With the defaults (30 s, ×4, 600 s, 20 %) a
    message goes out at most at 0, 30, 150 and 630 s: ≤ 3 copies in its first 10 minutes, then one
    per ≥ 10 minutes (≤ 8 in an hour, against 120 at a fixed 30 s). `factor=1, jitter=0` is the
    fixed interval this replaced.
    """

    def __init__(self, limits: OutboxConfig, rng: random.Random | None = None) -> None:
        self.first_s = limits.resend_after_s
        self.factor = limits.resend_factor
        self.max_s = max(limits.resend_max_s, limits.resend_after_s)
        self.jitter = limits.resend_jitter
        self._rng = rng or random.Random()

    def delay(self, step: int) -> float:
        """Seconds from the `step`-th copy (1 = the first) to the next."""
        exp = min(max(step - 1, 0), 64)  # past the cap already; keeps the power finite
        nominal = min(self.max_s, self.first_s * self.factor**exp)
        return nominal * (1.0 + self.jitter * self._rng.random())

    @property
    def horizon_s(self) -> float:
        """No copy is ever scheduled further ahead than this."""
        return self.max_s * (1.0 + self.jitter)


class OutboxPublisher:
    """Drains the outbox through the link: in order, a bounded window in flight, resend until receipted.

    One thread. Each pass it publishes, while fewer than `window` await their PUBACK, what the outbox
    says is due: never-sent messages first (a new alert goes out at once), then copies due by their
    own `ResendPolicy` schedule, kept in the outbox's rows. Two things make the whole backlog due at
    once, in publishing order, paced by the PUBACK window (the rate `bench.alert_latency` measures as
    replay): a new connection (the broker may have lost what it acknowledged) and the first receipt
    after a silence (a resend went unanswered: the cloud was away and is back; the backoff restarts).
    PUBACKs and receipts arrive from paho's thread through `on_published` and `on_receipt`, which
    only enqueue.
    """

    def __init__(
        self,
        outbox: Outbox,
        link: Link,
        *,
        window: int = 100,
        policy: ResendPolicy | None = None,
        prune_every_s: float = 60.0,
    ) -> None:
        self.outbox = outbox
        self.link = link
        self.window = window
        self.policy = policy or ResendPolicy(outbox.limits)
        self.prune_every_s = prune_every_s
        self.counters = PublisherCounters()
        # (what, mid, ok, payload): "wake", "puback" (mid, ok) or "receipt" (payload).
        self._events: queue.SimpleQueue[tuple[str, int, bool, bytes]] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # mid -> id awaiting PUBACK: the only per-message state, at most `window` entries.
        self._inflight: dict[int, int] = {}
        self._epoch = -1
        # A resend went out since the last receipt and none came for resend_after_s: the cloud was
        # silent, so the next receipt means it is back.
        self._unanswered = False
        self._last_receipt = outbox.clock()
        # Resends per minute of the outbox clock, for the last hour: at most 61 buckets.
        self._resend_minutes: deque[list[int]] = deque(maxlen=61)
        self._next_due: float | None = 0.0  # cached outbox.next_due(); None = nothing held
        self.passes = 0

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

    def resends_1h(self) -> int:
        now_min = int(self.outbox.clock() // 60)
        return sum(n for minute, n in list(self._resend_minutes) if now_min - minute < 60)

    def stats(self) -> OutboxStats:
        """The outbox's figures with this publisher's resends of the last hour, for health."""
        s = self.outbox.stats()
        return OutboxStats(
            depth=s.depth,
            alerts_total=s.alerts_total,
            alerts_acked_total=s.alerts_acked_total,
            dropped_total=s.dropped_total,
            oldest_age_s=s.oldest_age_s,
            resends_1h=self.resends_1h(),
        )

    def settled(self) -> bool:
        """Nothing awaits a PUBACK and nothing is due now (tests step their clock on this)."""
        due = self.outbox.next_due()
        return not self._inflight and (due is None or due > self.outbox.clock())

    # ---- the loop --------------------------------------------------------------------------------

    def _run(self) -> None:
        next_prune = time.monotonic()
        while not self._stop.is_set():
            try:
                woken = self._drain_events(timeout=0.05)
                now = time.monotonic()
                if now >= next_prune:
                    self.outbox.prune()
                    # A wall clock set back (NTP on boot) must not park copies far in the future.
                    self.outbox.clamp_schedule(self.outbox.clock() + self.policy.horizon_s)
                    next_prune = now + self.prune_every_s
                    woken = True
                if woken:
                    self._next_due = 0.0
                self._send()
                self.passes += 1
            except Exception:  # a bad row or a closed database must not end delivery silently
                log.exception("outbox publisher error; retrying")
                self._stop.wait(1.0)

    def _drain_events(self, timeout: float) -> bool:
        """Apply what arrived; True when the outbox may have changed (a wake or a receipt)."""
        try:
            item = self._events.get(timeout=timeout)
        except queue.Empty:
            return False
        receipts: list[bytes] = []
        woken = False
        while True:
            what, mid, ok, data = item
            if what == "puback":
                if self._inflight.pop(mid, None) is not None:
                    self.counters.pubacks += 1
                    self.counters.refused += not ok
            elif what == "receipt":
                receipts.append(data)
            else:
                woken = True
            try:
                item = self._events.get_nowait()
            except queue.Empty:
                break
        for payload in receipts:
            self._apply_receipt(payload)
        return woken or bool(receipts)

    def _apply_receipt(self, payload: bytes) -> None:
        try:
            receipt = decode(Receipt, payload)
        except WireError as exc:
            self.counters.bad_receipts += 1
            log.warning("receipt rejected: %s", exc)
            return
        acked = self.outbox.ack(receipt)
        self.counters.receipts += 1
        clock = self.outbox.clock()
        silent_s = clock - self._last_receipt
        self._last_receipt = clock
        if self._unanswered and silent_s >= self.policy.first_s:
            # The first receipt after a silence: the cloud is back. What it has not receipted goes
            # again, oldest first, instead of each message waiting out its own (by now long) backoff.
            # The grace lets the receipts for what the cloud's own session kept at the broker arrive
            # first, so those are not sent once more for nothing.
            held = self.outbox.replay_all(clock + REPLAY_GRACE_S, reset_backoff=True)
            self.counters.replays += 1
            self._next_due = 0.0
            log.info(
                "cloud receipts again after %.0f s of silence: replaying %d unreceipted message(s) in order",
                silent_s,
                held,
            )
        self._unanswered = False
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
        clock = self.outbox.clock()
        if self.link.epoch != self._epoch:
            # A new connection: the broker may have lost anything it acknowledged (SIGKILL after
            # PUBACK), so everything not receipted goes again, oldest first. The backoff goes on:
            # a flapping link must not turn into a flood either.
            self._epoch = self.link.epoch
            self._inflight.clear()
            if self.outbox.replay_all(clock, reset_backoff=False):
                self.counters.replays += 1
            self._next_due = 0.0
        while self._room() > 0:
            if self._next_due is None or self._next_due > clock:
                return
            batch = self.outbox.due(clock, self._room())
            if not batch:
                self._next_due = self.outbox.next_due()
                return
            plan: list[tuple[int, int, float]] = []
            try:
                for s in batch:
                    mid = self.link.publish(s.message.topic, s.message.payload, qos=1)
                    if mid is None:
                        return
                    self._inflight[mid] = s.message.id
                    step = s.step + 1
                    plan.append((s.message.id, step, clock + self.policy.delay(step)))
                    if s.sends:
                        self.counters.republished += 1
                        self._count_resend(clock)
                    else:
                        self.counters.published += 1
            finally:
                if plan:
                    self.outbox.scheduled(plan)

    def _count_resend(self, clock: float) -> None:
        self._unanswered = True
        minute = int(clock // 60)
        if self._resend_minutes and self._resend_minutes[-1][0] == minute:
            self._resend_minutes[-1][1] += 1
        else:
            self._resend_minutes.append([minute, 1])

    def _room(self) -> int:
        return max(0, self.window - len(self._inflight))

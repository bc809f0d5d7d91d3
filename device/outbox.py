"""The device's durable outbox: alerts, event ends and snapshots stay on disk until the cloud's receipt.

A broker PUBACK is not enough to forget a message (docs/lessons.md: Mosquitto acknowledges QoS 1 before it
is on its disk, and drops QoS 1 past its queue limits), so a message is committed here before it is
published and deleted only when a `Receipt` names it. The store is SQLite in WAL mode behind one
connection and a lock: writers are camera threads (one short transaction per event) and the publisher.

The same table keeps the device's monotonic `seq` counter (reserved in blocks so that a restart never
reuses a number) and the counters health reports: alerts_total, alerts_acked_total, dropped_total.

Each message carries its own resend schedule in its row (`sends`, `step`, `next_at`): the publisher
keeps no per-message state beyond the messages awaiting a PUBACK, so a backlog of 100,000 costs disk,
not memory. The schedule is the `ResendPolicy` (device/resend_policy.py); `OutboxPublisher`
(device/outbox_publisher.py) sends what is due. The SQLite file itself is device/outbox_db.py.
"""

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from device.errors import DeviceError
from device.outbox_db import bump, chunks, meta, open_db, set_meta, transaction
from matthan_wire import Receipt
from matthan_wire.config import OutboxConfig

log = logging.getLogger("matthan.device.outbox")

# Numbers handed out per reservation: one commit per block instead of one per alert.
SEQ_BLOCK = 1000


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
            self._db = open_db(self.path)
        except sqlite3.Error as exc:
            raise DeviceError(f"outbox {self.path}: cannot open ({exc})") from None
        self._seq_next = meta(self._db, "seq_reserved")
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
                set_meta(self._db, {"seq_reserved": self._seq_reserved})
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
            bump(self._db, {"alerts_total": new_alerts, "dropped_total": dropped})
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
            for chunk in chunks(victims, 500):
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
            bump(self._db, {"dropped_total": len(gone)})
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
                for chunk in chunks(event_ids, 500):
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
            bump(self._db, {"alerts_acked_total": counts[MessageKind.ALERT]})
        return Acked(
            ids=ids,
            alerts=counts[MessageKind.ALERT],
            ends=counts[MessageKind.EVENT],
            snapshots=counts[MessageKind.SNAPSHOT],
        )

    def _transaction(self, durable: bool) -> contextlib.AbstractContextManager[None]:
        return transaction(self._db, durable, on_rollback=self._recount)

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
            for chunk in chunks(list(ids), 500):
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
                alerts_total=meta(self._db, "alerts_total"),
                alerts_acked_total=meta(self._db, "alerts_acked_total"),
                dropped_total=meta(self._db, "dropped_total"),
                oldest_age_s=self._oldest_age_s(),
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _message(row: tuple[int, str, str, str, bytes]) -> Message:
    return Message(id=row[0], event_id=row[1], kind=MessageKind(row[2]), topic=row[3], payload=bytes(row[4]))

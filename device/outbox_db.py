"""The outbox's SQLite file: its schema (upgraded in place), how durable each write is, one write
transaction at a time, and the `meta` table of counters. What the rows mean (kept until a receipt,
dropped past the bounds, their resend schedule) is device/outbox.py's, the only user.
"""

import contextlib
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

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


def open_db(path: Path) -> sqlite3.Connection:
    """The outbox file, created or upgraded; raises sqlite3.Error when it cannot be."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode survives a process crash; FULL also survives a power cut, which a
    # device on a street pole must expect.
    db.execute("PRAGMA synchronous=FULL")
    # The only memory that grows with the backlog is SQLite's page cache: bounded here
    # (SQLite's default, set on purpose), whatever the backlog (bench.soak).
    db.execute("PRAGMA cache_size=-2048")
    db.executescript(_SCHEMA)
    have = {r[1] for r in db.execute("PRAGMA table_info(messages)")}
    for name, decl in _SCHEDULE_COLUMNS.items():
        if name not in have:
            db.execute(f"ALTER TABLE messages ADD COLUMN {name} {decl}")
    db.execute(_SCHEDULE_INDEX)
    return db


@contextlib.contextmanager
def transaction(db: sqlite3.Connection, durable: bool, on_rollback: Callable[[], None]) -> Iterator[None]:
    """One write transaction (the caller holds the outbox's lock); rolled back, then `on_rollback`
    (the outbox re-reads its counts), on error.

    Only puts wait for the disk (synchronous=FULL: a message is on disk before it is published).
    Deletions need not: one lost in a power cut only means a message is sent (or dropped) again,
    and the next put's fsync makes it durable anyway, the WAL being written in order. This keeps
    an fsync per receipt off the publisher's thread.
    """
    if not durable:
        db.execute("PRAGMA synchronous=NORMAL")
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        on_rollback()
        raise
    finally:
        if not durable:
            db.execute("PRAGMA synchronous=FULL")


def meta(db: sqlite3.Connection, key: str) -> int:
    row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return int(row[0]) if row else 0


def set_meta(db: sqlite3.Connection, values: dict[str, int]) -> None:
    db.executemany(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        list(values.items()),
    )


def bump(db: sqlite3.Connection, deltas: dict[str, int]) -> None:
    db.executemany(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = value + ?",
        [(k, d, d) for k, d in deltas.items() if d],
    )


def chunks(items: Sequence[str] | list[int], size: int) -> Iterable[list]:  # type: ignore[type-arg]
    """At most `size` at a time: SQLite bounds the parameters of one statement."""
    for i in range(0, len(items), size):
        yield list(items[i : i + size])

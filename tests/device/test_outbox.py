"""The durable outbox on a real SQLite file: commit before publish, forget only on receipt, bounded."""

import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from device.outbox import MessageKind, NewMessage, Outbox
from matthan_wire import Receipt, utc_now
from matthan_wire.config import OutboxConfig


def _msg(event_id: str, kind: MessageKind = MessageKind.ALERT) -> NewMessage:
    return NewMessage(event_id, kind, f"matthan/v1/w/d/{kind.value}", f'{{"id":"{event_id}"}}'.encode())


def test_receipt_forgets_only_the_kinds_it_names(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db")
    ob.put([_msg("e1"), _msg("e1", MessageKind.SNAPSHOT), _msg("e1", MessageKind.EVENT), _msg("e2")])
    assert ob.depth() == 4
    acked = ob.ack(Receipt(event_ids=["e1", "zz-unknown"], at=utc_now()))
    assert (acked.alerts, acked.ends, acked.snapshots) == (1, 0, 0)
    left = ob.after(0, 10)
    assert [(m.event_id, m.kind) for m in left] == [
        ("e1", MessageKind.SNAPSHOT),
        ("e1", MessageKind.EVENT),
        ("e2", MessageKind.ALERT),
    ]
    ob.ack(Receipt(ends=["e1"], snapshots=["e1"], at=utc_now()))
    # A duplicate receipt is a no-op, not an error.
    assert ob.ack(Receipt(event_ids=["e1"], at=utc_now())).alerts == 0
    s = ob.stats()
    assert (s.depth, s.alerts_total, s.alerts_acked_total, s.dropped_total) == (1, 2, 1, 0)


def test_order_is_publishing_order_and_duplicates_are_kept_once(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db")
    ob.put([_msg(f"e{i}") for i in range(5)])
    assert ob.put([_msg("e2")]) == []  # already held
    ob.ack(Receipt(event_ids=["e1", "e3"], at=utc_now()))
    ob.put([_msg("e9")])
    ids = [m.event_id for m in ob.after(0, 100)]
    assert ids == ["e0", "e2", "e4", "e9"]
    first = ob.after(0, 1)[0]
    assert [m.event_id for m in ob.after(first.id, 100)] == ["e2", "e4", "e9"]


def test_seq_is_monotonic_across_restarts(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db")
    a = [ob.next_seq() for _ in range(1500)]
    assert a == sorted(a) and len(set(a)) == 1500
    ob.close()
    ob2 = Outbox(tmp_path / "o.db")
    assert ob2.next_seq() > a[-1]


def test_seq_never_reused_after_sigkill(tmp_path: Path) -> None:
    """A process killed mid-block must not hand out a number it already gave."""
    db = tmp_path / "o.db"
    code = textwrap.dedent(
        f"""
        import os, signal, sys
        from device.outbox import Outbox
        ob = Outbox({str(db)!r})
        print(max(ob.next_seq() for _ in range(1234)), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.returncode == -9
    last = int(out.stdout.strip())
    assert Outbox(db).next_seq() > last


def test_committed_message_survives_sigkill(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    code = textwrap.dedent(
        f"""
        import os, signal
        from device.outbox import Outbox, NewMessage, MessageKind
        ob = Outbox({str(db)!r})
        ob.put([NewMessage("e-kill", MessageKind.ALERT, "t", b"x")])
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.returncode == -9, out.stderr
    held = Outbox(db).after(0, 10)
    assert [(m.event_id, m.payload) for m in held] == [("e-kill", b"x")]


def test_bounded_by_count_drops_oldest_and_counts(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db", OutboxConfig(max_messages=100))
    ob.put([_msg(f"e{i:03d}") for i in range(100)])
    ob.put([_msg(f"n{i}") for i in range(7)])
    assert ob.depth() == 100
    held = [m.event_id for m in ob.after(0, 1000)]
    assert held[0] == "e007" and held[-1] == "n6"
    assert ob.stats().dropped_total == 7


def test_bounded_by_age(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db", OutboxConfig(max_age_h=1.0))
    ob.put([_msg("old"), _msg("old2")])
    assert ob.prune() == 0
    assert ob.prune(now=time.time() + 3601) == 2
    assert ob.depth() == 0 and ob.stats().dropped_total == 2


def test_depth_is_right_after_reopen(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db")
    ob.put([_msg(f"e{i}") for i in range(10)])
    ob.ack(Receipt(event_ids=["e0"], at=utc_now()))
    ob.close()
    assert Outbox(tmp_path / "o.db").depth() == 9


def test_bounded_by_bytes_snapshots_go_first(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db", max_bytes=10_000)
    for i in range(3):
        ob.put(
            [
                NewMessage(f"e{i}", MessageKind.ALERT, "t/alert", b"a" * 100),
                NewMessage(f"e{i}", MessageKind.SNAPSHOT, f"t/snap/e{i}", b"j" * 3000),
            ]
        )
    assert ob.bytes_held() == 9300
    ob.put([NewMessage("e3", MessageKind.ALERT, "t/alert", b"a" * 100)])  # 9,400: fits
    ob.put([NewMessage("e3", MessageKind.SNAPSHOT, "t/snap/e3", b"j" * 3000)])  # 12,400: must shed 2,400
    held = [(m.event_id, m.kind.value) for m in ob.after(0, 100)]
    # The oldest snapshot went; every alert stayed.
    assert ("e0", "snapshot") not in held
    assert [e for e, k in held if k == "alert"] == ["e0", "e1", "e2", "e3"]
    assert ob.bytes_held() <= 10_000 and ob.stats().dropped_total == 1
    ob.ack(Receipt(event_ids=["e1"], snapshots=["e1"], at=utc_now()))
    assert ob.bytes_held() == sum(len(m.payload) for m in ob.after(0, 100))
    held_bytes = ob.bytes_held()
    ob.close()
    assert Outbox(tmp_path / "o.db").bytes_held() == held_bytes


def test_a_lowered_bound_drops_many_at_once(tmp_path: Path) -> None:
    """A technician lowers max_messages on a device that held 40,000 (more than SQLite's bind limit)."""
    ob = Outbox(tmp_path / "o.db")
    ob.put([_msg(f"e{i:05d}") for i in range(40_000)])
    ob.close()
    small = Outbox(tmp_path / "o.db", OutboxConfig(max_messages=100))
    small.put([_msg("new")])
    held = [m.event_id for m in small.after(0, 1000)]
    assert len(held) == 100 and held[0] == "e39901" and held[-1] == "new"
    assert small.stats().dropped_total == 39_901


def test_an_outbox_from_before_the_schedule_keeps_its_rows_and_sends_them_at_once(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    old = sqlite3.connect(db)
    old.executescript(
        """
        CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL,
            kind TEXT NOT NULL, topic TEXT NOT NULL, payload BLOB NOT NULL, created REAL NOT NULL,
            UNIQUE (event_id, kind));
        CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
        INSERT INTO messages (event_id, kind, topic, payload, created)
            VALUES ('old', 'alert', 't', x'7b7d', 1.0);
        """
    )
    old.commit()
    old.close()
    ob = Outbox(db)
    [due] = ob.due(time.time(), 10)
    assert (due.message.event_id, due.sends, due.step) == ("old", 0, 0)
    ob.put([_msg("new")])
    assert [s.message.event_id for s in ob.due(time.time(), 10)] == ["old", "new"]

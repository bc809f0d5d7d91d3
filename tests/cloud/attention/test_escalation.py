"""Escalation: levels at the configured times on a clock the test moves, a stop at acknowledgement,
a cloud SIGKILLed between two levels, and two cloud processes sharing one database."""

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session

from cloud.attention.worker import AttentionWorker
from cloud.db import make_engine, migrate
from cloud.models import AlertRow
from cloud.settings import AttentionSettings, Settings
from matthan_wire.timeutil import utc_now
from tests.cloud.attention.conftest import ROOT, SECRET, Receiver
from tests.cloud.attention.helpers import (
    TestClock,
    add_alert,
    add_endpoint,
    escalate_audits,
    escalation,
    notifications,
    set_policy,
)
from tests.support.net import free_port, wait_port, wait_until


def _levels(receiver: Receiver, event_id: str) -> list[int]:
    return [b["level"] for b in receiver.bodies() if b["event_id"] == event_id]


def test_two_levels_at_their_times_and_a_stop_at_acknowledgement(
    db_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    clock = TestClock(tmp_path / "clock")
    settings = Settings(
        db_url=db_url,
        broker_url=None,
        clips=str(tmp_path / "clips"),
        secret_key="s" * 32,
        attention=AttentionSettings(clock_file=clock.path),
    )
    engine = make_engine(db_url)
    migrate(engine)
    officer = add_endpoint(engine, "ward 1 duty officer", "webhook", {"url": receiver.url, "secret": SECRET})
    commander = add_endpoint(
        engine, "ward 1 commander", "webhook", {"url": receiver.url + "?c", "secret": SECRET}
    )
    set_policy(engine, "w1", "security_order", [(5, [officer]), (15, [commander])])
    worker = AttentionWorker(settings, engine, None)
    add_alert(engine, "ev-a")
    add_alert(engine, "ev-b")

    def run() -> None:
        worker.tick_once()
        worker.sender.drain()

    run()
    clock.advance(4.9)
    run()
    assert receiver.bodies() == [] and escalation(engine, "ev-a").level == 0  # type: ignore[union-attr]
    clock.advance(0.2)  # 5.1 min: level 1 for both
    run()
    assert _levels(receiver, "ev-a") == [1] and _levels(receiver, "ev-b") == [1]
    with Session(engine) as s:  # the officer acknowledges ev-b
        b = s.get(AlertRow, "ev-b")
        assert b is not None
        b.state, b.acknowledged_at, b.acknowledged_by = "acknowledged", utc_now(), "officer"
        s.add(b)
        s.commit()
    clock.advance(9.8)  # 14.9 min: nothing yet
    run()
    assert _levels(receiver, "ev-a") == [1]
    clock.advance(0.2)  # 15.1 min: level 2 for the unacknowledged one only
    run()
    clock.advance(60)
    run()
    assert _levels(receiver, "ev-a") == [1, 2] and _levels(receiver, "ev-b") == [1]
    esc_a, esc_b = escalation(engine, "ev-a"), escalation(engine, "ev-b")
    assert esc_a is not None and (esc_a.state, esc_a.level) == ("done", 2)
    assert esc_b is not None and (esc_b.state, esc_b.level, esc_b.stopped_reason) == (
        "stopped",
        1,
        "acknowledged",
    )
    audits = escalate_audits(engine, "ev-a")
    assert [x.detail["level"] for x in audits] == [1, 2]  # type: ignore[index]
    assert audits[1].detail["notified"] == [  # type: ignore[index]
        {"endpoint": commander, "name": "ward 1 commander", "kind": "webhook"}
    ]
    assert all(r["verified"] for r in receiver.requests())
    engine.dispose()


@contextmanager
def cloud_process(
    db_url: str, tmp_path: Path, clock: TestClock, name: str
) -> Iterator[subprocess.Popen[bytes]]:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "MATTHAN_CLOUD_SECRET_KEY": "k" * 32,
        "MATTHAN_CLOUD_ATTENTION_CLOCK_FILE": str(clock.path),
        "MATTHAN_CLOUD_ATTENTION_TICK_S": "0.2",
    }
    log = (tmp_path / f"{name}.log").open("ab")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "matthan",
            "cloud",
            "serve",
            "--db",
            db_url,
            "--broker",
            "none",
            "--clips",
            str(tmp_path / "clips"),
            "--port",
            str(port),
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_port(port, timeout=60)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        log.close()


def test_sigkill_between_levels_then_the_second_happens_once(
    sqlite_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    clock = TestClock(tmp_path / "clock")
    engine = make_engine(sqlite_url)
    migrate(engine)
    hook = add_endpoint(engine, "centre lead", "webhook", {"url": receiver.url, "secret": SECRET})
    set_policy(engine, "*", "security_order", [(1, [hook]), (10, [hook])])
    add_alert(engine, "ev-k")
    with cloud_process(sqlite_url, tmp_path, clock, "first") as first:
        clock.advance(2)
        # Killed after level 1 is committed: a kill between the send and its commit resends it
        # (at least once; a receiver drops the repeat by X-Matthan-Delivery), not what this is about.
        wait_until(
            lambda: [n.status for n in notifications(engine) if n.event_id == "ev-k"] == ["sent"],
            timeout=30,
            what="level 1 sent and committed",
        )
        assert _levels(receiver, "ev-k") == [1]
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    clock.advance(10)
    with cloud_process(sqlite_url, tmp_path, clock, "second"):
        wait_until(lambda: 2 in _levels(receiver, "ev-k"), timeout=30, what="level 2 after the restart")
        # A later alert escalated proves the restarted worker went round again meanwhile.
        add_alert(engine, "ev-later", received=clock.now() - timedelta(minutes=2))
        wait_until(lambda: _levels(receiver, "ev-later") == [1], timeout=30, what="a later escalation")
    assert _levels(receiver, "ev-k") == [1, 2]
    e = escalation(engine, "ev-k")
    assert e is not None and (e.level, e.state) == (2, "done")
    assert len(escalate_audits(engine, "ev-k")) == 2
    engine.dispose()


def _sent(engine: Engine) -> int:
    return sum(1 for n in notifications(engine) if n.status == "sent")


def test_two_cloud_processes_send_each_escalation_once(
    pg_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    clock = TestClock(tmp_path / "clock")
    engine = make_engine(pg_url)
    migrate(engine)
    hook = add_endpoint(engine, "centre lead", "webhook", {"url": receiver.url, "secret": SECRET})
    set_policy(engine, "*", "security_order", [(1, [hook]), (3, [hook])])
    events = [f"ev-{i:02d}" for i in range(20)]
    for e in events:
        add_alert(engine, e)
    with cloud_process(pg_url, tmp_path, clock, "a"), cloud_process(pg_url, tmp_path, clock, "b"):
        clock.advance(1.5)
        wait_until(lambda: len(receiver.bodies()) >= 20, timeout=60, what="20 first levels")
        # The test's clock jumps 2 min, past a sender's 2-min lease: a send received but not yet
        # committed on a loaded machine would be claimed again, as after a real crash. Wait for commits.
        wait_until(lambda: _sent(engine) >= 20, timeout=60, what="20 first levels committed")
        clock.advance(2)
        wait_until(lambda: len(receiver.bodies()) >= 40, timeout=60, what="20 second levels")
        add_alert(engine, "ev-probe", received=clock.now() - timedelta(minutes=2))
        wait_until(lambda: _levels(receiver, "ev-probe"), timeout=30, what="a later escalation")
    sent = Counter((b["event_id"], b["level"]) for b in receiver.bodies() if b["event_id"] != "ev-probe")
    assert sent == Counter({(e, lv): 1 for e in events for lv in (1, 2)})
    rows = [n for n in notifications(engine) if n.event_id != "ev-probe"]
    assert len(rows) == 40 and {n.status for n in rows} == {"sent"}
    senders = Counter(n.claimed_by.rsplit(":", 2)[1] for n in rows if n.claimed_by)
    print("sends per process (pid):", dict(senders))
    for e in events:
        assert len(escalate_audits(engine, e)) == 2
    engine.dispose()

"""The ingest writer under hostile traffic, on SQLite and PostgreSQL, through a real broker: extreme
and wrong values interleaved with valid alerts (in odd offsets). No thread dies, every valid alert
is stored, each hostile message is rejected and counted exactly once, and /healthz stays green;
a message that makes our own code fail is quarantined and the rest of its batch stored; a dead
writer turns /healthz red.

`pytest tests/cloud/test_ingest_fuzz.py -q -s` prints tried/rejected/stored per database
(MATTHAN_FUZZ_EXAMPLES=N for N hostile messages instead of 150)."""

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session, select

import cloud.ingest
import cloud.ingest_rows
from cloud.models import AlertRow
from matthan_wire import Alert, Kind, encode
from matthan_wire.topics import device_topic
from tests.cloud.conftest import add_user, bearer
from tests.cloud.devicesim import SimDevice, make_alert, make_health
from tests.cloud.ingest_support import count, live, metric, send_amid_good
from tests.support.hostile import BAD_INTS, OFFSETS, hostile_alert, valid_alert_json
from tests.support.net import wait_until

WARD, DEV = "ben-nghe", "q1-fuzz-01"
# Hostile messages per database; MATTHAN_FUZZ_EXAMPLES=5000 for a long hostile run (CI keeps 150).
EXAMPLES = int(os.environ.get("MATTHAN_FUZZ_EXAMPLES", "150"))


@st.composite
def hostile_health(draw: st.DrawFn) -> bytes:
    body = json.loads(encode(make_health(DEV, WARD)))
    field = draw(
        st.sampled_from(["outbox_depth", "upload_backlog", "alerts_total", "config_version", "cpu_pct"])
    )
    body[field] = draw(BAD_INTS) if field != "cpu_pct" else -1.0
    return json.dumps(body).encode()


def _caught_up(worker: Any, n: int, timeout: float = 60.0) -> bool:
    try:
        wait_until(lambda: worker.rejected_total >= n, timeout, what="ingest keeping up")
    except TimeoutError:
        return False
    return True


def test_hostile_traffic_interleaved_with_valid_alerts(make_settings, db_url, broker) -> None:  # type: ignore[no-untyped-def]
    with live(make_settings, db_url, broker, batch_wait_s=0.05) as client:
        dev = SimDevice(broker.port, DEV, WARD, will=False).start()
        valid: list[Alert] = []
        hostile: list[str] = []
        alert_topic = device_topic(Kind.ALERT, WARD, DEV)
        health_topic = device_topic(Kind.HEALTH, WARD, DEV)
        worker = client.app.state.ingest  # type: ignore[attr-defined]

        @settings(
            max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
        )
        @given(data=st.data(), offset=OFFSETS, kind=st.sampled_from(["alert", "alert", "health"]))
        def publish(data: st.DataObject, offset: Any, kind: str) -> None:
            good = make_alert(DEV, WARD, seq=len(valid) + 1)
            if kind == "alert":
                dev.client.publish(alert_topic, data.draw(hostile_alert(good)), qos=1)
            else:
                dev.client.publish(health_topic, data.draw(hostile_health()), qos=1)
            hostile.append(kind)
            # A valid alert after every hostile message, its time in an odd offset.
            valid.append(good)
            with dev.lock:
                dev.outbox[(good.event_id, "alert")] = (alert_topic, valid_alert_json(good, offset))
            dev.client.publish(alert_topic, valid_alert_json(good, offset), qos=1)
            if len(hostile) % 200 == 0:
                # Paced in steps of 200 for long runs, and a miss is caught near where it happened.
                assert _caught_up(worker, len(hostile)), (
                    f"rejected={worker.rejected_total} hostile={len(hostile)}"
                    f" dropped={metric(client, 'matthan_ingest_dropped_total')} queue={worker.queue.qsize()}"
                )

        try:
            publish()
            dev.drain(timeout=60)
            wait_until(
                lambda: worker.rejected_total >= len(hostile), 30, what="every hostile message counted"
            )
            with Session(client.app.state.engine) as s:  # type: ignore[attr-defined]
                stored = set(s.exec(select(AlertRow.event_id)).all())
            print(
                f"\ningest fuzz db={db_url.split(':')[0]} tried={len(hostile) + len(valid)}"
                f" hostile={len(hostile)} rejected={worker.rejected_total}"
                f" valid={len(valid)} stored={len(stored)}"
            )
            assert stored == {a.event_id for a in valid}
            # ... and shown: the API lists every one of them.
            page = client.get(
                "/api/v1/alerts", params={"limit": 1}, headers=bearer(add_user(client, "op", "operator"))
            )
            assert page.json()["total"] == len(valid)
            assert worker.rejected_total == len(hostile)
            assert metric(client, "matthan_ingest_rejected_total") == len(hostile)
            assert worker.alive and client.get("/healthz").status_code == 200
            assert metric(client, "matthan_ingest_worker_errors_total") == 0
        finally:
            dev.stop()


def test_a_message_that_breaks_our_code_is_quarantined_and_its_batch_stored(  # type: ignore[no-untyped-def]
    make_settings, sqlite_url, broker, monkeypatch
) -> None:
    real_row = cloud.ingest_rows.alert_row

    def row(a: Alert, now: Any, sites: Any) -> dict[str, Any]:
        if a.rule == "plaza.bug":
            raise KeyError("a bug that only this alert meets")
        return real_row(a, now, sites)

    monkeypatch.setattr(cloud.ingest_rows, "alert_row", row)
    with live(make_settings, sqlite_url, broker, batch_wait_s=0.5) as client:
        dev = SimDevice(broker.port, DEV, WARD).start()
        try:
            bad = make_alert(DEV, WARD, seq=9, rule="plaza.bug")
            good = send_amid_good(dev, 4, bad)
            wait_until(
                lambda: {a.event_id for a in good} <= dev.receipted(), 15, what="good alerts receipted"
            )
            assert count(client) == 4
            assert metric(client, 'matthan_ingest_rejected_total{kind="internal"}') == 1
            assert metric(client, 'matthan_ingest_quarantined_total{kind="internal"}') == 1
            folder = Path(client.app.state.settings.quarantine_dir)  # type: ignore[attr-defined]
            (meta_path,) = folder.glob("*.json")
            assert "KeyError" in json.loads(meta_path.read_text())["reason"]
            assert json.loads(meta_path.with_suffix(".bin").read_bytes())["event_id"] == bad.event_id
            # The device resends it (no receipt): counted again as a new message, kept once.
            dev.resend()
            wait_until(lambda: client.app.state.ingest.rejected_total == 2, 10, what="resend counted")  # type: ignore[attr-defined]
            assert len(list(folder.glob("*.bin"))) == 1
            assert client.get("/healthz").status_code == 200
        finally:
            dev.stop()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_writer_turns_healthz_red_and_names_it(make_settings, sqlite_url, broker) -> None:  # type: ignore[no-untyped-def]
    with live(make_settings, sqlite_url, broker) as client:
        worker = client.app.state.ingest  # type: ignore[attr-defined]
        assert client.get("/healthz").json()["dead_workers"] == []

        def die(*_: Any) -> None:
            raise SystemExit("simulated: a BaseException the writer does not catch")

        worker._take = die
        wait_until(lambda: not worker.alive, 10, what="writer thread ended")
        r = client.get("/healthz")
        assert r.status_code == 503 and r.json()["dead_workers"] == ["ingest-writer"]
        assert metric(client, "matthan_ingest_writer_up") == 0


@pytest.mark.parametrize("limit", [2048])
def test_queue_is_bounded_by_bytes_and_counts_what_it_drops(limit: int) -> None:
    q = cloud.ingest.Inbox(maxsize=1000, max_bytes=limit)
    item = cloud.ingest.Inbound("t", b"x" * 999, False, 0.0)
    assert q.put(item) and q.put(item)
    assert not q.put(item)  # 3 × 1000 bytes > 2048, although the count is far from 1000
    assert q.nbytes == 2000
    assert len(q.take(10, 0.0, 0.0)) == 2 and q.nbytes == 0
    assert q.put(item)

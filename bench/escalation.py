"""Escalation benchmark: how fast does a burst of unacknowledged alerts become delivered messages?

    .venv/bin/python -m bench.escalation [--alerts N]

A storm: N alerts arrive unacknowledged at once (default 300, ten days of a district's alerts),
the policy's first level is due for all of them, with two webhook endpoints (2 N messages). Timed
side by side, on SQLite (WAL) and on PostgreSQL (127.0.0.1:5432, when reachable):
- the escalation steps (compare-and-set + queued messages + audit, one transaction per alert);
- sending the queue to a local HTTP receiver with one sender, and with two senders claiming from
  the same queue (as two cloud processes would: leases, SKIP LOCKED on PostgreSQL).
The receiver answers at once: the figures are the cloud's own cost, not a real receiver's.
"""

import argparse
import tempfile
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from sqlmodel import Session

from cloud.attention import admin
from cloud.attention.channels import channels
from cloud.attention.clock import SystemClock
from cloud.attention.escalation import Escalator, PolicyIn
from cloud.attention.queue import Sender
from cloud.attention.sealing import Sealer, new_key
from cloud.db import make_engine, migrate
from cloud.models import AlertRow, table
from cloud.settings import AttentionSettings
from matthan_wire.timeutil import utc_now


class _Count(BaseHTTPRequestHandler):
    hits = 0
    lock = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with _Count.lock:
            _Count.hits += 1
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


def _pg_database(name: str) -> str | None:
    """A fresh database on the local PostgreSQL (None when there is none)."""
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as c:
            c.execute(f"DROP DATABASE IF EXISTS {name}")
            c.execute(f"CREATE DATABASE {name}")
        return f"postgresql://postgres@127.0.0.1:5432/{name}"
    except Exception:
        return None


def _pg_drop(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as c:
        c.execute(f"DROP DATABASE IF EXISTS {name}")


# The deployment's way: endpoint secrets sealed at rest, opened by the sender for every message.
SEALER = Sealer([new_key()])


def _seed(engine: object, n: int, url: str) -> None:
    now = utc_now() - timedelta(seconds=5)
    with Session(engine) as s:  # type: ignore[arg-type]
        ids = []
        for name in ("centre", "lead"):
            body = admin.EndpointIn.model_validate(
                {"name": name, "kind": "webhook", "config": {"url": url, "secret": "b" * 20}}
            )
            e = admin.save_endpoint(s, "bench", body, now, sealer=SEALER)
            ids.append(e.id)
        admin.set_policy(s, "bench", PolicyIn.model_validate(
            {"ward": "*", "category": "security_order", "levels": [{"after_min": 0, "endpoints": ids}]}
        ), now)  # fmt: skip
        rows = [
            {"event_id": f"storm-{i:05d}", "device_id": f"dev-{i % 128}", "camera_id": "cam-1",
             "ward": f"w{i % 10}",
             "rule": "plaza.crowd", "type": "crowd", "category": "security_order", "labels": ["person"],
             "object_count": 5, "score": 0.8, "started_at": now, "received_at": now, "updated_at": now,
             "seq": i, "state": "new"}
            for i in range(n)
        ]  # fmt: skip
        s.execute(table(AlertRow).insert(), rows)
        s.commit()


def run(db_url: str, n: int, senders: int, url: str) -> tuple[float, float]:
    engine = make_engine(db_url)
    migrate(engine)
    _seed(engine, n, url)
    settings = AttentionSettings(send_timeout_s=10)
    esc = Escalator(engine, SystemClock(), public_url="http://c", tz_name="Asia/Ho_Chi_Minh", max_age_h=24,
                    language="vi")  # fmt: skip
    t0 = time.perf_counter()
    while esc.tick():
        pass
    steps_s = time.perf_counter() - t0
    _Count.hits = 0
    workers = [
        Sender(engine, settings, channels(settings), None, SystemClock(), f"s{i}", SEALER)
        for i in range(senders)
    ]
    t0 = time.perf_counter()
    threads = [threading.Thread(target=w.drain) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    send_s = time.perf_counter() - t0
    assert _Count.hits == 2 * n, f"{_Count.hits} deliveries for {2 * n} messages"
    engine.dispose()
    return steps_s, send_s


def _row(name: str, senders: int, n: int, steps_s: float, send_s: float) -> None:
    steps, sends = f"{n / steps_s:,.0f}", f"{2 * n / send_s:,.0f}"
    print(f"| {name} | {senders} | {steps} | {steps_s:.2f} s | {sends} | {send_s:.2f} s |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--alerts", type=int, default=300)
    n = parser.parse_args().alerts
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Count)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    print("## Escalation storm (`python -m bench.escalation`)\n")
    print(f"{n} unacknowledged alerts due at once, 2 webhook endpoints: {2 * n} messages; local receiver.\n")
    print("| database | senders | escalation steps/s | step time (all) | messages/s | send time (all) |")
    print("| --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for senders in (1, 2):
            db = f"sqlite:///{Path(tmp) / f'esc-{senders}.db'}"
            _row("SQLite (WAL)", senders, n, *run(db, n, senders, url))
        for senders in (1, 2):
            name = f"bench_escalation_{senders}"
            db_url = _pg_database(name)
            if db_url is None:
                print("| PostgreSQL | — | not reachable on 127.0.0.1:5432 | | | |")
                break
            try:
                _row("PostgreSQL", senders, n, *run(db_url, n, senders, url))
            finally:
                _pg_drop(name)
    server.shutdown()


if __name__ == "__main__":
    main()

"""`matthan cloud serve` and `matthan cloud ingest` as processes, as an operator runs them."""

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from sqlalchemy import func
from sqlmodel import Session, select

from cloud.db import make_engine
from cloud.models import AlertRow
from tests.cloud.devicesim import SimDevice, make_alert
from tests.support.net import free_port, patient, wait_port, wait_until
from tests.support.procs import LineWatcher

MATTHAN = [sys.executable, "-m", "matthan"]


@contextmanager
def process(args: list[str], cwd: Path) -> Iterator[subprocess.Popen[str]]:
    env = {**os.environ, "MATTHAN_CLOUD_SECRET_KEY": "s" * 32}
    p = subprocess.Popen(
        [*MATTHAN, *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        yield p
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(patient(15))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def test_serve_runs_the_api_and_ingest_and_stops_cleanly(tmp_path: Path, broker) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    db = f"sqlite:///{tmp_path / 'cloud.db'}"
    with process(
        [
            "cloud",
            "serve",
            "--db",
            db,
            "--broker",
            broker.url,
            "--clips",
            str(tmp_path / "clips"),
            "--port",
            str(port),
        ],
        tmp_path,
    ) as p:
        wait_port(port, timeout=30)
        base = f"http://127.0.0.1:{port}"
        wait_until(
            lambda: httpx.get(f"{base}/healthz").json()["broker_connected"], 10, what="broker connected"
        )
        spec = httpx.get(f"{base}/openapi.json").json()
        media = spec["paths"]["/api/v1/media/{event_id}/{kind}"]
        assert {"head", "patch", "get"} <= set(media)
        assert "Upload-Offset" in media["patch"]["responses"]["204"]["headers"]
        assert "matthan_ingest_messages_total" in httpx.get(f"{base}/metrics").text
        p.send_signal(signal.SIGTERM)
        assert p.wait(patient(15)) == 0
        assert "Traceback" not in p.stderr.read()  # type: ignore[union-attr]


def test_two_ingest_workers_share_the_load_without_duplicates(tmp_path: Path, broker, pg_url) -> None:  # type: ignore[no-untyped-def]
    ports = [free_port(), free_port()]
    workers = [
        process(
            [
                "cloud",
                "ingest",
                "--db",
                pg_url,
                "--broker",
                broker.url,
                "--share-group",
                "matthan-ingest",
                "--clips",
                str(tmp_path / "clips"),
                "--metrics-port",
                str(port),
            ],
            tmp_path,
        )
        for port in ports
    ]
    with workers[0] as w0, workers[1] as w1:
        # Both subscribed (the broker's SUBACK), or the first alerts could all go to one worker.
        for w in (w0, w1):
            assert w.stderr is not None
            LineWatcher(w.stderr).wait_for(" subscribed client=", timeout=60)
        for port in ports:
            wait_port(port, timeout=30)
        dev = SimDevice(broker.port, "q1-rex-01", "ben-nghe").start()
        try:
            ids = []
            for i in range(200):
                alert = make_alert("q1-rex-01", "ben-nghe", i)
                ids.append(alert.event_id)
                dev.send_alert(alert)
            dev.drain(timeout=30)
        finally:
            dev.stop()
        counts = []
        for port in ports:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
            line = next(
                x for x in text.splitlines() if x.startswith('matthan_ingest_messages_total{kind="alert"}')
            )
            counts.append(float(line.rsplit(" ", 1)[1]))
    assert all(c > 0 for c in counts), f"one worker got nothing: {counts}"
    engine = make_engine(pg_url)
    with Session(engine) as s:
        assert s.exec(select(func.count()).select_from(AlertRow)).one() == len(ids)
    engine.dispose()

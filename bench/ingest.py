"""Ingest benchmark: simulated devices publish health and alerts through a real Mosquitto into a
real `matthan cloud ingest` process writing to PostgreSQL.

    .venv/bin/python -m bench.ingest [--seconds 12] [--paced-seconds 8]

For the reference district (128 devices, 1,115 cameras) and 20× that (2,560 devices), it prints:
- msgs/s sustained: messages committed per second while the devices publish flat out;
- end-to-end lag p50/p99: alert publish → database commit → receipt back at the device, with
  the devices paced at half the measured capacity (a lag under overload only measures the queue);
- CPU seconds per 1,000 messages of the ingest process, of PostgreSQL and of the broker;
- the broker's own loopback rate in the same run, same message mix, with the same paho publishers
  and a paho subscriber that does nothing but count (the ceiling for any Python consumer here),
  measured before and after the ingest runs; the ratio uses the better of the two.

The load (simulated devices, the counting subscriber) is in bench/ingest_load.py.
"""

import argparse
import contextlib
import multiprocessing as mp
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

from bench.ingest_load import CAMERAS_PER_DEVICE, counter, devices, run_publishers

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listening on port {port}")


# --- processes we start and measure ----------------------------------------------------------------


class Broker:
    def __init__(self, work: Path) -> None:
        self.port = free_port()
        conf = work / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "max_queued_messages 0\nmax_inflight_messages 0\nsys_interval 1\nlog_type error\n"
        )
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc = subprocess.Popen(
            [exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_port(self.port)
        self.ps = psutil.Process(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def cpu(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return float(t.user + t.system)


def postgres_cpu() -> float:
    total = 0.0
    for p in psutil.process_iter(["name"]):
        if p.info["name"] and p.info["name"].startswith("postgres"):
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                total += cpu(p)
    return float(total)


def metric(metrics_port: int, prefix: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))


def committed(metrics_port: int) -> float:
    return metric(metrics_port, "matthan_ingest_messages_total{")


def broker_reference(work: Path, devs: list[tuple[str, str]], seconds: float) -> dict[str, float]:
    broker = Broker(work)
    try:
        ctx = mp.get_context("spawn")
        out = ctx.Queue()
        ready = ctx.Event()
        finished = ctx.Event()
        sub = ctx.Process(target=counter, args=(broker.port, out, ready, finished, 3.0))
        sub.start()
        ready.wait(30)
        pubs = run_publishers(broker.port, devs, seconds, None, receipts=False)
        finished.set()
        got = out.get(timeout=300)
        sub.join(10)
    finally:
        broker.stop()
    published = sum(p["published"] for p in pubs)
    return {"published": published, "received": got["received"], "rate": got["received"] / got["seconds"]}


def ingest_run(
    work: Path, db_url: str, devs: list[tuple[str, str]], seconds: float, paced_s: float, workers: int
) -> dict[str, Any]:
    broker = Broker(work)
    ports = [free_port() for _ in range(workers)]
    # A small queue keeps the backlog after the flat-out phase short; what overflows is counted.
    env = {**os.environ, "MATTHAN_LOG": "WARNING", "MATTHAN_CLOUD_QUEUE_MAX": "10000"}
    share = ["--share-group", "matthan-ingest"] if workers > 1 else []
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "matthan",
                "cloud",
                "ingest",
                "--db",
                db_url,
                "--broker",
                f"mqtt://127.0.0.1:{broker.port}",
                "--clips",
                str(work / "clips"),
                "--metrics-port",
                str(port),
                *share,
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for port in ports
    ]

    def count() -> float:
        return sum(committed(port) for port in ports)

    try:
        for port in ports:
            wait_port(port, 60)
        time.sleep(1.0)
        ps = [psutil.Process(p.pid) for p in procs]
        c0, pg0, b0, n0 = sum(map(cpu, ps)), postgres_cpu(), cpu(broker.ps), count()
        samples: list[tuple[float, float]] = []
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                samples.append((time.time(), count()))
                done.wait(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        pubs = run_publishers(broker.port, devs, seconds, None)
        # Let the ingest finish what the broker delivered: until the count stands still for 2 s.
        while len(samples) < 12 or samples[-1][1] != samples[-11][1]:
            time.sleep(0.2)
        done.set()
        sampler.join()
        c1, pg1, b1 = sum(map(cpu, ps)), postgres_cpu(), cpu(broker.ps)
        moving = any(n > n0 for _, n in samples)
        first = next(i for i, (_, n) in enumerate(samples) if n > n0) - 1 if moving else 0
        last = (
            next(i for i in range(len(samples) - 1, -1, -1) if samples[i][1] != samples[-1][1]) + 1
            if moving
            else 0
        )
        (t_a, n_a), (t_b, n_b) = samples[max(first, 0)], samples[last]
        stored = samples[-1][1] - n0
        published = sum(p["published"] for p in pubs)
        rate = (n_b - n_a) / (t_b - t_a) if t_b > t_a else 0.0
        # Paced: half the measured capacity, for the lag.
        paced_rate = max(100.0, rate * 0.5)
        paced = run_publishers(broker.port, devs, paced_s, paced_rate)
        lags = sorted(x for p in paced for x in p["lags"])
        per_k = stored / 1000 if stored else float("nan")
        return {
            "devices": len(devs),
            "workers": workers,
            "published": published,
            "stored": stored,
            "rate": rate,
            "ingest_cpu_per_k": (c1 - c0) / per_k,
            "pg_cpu_per_k": (pg1 - pg0) / per_k,
            "broker_cpu_per_k": (b1 - b0) / per_k,
            "paced_rate": paced_rate,
            "lag_p50": statistics.median(lags) if lags else float("nan"),
            "lag_p99": lags[int(len(lags) * 0.99) - 1] if len(lags) >= 100 else float("nan"),
            "alerts_unreceipted": sum(p["unreceipted"] for p in paced),
            "dropped": sum(metric(port, "matthan_ingest_dropped_total") for port in ports),
        }
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        broker.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="flat-out publishing per run")
    parser.add_argument("--paced-seconds", type=float, default=4.0, help="paced publishing for the lag")
    parser.add_argument(
        "--runs",
        default="1x1,20x1",
        help="SCALExWORKERS,…: multiples of the 128-device district × ingest processes (shared subscription)",
    )
    args = parser.parse_args(argv)
    import psycopg

    name = f"matthan_bench_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        print(f"bench.ingest: PostgreSQL on 127.0.0.1:5432 is needed: {exc}", file=sys.stderr)
        return 1
    db_url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    rows: list[dict[str, Any]] = []
    refs: list[dict[str, float]] = []
    work = Path(tempfile.mkdtemp(prefix="matthan-bench-ingest-"))
    try:
        runs = [tuple(int(x) for x in r.split("x")) for r in args.runs.split(",")]
        # The broker reference runs before and after the ingest runs: other work on a shared
        # machine moves both figures, and the ratio uses the better of the two references.
        print("broker reference (128 devices)…", file=sys.stderr, flush=True)
        refs.append(broker_reference(work, devices(128), args.seconds))
        for scale, workers in runs:
            print(f"ingest, {128 * scale} devices, {workers} worker(s)…", file=sys.stderr, flush=True)
            rows.append(
                ingest_run(work, db_url, devices(128 * scale), args.seconds, args.paced_seconds, workers)
            )
        print("broker reference again…", file=sys.stderr, flush=True)
        refs.append(broker_reference(work, devices(128), args.seconds))
        ref = max(refs, key=lambda r: r["rate"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    print("## ingest: MQTT → PostgreSQL")
    print()
    print(
        f"Devices publish flat out for {args.seconds:.0f} s (4 health QoS 0 : 1 alert QoS 1) through "
        "Mosquitto into `matthan cloud ingest` on PostgreSQL (with two workers: one shared MQTT 5 "
        "subscription); lag is alert publish → "
        f"commit → receipt at the device, paced at half the capacity for {args.paced_seconds:.0f} s. "
        "Broker reference: the same mix into a paho subscriber that only counts, in the same run."
    )
    print()
    print(
        "| devices (cameras) | ingest workers | published | stored | msgs/s sustained "
        "| lag p50 / p99 (at msgs/s) | CPU s per 1k msgs: ingest / PostgreSQL / broker "
        "| broker loopback msgs/s | ratio |"
    )
    print("| --- | ---: | ---: | ---: | ---: | --- | --- | ---: | ---: |")
    for r in rows:
        cams = round(r["devices"] * CAMERAS_PER_DEVICE)
        print(
            f"| {r['devices']:,} ({cams:,}) | {r['workers']} | {r['published']:,} | {r['stored']:,.0f} "
            f"| {r['rate']:,.0f} "
            f"| {r['lag_p50'] * 1000:.0f} ms / {r['lag_p99'] * 1000:.0f} ms (at {r['paced_rate']:,.0f}) "
            f"| {r['ingest_cpu_per_k']:.3f} / {r['pg_cpu_per_k']:.3f} / {r['broker_cpu_per_k']:.3f} "
            f"| {ref['rate']:,.0f} | {r['rate'] / ref['rate']:.2f} |"
        )
    print()
    goal = {
        f"{r['devices']}x{r['workers']}": r["rate"] >= 20000 or r["rate"] >= 0.5 * ref["rate"] for r in rows
    }
    print(
        "Goal (≥ 20,000 msg/s or ≥ 0.5 × the broker's rate), per devices×workers: "
        + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in goal.items())
        + ". "
        f"Broker reference before / after: {refs[0]['rate']:,.0f} / {refs[1]['rate']:,.0f} msg/s "
        f"({refs[0]['received']:,} of {refs[0]['published']:,} and {refs[1]['received']:,} of "
        f"{refs[1]['published']:,} received). "
        f"Alerts of the paced runs not receipted within 10 s: {sum(r['alerts_unreceipted'] for r in rows)}. "
        f"Dropped at the full ingest queue while flat out (unreceipted, so a device sends them again): "
        f"{sum(r['dropped'] for r in rows):,.0f}."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
